import EdgeEnvironment
import Reports

// The round engine (the model: etcd's raft library). A deterministic state machine: events with a timestamp go in,
// effects come out; sockets, files and clocks belong to the caller. One phase machine for every paradigm and tier:
//
//   starting ─▶ evaluating(0) ─▶ idle ─▶ training ─▶ (close) ─▶ evaluating(r) ─▶ idle … ─▶ finished
//
// The algorithm decides who trains what and how results combine (SynchronousAlgorithm, AsynchronousAlgorithm);
// the tier role decides who the participants are and what happens around a round (an edge runs κ2 inner rounds
// per cloud task and uploads; the cloud's participants are edges). Every accepted upload and evaluation is
// journalled before it is acknowledged, and the whole state is checkpointed at every phase change, so a restarted
// aggregator resumes where it was and loses nothing it acknowledged (EngineSnapshot.swift).

/// Everything a run's engine needs to know up front.
public struct EngineConfig: Sendable {
    /// This aggregator's node id.
    public var id: String
    public var role: TierRole
    /// The experiment's paradigm name (records, summary).
    public var paradigm: String
    /// Rounds this aggregator runs (the cloud's rounds in a hierarchy; the evaluation windows' budget in async).
    public var rounds: Int
    /// Participants needed to open a round.
    public var quorum: Int
    /// Cloud: live devices needed before the first evaluation.
    public var deviceQuorum: Int
    public var deadlineS: Double
    public var heartbeatS: Double
    /// Ask devices for validation loss before the first and after every round.
    public var evaluate: Bool
    /// Edge: inner rounds per cloud task; cloud: κ1 multiplies the local steps it announces.
    public var kappa1: Int
    public var kappa2: Int
    /// Async: one record (with evaluation) every this many applied updates.
    public var evalEvery: Int
    /// Encoded size of one model message: bytes and simulated transfer times.
    public var modelBytes: Int
    /// Emit journal and checkpoint effects (off when nobody persists them, e.g. benchmarks).
    public var persistent: Bool
    /// Summary notes (name, seed, model, scenario).
    public var notes: [String: String]
    /// The caller's clock is the virtual clock (simulation): a round lasts until `now` when it closes, so one that
    /// closed at its deadline lasts until the deadline.
    public var virtualTime = false
    /// Evaluate a fixed seeded sample of at most this many devices (0: every device); large federations.
    public var evalDevices = 0
    /// Cloud of a hierarchy with DP at its edges: the planned spend it stops on.
    public var cloudPrivacy: CloudPrivacy?

    public init(id: String, role: TierRole = .flat, paradigm: String, rounds: Int, quorum: Int = 1, deviceQuorum: Int = 1,
                deadlineS: Double = 60, heartbeatS: Double = 1, evaluate: Bool = true, kappa1: Int = 1, kappa2: Int = 1,
                evalEvery: Int = 1, modelBytes: Int = 0, persistent: Bool = true, notes: [String: String] = [:]) {
        self.id = id; self.role = role; self.paradigm = paradigm; self.rounds = rounds; self.quorum = max(1, quorum)
        self.deviceQuorum = max(1, deviceQuorum); self.deadlineS = deadlineS; self.heartbeatS = heartbeatS; self.evaluate = evaluate
        self.kappa1 = max(1, kappa1); self.kappa2 = max(1, kappa2); self.evalEvery = max(1, evalEvery); self.modelBytes = modelBytes
        self.persistent = persistent; self.notes = notes
    }
}

/// The algorithm an engine runs.
public enum Algorithm: Sendable {
    case synchronous(SynchronousAlgorithm)
    case asynchronous(AsynchronousAlgorithm)

    public var base: any FederatedAlgorithm {
        switch self {
        case .synchronous(let a): return a
        case .asynchronous(let a): return a
        }
    }
}

public struct RoundEngine: Sendable {
    public enum Phase: String, Sendable, Codable { case starting, evaluating, idle, training, finished }

    /// The open synchronous round.
    struct OpenRound: Sendable, Codable {
        var round: Int
        var wire: UInt64
        var tasks: [String: RoundTask]
        /// Participant → clusters it delivered.
        var delivered: [String: [Int]] = [:]
        var deadline: Double?
        var simStart: Double
        var bytesDown: [String: Int] = [:]
        var bytesUp: [String: Int] = [:]
        var computeS: [String: Double] = [:]
        /// Participant → (samples, loss) of each accepted contribution.
        var results: [String: [Contribution]] = [:]
        struct Contribution: Sendable, Codable { var samples: Int; var loss: Float }
    }

