import Federation

// The `federation:` section: rounds and local training, the aggregation strategy, the weight cap, the server
// optimizer and FedProx. Every bad value is an ExperimentError naming the dotted key.

extension Experiment {
    static let federationKeys = ["paradigm", "rounds", "local_steps", "batch", "seq", "lr", "fraction", "quorum", "deadline_s", "eval_tokens",
                                 "eval_devices", "strategy", "max_norm", "trim_fraction", "byzantine", "multi_krum_m", "max_weight",
                                 "server_optimizer", "server_lr", "server_beta1", "server_beta2", "server_tau", "proximal_mu"]

    static func parseFederation(_ f: Keys, into e: inout Experiment) throws {
        try f.only(federationKeys)
        e.federation.paradigm = try f.string("paradigm") ?? e.federation.paradigm
        guard paradigms.contains(e.federation.paradigm) else {
            throw ExperimentError.badValue(key: "federation.paradigm", value: e.federation.paradigm,
                                           reason: "this build runs \(paradigms.joined(separator: ", "))")
        }
        e.federation.rounds = try f.int("rounds", min: 1) ?? e.federation.rounds
        e.federation.localSteps = try f.int("local_steps", min: 1) ?? e.federation.localSteps
        e.federation.batch = try f.int("batch", min: 1) ?? e.federation.batch
        e.federation.seq = try f.int("seq", min: 2) ?? e.federation.seq
        e.federation.lr = try f.double("lr", positive: true) ?? e.federation.lr
        e.federation.fraction = try f.double("fraction", positive: true) ?? e.federation.fraction
        guard e.federation.fraction <= 1 else {
            throw ExperimentError.badValue(key: "federation.fraction", value: "\(e.federation.fraction)", reason: "must be in (0, 1]")
        }
        e.federation.quorum = try f.int("quorum", min: 1) ?? e.federation.quorum
        e.federation.deadlineS = try f.double("deadline_s", positive: true) ?? e.federation.deadlineS
        e.federation.evalTokens = try f.int("eval_tokens", min: 2) ?? e.federation.evalTokens
        e.federation.evalDevices = try f.int("eval_devices", min: 0) ?? e.federation.evalDevices

        var st = e.federation.strategy
        st.name = try f.string("strategy") ?? st.name
        guard StrategySettings.known.contains(st.name) else {
            throw ExperimentError.badValue(key: "federation.strategy", value: st.name, reason: "use \(StrategySettings.known.joined(separator: ", "))")
        }
        st.maxNorm = try f.double("max_norm", positive: true) ?? st.maxNorm
        st.trimFraction = try f.double("trim_fraction") ?? st.trimFraction
        st.byzantine = try f.int("byzantine", min: 0) ?? st.byzantine
        st.selected = try f.int("multi_krum_m", min: 1) ?? st.selected
        do { _ = try st.make() } catch {
            throw ExperimentError.badValue(key: "federation.strategy", value: st.name, reason: "\(error)")
        }
        e.federation.strategy = st

        e.federation.maxWeight = try f.double("max_weight", positive: true) ?? e.federation.maxWeight
        guard e.federation.maxWeight <= 1 else {
            throw ExperimentError.badValue(key: "federation.max_weight", value: "\(e.federation.maxWeight)", reason: "a share of the round's total: (0, 1]")
        }
        if let name = try f.string("server_optimizer") {
            guard let kind = ServerOptimizerKind(rawValue: name) else {
                throw ExperimentError.badValue(key: "federation.server_optimizer", value: name,
                                               reason: "use \(ServerOptimizerKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            e.federation.serverOptimizer = ServerOptimizerConfig(kind: kind)
        }
        var o = e.federation.serverOptimizer
        o.lr = try f.double("server_lr", positive: true) ?? o.lr
        o.beta1 = try f.double("server_beta1") ?? o.beta1
        o.beta2 = try f.double("server_beta2") ?? o.beta2
        o.tau = try f.double("server_tau", positive: true) ?? o.tau
        for (k, v) in [("server_beta1", o.beta1), ("server_beta2", o.beta2)] where !(v >= 0 && v < 1) {
            throw ExperimentError.badValue(key: "federation.\(k)", value: "\(v)", reason: "must be in [0, 1)")
        }
        e.federation.serverOptimizer = o
        e.federation.proximalMu = try f.double("proximal_mu") ?? e.federation.proximalMu
        guard e.federation.proximalMu >= 0 else {
            throw ExperimentError.badValue(key: "federation.proximal_mu", value: "\(e.federation.proximalMu)", reason: "must be ≥ 0")
        }
    }
}