    /// An evaluation in progress (of this engine's models, or relayed for the cloud by an edge).
    struct EvalRound: Sendable, Codable {
        var round: Int
        var wire: UInt64
        var expected: [String]
        var results: [String: Evaluation] = [:]
        var deadline: Double?
        /// Edge: the cloud's evaluation wire these results go up under.
        var relayFor: UInt64?
        var done: Bool { Set(expected).isSubset(of: Set(results.keys)) }
    }

    /// Counters a record reports, since the last record.
    struct Window: Sendable, Codable {
        var bytesUp = 0, bytesDown = 0
        var trainLoss: Double?
        var participants = 0, dropped = 0
        var clusters: [String: Int]?
    }

    public let config: EngineConfig
    let cost: any EdgeCostModel
    public internal(set) var algorithm: Algorithm {
        get { held! }
        set { held = newValue }
    }
    /// Nil only while `withSync`/`withAsync` mutate the algorithm outside it: then its buffers (a round's running
    /// sum) have one owner and are mutated in place instead of copied on every upload.
    var held: Algorithm?
    // Persisted state (EngineSnapshot).
    public internal(set) var phase: Phase = .starting
    /// Completed rounds (records); async: evaluation windows.
    public internal(set) var round = 0
    /// The last wire id handed out: every task and evaluation takes the next, so what a participant sees only grows.
    public internal(set) var wire: UInt64 = 0
    public internal(set) var simTime = 0.0
    /// Wall seconds of earlier incarnations (restarts) plus this one's.
    var elapsedBefore = 0.0
    public internal(set) var bytesUp = 0, bytesDown = 0
    var window = Window()
    public internal(set) var rejections: [String: Int] = [:]
    /// Device → the domain it reports in evaluations (its data's true domain).
    public internal(set) var domains: [String: String] = [:]
    var initialValLoss: [String: Double]?
    var lastValLoss: [String: Double] = [:]
    var gaps: [Double] = []
    var open: OpenRound?
    /// The open round's secure aggregation (not persisted: a restarted aggregator plans the round again).
    var secure: SecureRound?
    var eval: EvalRound?
    var edge: EdgeState?
    var async = AsyncState()
    var toldManager: [String: Int] = [:]
    /// Cloud: bytes of the device sketches the edges relayed.
    public internal(set) var sketchBytes = 0
    /// Cloud: the ε each edge reported with its contributions (DP at the first tier).
    var edgeEpsilon: [String: Double] = [:]
    // Not persisted: re-learned from the cluster manager after a restart.
    var participants: [String] = []
    var aliveDevices: [String] = []
    var deviceEdge: [String: Int] = [:]
    /// No decision that depends on who is there (a round's participants, an evaluation's population) is taken
    /// before the first membership event: a restarted engine must decide as the uninterrupted one did.
    var membershipKnown = false
    /// Edge, restored while relaying an evaluation: relay what it holds again (a result journalled before the crash
    /// may not have gone up).
    var relayAgain = false
    var firstNow: Double?
    var now = 0.0
    var lastResend = -Double.infinity
    var replaying = false
    var needsCheckpoint = false
    var out: [EngineEffect] = []

    public init(config: EngineConfig, algorithm: Algorithm, cost: any EdgeCostModel) {
        self.config = config; self.held = algorithm; self.cost = cost
        if case .edge = config.role { phase = .idle; edge = EdgeState() }
        if !config.evaluate, case .synchronous = algorithm { phase = .idle }
    }

    public var isFinished: Bool { phase == .finished }
    /// ε at the experiment's δ so far (nil without DP at this tier).
    public var epsilon: Double? {
        if isCloud { return edgeEpsilon.values.max() }
        if let p = asyncAlgorithm?.privacy { return p.settings.isDifferentiallyPrivate ? p.epsilon : nil }
        guard let p = syncAlgorithm?.privacy, p.settings.isDifferentiallyPrivate else { return nil }
        return p.epsilon
    }
    public var wallSeconds: Double { elapsedBefore + now - (firstNow ?? now) }
    /// The models of the algorithm now.
    public var models: [Int: GlobalModel] { algorithm.base.models }
    /// The open round and who still owes an upload (status pages, tests).
    public var openRoundStatus: (wire: UInt64, waitingFor: [String])? {
        open.map { o in (o.wire, o.tasks.keys.filter { !complete(o, $0) }.sorted()) }
    }

    /// Handles one event at `now` (seconds on the caller's monotonic clock) and returns the effects, in the order the
    /// caller must carry them out.
    public mutating func handle(_ event: EngineEvent, now: Double) -> [EngineEffect] {
        if firstNow == nil { firstNow = now }
        self.now = now
        switch event {
        case .members(let m): members(m)
        case .upload(let from, let u): upload(u, from: from)
        case .evaluation(let from, let e): evaluation(e, from: from)
        case .modelRequest(let from): resendAll(to: [from], models: true)
        case .upstream(let u): upstream(u)
        case .secAgg(let from, let m, let bytes): secAgg(m, from: from, bytes: bytes)
        case .tick: break
        }
        if phase != .finished && !replaying && membershipKnown { advance() }
        if needsCheckpoint && config.persistent && !replaying {
            needsCheckpoint = false
            out.append(.checkpoint(snapshot()))
        }
        defer { out = [] }
        // Persist before anything leaves (raft's rule): a participant never holds a task or model that a restarted
        // aggregator's state has not reached. Journal entries keep their order ahead of the checkpoint.
        return out.filter(\.persists) + out.filter { !$0.persists }
    }

    mutating func upload(_ u: Upload, from sender: String) {
        if case .failure(let r) = u.delta {
            countUp(u.bytes)
            reject(r.kind, r.reason, wire: u.wire)
            return
        }
        if case .asynchronous = algorithm { asyncUpload(u, from: sender) } else { syncUpload(u, from: sender) }
    }

    // MARK: membership

    mutating func members(_ all: [Member]) {
        membershipKnown = true
        let devices = all.filter { $0.role == .device }
        for d in devices { deviceEdge[d.id] = d.edge }
        aliveDevices = devices.filter(\.alive).map(\.id).sorted()
        switch config.role {
        case .flat: participants = aliveDevices
        case .edge(let k): participants = devices.filter { $0.alive && $0.edge == k }.map(\.id).sorted()
        case .cloud: participants = all.filter { $0.role == .edgeAggregator && $0.alive }.map(\.id).sorted()
        }
    }

    /// Cloud: edge aggregator id → its devices (by the edge ordinal in "edge-<k>").
    var devicesOfEdges: [String: [String]] {
        var out: [String: [String]] = [:]
        for e in participants {
            let k = deviceOrdinal(e)
            out[e] = deviceEdge.filter { $0.value == k }.map(\.key).sorted()
        }
        return out
    }

    var isCloud: Bool { config.role == .cloud }
    var isEdge: Bool { if case .edge = config.role { return true }; return false }

    // MARK: the phase machine

    mutating func advance() {
        if case .asynchronous = algorithm { advanceAsync(); return }
        if isEdge { advanceEdge() }
        switch phase {
        case .starting:
            guard participants.count >= config.quorum, !isCloud || aliveDevices.count >= config.deviceQuorum else { return }
            startEval(round: 0)
        case .evaluating:
            guard var e = eval else { phase = .idle; return }
            if e.deadline == nil { e.deadline = now + config.deadlineS; eval = e }
            if e.done || now >= e.deadline! {
                if !e.done { log(.warn, "deadline", "evaluation \(e.wire) ended at its deadline without \(e.expected.filter { e.results[$0] == nil }.joined(separator: ", "))") }
                finishEval()
            } else {
                resendDue(to: owingEvaluation(e))
            }
        case .idle:
            if isEdge { return }  // advanceEdge opens inner rounds
            if round >= config.rounds { finish(); return }
            if syncAlgorithm?.privacyExhausted(available: participants) == true || config.cloudPrivacy?.exhausted(cloudRounds: round + 1) == true {
                log(.info, "privacy", "stopped after round \(round): one more round would take ε past the target")
                finish(); return
            }
            openRound()
        case .training:
            guard var o = open else { phase = .idle; return }
            if o.deadline == nil { o.deadline = now + config.deadlineS; open = o }
            if secure != nil { advanceSecure(); return }
            if o.tasks.keys.allSatisfy({ complete(o, $0) }) || now >= o.deadline! {
                let missing = o.tasks.keys.filter { !complete(o, $0) }.sorted()
                if !missing.isEmpty { log(.warn, "deadline", "round \(o.round) closed at its deadline without \(missing.joined(separator: ", "))") }
                closeRound()
            } else {
                resendDue(to: o.tasks.keys.filter { !complete(o, $0) }.sorted())
            }
        case .finished:
            return
        }
    }

    mutating func nextWire() -> UInt64 { wire += 1; return wire }

    /// Who an evaluation still waits for: the devices, or (cloud) the edges whose devices have not all answered.
    func owingEvaluation(_ e: EvalRound) -> [String] {
        let owing = e.expected.filter { e.results[$0] == nil }
        guard isCloud else { return owing }
        return participants.filter { edge in owing.contains { deviceEdge[$0] == deviceOrdinal(edge) } }
    }

    mutating func log(_ level: EngineLogLevel, _ kind: String, _ text: String) {
        if !replaying { out.append(.log(level, kind: kind, text)) }
    }

    mutating func reject(_ kind: String, _ reason: String, wire w: UInt64) {
        rejections[kind, default: 0] += 1
        if !replaying {
            out.append(.acknowledge(.rejected(kind: kind, reason: reason), wire: w))
        }
    }

    mutating func send(_ message: Outbound, to ids: [String]) {
        guard !ids.isEmpty, !replaying else { return }
        out.append(.send(message, to: ids))
    }

    /// Every heartbeat, repeats to `ids` the small messages of what they are owed (a participant missing the model
    /// asks for it with a ModelRequest).
    mutating func resendDue(to ids: [String]) {
        guard now - lastResend >= config.heartbeatS, !ids.isEmpty else { return }
        lastResend = now
        resendAll(to: ids, models: false)
    }

    /// What each of `ids` is owed now: its open task, or its evaluation request.
    mutating func resendAll(to ids: [String], models: Bool) {
        for id in ids {
            guard let message = owed(id) else { continue }
            if !replaying { out.append(models ? .send(message, to: [id]) : .resend(message, to: [id])) }
        }
    }

    func owed(_ id: String) -> Outbound? {
        if let o = open, let t = o.tasks[id], !complete(o, id) { return .task(t, models: taskModels(t)) }
        if case .asynchronous(let a) = algorithm, let (t, m) = a.openTask(of: id) { return .task(t, models: [0: m]) }
        if let e = eval, e.expected.contains(id) || (isCloud && devicesOfEdges[id] != nil), e.results[id] == nil || isCloud {
            return evaluationMessage(for: id, wire: e.wire)
        }
        return nil
    }

    func taskModels(_ t: RoundTask) -> [Int: [Float]] {
        let m = models
        return Dictionary(uniqueKeysWithValues: t.models.compactMap { c in m[c].map { (c, $0.parameters) } })
    }

    /// Writes one record for this round (tier by role), then resets the window.
    mutating func record(round r: Int, valLoss: [String: Double]) {
        let tier: Reports.Tier = isEdge ? .edge : .cloud
        var edgeOrdinal: Int? = nil
        if case .edge(let k) = config.role { edgeOrdinal = k }
        let rec = MetricRecord(round: r, paradigm: config.paradigm, tier: tier, cluster: nil, trainLoss: window.trainLoss, valLoss: valLoss,
                               bytesUp: window.bytesUp, bytesDown: window.bytesDown, participants: window.participants,
                               dropped: window.dropped, wallSeconds: wallSeconds, simTimeSeconds: simTime,
                               clusters: window.clusters, edge: edgeOrdinal, epsilon: epsilon)
        window = Window()
        if !valLoss.isEmpty {
            lastValLoss = valLoss
            if r == 0 { initialValLoss = valLoss }
        }
        if !replaying { out.append(.record(rec)) }
        needsCheckpoint = true
    }

    mutating func countUp(_ bytes: Int) { bytesUp += bytes; window.bytesUp += bytes }
    mutating func countDown(_ bytes: Int) { bytesDown += bytes; window.bytesDown += bytes }

    mutating func tellManager() {
        let map = algorithm.base.clusterMap
        guard !map.isEmpty, map != toldManager, !isEdge else { return }
        toldManager = map
        if !replaying { out.append(.clusterMap(map)) }
    }

    mutating func finish() {
        phase = .finished
        needsCheckpoint = true
        guard !replaying else { return }
        if isEdge { out.append(.finished(nil)); return }
        let a = algorithm.base
        var notes = config.notes.merging(a.notes) { $1 }
        notes["rejected"] = "\(rejections.values.reduce(0, +))"
        notes["initial_val_loss"] = (initialValLoss ?? [:]).sorted { $0.key < $1.key }
            .map { "\($0.key)=\(String(format: "%.4f", $0.value))" }.joined(separator: " ")
        if isCloud {
            notes["kappa1"] = "\(config.kappa1)"; notes["kappa2"] = "\(config.kappa2)"; notes["edges"] = "\(config.quorum)"
            notes["sketch_bytes"] = "\(sketchBytes)"
        }
        if let p = syncAlgorithm?.policy, p != .single { notes["clustered_mode"] = "\(p)" }
        if !gaps.isEmpty { notes["naive_product_gap_mean"] = String(format: "%.6f", gaps.reduce(0, +) / Double(gaps.count)) }
        let devices = isCloud ? deviceEdge.count : Set(participants + domains.keys + aliveDevices).count
        out.append(.finished(RunSummary(paradigm: config.paradigm, rounds: round, devices: devices, finalValLoss: lastValLoss,
                                        bytesUp: bytesUp, bytesDown: bytesDown, wallSeconds: wallSeconds, simTimeSeconds: simTime,
                                        ari: a.ari, notes: notes)))
    }
}
