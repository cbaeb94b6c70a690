// A federated algorithm decides which participants get which task and how their results combine; the round
// engine (Rounds/) runs it: phases, deadlines, evaluation, records, snapshots. One type per algorithm:
// SynchronousAlgorithm (any AggregationStrategy, in one model or in clusters) and AsynchronousAlgorithm
// (FedAsync, FedBuff).

public protocol FederatedAlgorithm: Sendable {
    var name: String { get }
    /// Every cluster's current model (one cluster, 0, unless clustered).
    var models: [Int: GlobalModel] { get }
    /// The cluster whose model a device trains and is evaluated on (nil: not in the federation).
    func cluster(of device: String) -> Int?
    /// Device → cluster, for the cluster manager (empty when there is one model).
    var clusterMap: [String: Int] { get }
    /// Adjusted Rand index of the clusters against the devices' reported domains.
    var ari: Double? { get }
    /// What the run summary shows about the algorithm.
    var notes: [String: String] { get }
}

/// Synchronous rounds: the participants of a round train from their cluster's model, the round closes when all have
/// delivered or at the deadline, and each cluster combines what it received with the strategy (FedAvg, a robust
/// rule), the LoRA mode and the server optimizer. One cluster is plain FedAvg (and friends); clustered federation
/// is the same algorithm with a cluster policy, so every strategy also works inside clusters.
public struct SynchronousAlgorithm: FederatedAlgorithm {
    public enum Clusters: Sendable, Equatable, Codable {
        /// One model for everybody.
        case single
        /// Warm-up in one cluster, then clusters from the update deltas (cosine k-means or CFL).
        case automatic
        /// The devices' true domains (the upper baseline).
        case oracle
        /// Every device its own model (the no-collaboration baseline).
        case local
        /// IFCA: k models after the warm-up, each device choosing by loss.
        case ifca(k: Int)
        /// The map and models a cloud gave this edge.
        case given
    }

    public let policy: Clusters
    public let config: ClusteredFederationConfig
    public let fraction: Double
    public let minParticipants: Int
    public let seed: UInt64
    public let settings: LocalSettings
    public internal(set) var federation: ClusteredFederation?
    /// DP: the accountant, the clip and the noise key (nil: no privacy stage at this tier).
    public internal(set) var privacy: PrivacyLedger?
    let initial: GlobalModel

    public init(policy: Clusters, config: ClusteredFederationConfig, initial: GlobalModel, settings: LocalSettings,
                fraction: Double = 1, minParticipants: Int = 1, seed: UInt64 = 0, privacy: PrivacySettings? = nil) {
        self.policy = policy; self.config = config; self.initial = initial; self.settings = settings
        self.fraction = fraction; self.minParticipants = minParticipants; self.seed = seed
        self.privacy = privacy.map { PrivacyLedger(settings: $0) }
    }

    public var name: String {
        switch policy {
        case .single: return config.rule.strategy.name
        default: return "clustered(\(config.rule.strategy.name))"
        }
    }

    public var models: [Int: GlobalModel] { federation?.models ?? [0: initial] }
    public func cluster(of device: String) -> Int? { federation == nil ? 0 : federation?.cluster(of: device) }
    public var clusterMap: [String: Int] {
        guard let f = federation, policy != .single else { return [:] }
        return f.clusterMap
    }
    public var ari: Double? { policy == .single || policy == .given ? nil : federation?.adjustedRandIndexAgainstTruth() }
    public var started: Bool { federation != nil }
    public var completedRounds: Int { federation?.completedRounds ?? 0 }

    public var notes: [String: String] {
        var n: [String: String] = ["strategy": config.rule.strategy.name]
        n.merge(privacy?.notes ?? [:]) { $1 }
        if config.rule.serverOptimizer.kind != .none { n["server_optimizer"] = config.rule.serverOptimizer.kind.rawValue }
        if let f = federation, policy != .single {
            n["clusters"] = f.clusterMap.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            n["k"] = "\(f.clusterIDs.count)"
            n["reclusterings"] = f.reclusterings.map { "r\($0.round):k=\($0.k),score=\(String(format: "%.3f", $0.score))" }.joined(separator: " ")
        }
        return n
    }

    /// Makes the federation from the devices known at the first round. `labels`: their reported domains (oracle
    /// mode, ARI); `given`: an edge's map from its cloud, with the cloud's models.
    public mutating func start(devices: [String], labels: [String: String], given: (map: [String: Int], models: [Int: [Float]])? = nil) throws(ParadigmError) {
        let mode: ClusterAssignmentMode
        switch policy {
        case .single: mode = .oracle(Dictionary(uniqueKeysWithValues: devices.map { ($0, 0) }))
        case .automatic: mode = .automatic
        case .oracle: mode = .oracle(labels: Dictionary(uniqueKeysWithValues: devices.map { ($0, labels[$0] ?? "?") }))
        case .local: mode = .localOnly
        case .ifca(let k): mode = .ifca(k: k)
        case .given: mode = .oracle(given?.map ?? [:])
        }
        var f = try ClusteredFederation(devices: given.map { Array($0.map.keys) } ?? devices, initial: initial, mode: mode, config: config,
                                        trueLabels: labels.isEmpty ? nil : labels)
        for (c, p) in given?.models ?? [:] { f.replaceParameters(cluster: c, with: p) }
        federation = f
    }

    /// Labels reported since the start (evaluations), for ARI.
    public mutating func label(_ labels: [String: String]) {
        guard !labels.isEmpty else { return }
        federation?.trueLabels = labels
    }

    /// Devices that joined after the start get a cluster.
    public mutating func admit(_ devices: [String], labels: [String: String]) {
        guard var f = federation, policy != .given else { return }
        let oracleIDs = Dictionary(uniqueKeysWithValues: Set(labels.values).sorted().enumerated().map { ($1, $0) })
        for d in devices where f.cluster(of: d) == nil {
            f.admit(d, oracle: policy == .oracle ? labels[d].flatMap { oracleIDs[$0] } : (policy == .single ? 0 : nil))
        }
        federation = f
    }

    /// Round `round`'s tasks. Flat and edge: a seeded sample of the available devices, each with its cluster's model
    /// (every model when devices choose). Cloud (`devicesOf`: edge → its devices): every available edge, with the
    /// models of its devices' clusters and their map.
    public func plan(round: Int, wire: UInt64, available: [String], devicesOf: [String: [String]]? = nil) -> [String: RoundTask] {
        guard let f = federation else { return [:] }
        var tasks: [String: RoundTask] = [:]
        if let devicesOf {
            let sketch = policy == .automatic && f.reclusterDue(afterRound: f.completedRounds + 1)
            for edge in available.sorted() {
                let devs = (devicesOf[edge] ?? []).filter { f.cluster(of: $0) != nil }.sorted()
                guard !devs.isEmpty else { continue }
                let map = Dictionary(uniqueKeysWithValues: devs.map { ($0, f.cluster(of: $0)!) })
                tasks[edge] = RoundTask(wire: wire, round: round, cluster: 0, models: Set(map.values).sorted(), settings: settings, clusterMap: map, sketches: sketch)
            }
            return tasks
        }
        let pool = available.filter { f.cluster(of: $0) != nil }
        let chosen = sampleDevices(pool, fraction: fraction, minimum: minParticipants, seed: seed, round: UInt64(round))
        let all = f.clusterIDs
        var share: [Int: Int] = [:]
        for d in chosen { share[f.cluster(of: d)!, default: 0] += 1 }
        for d in chosen {
            let c = f.cluster(of: d)!
            var p = privacy?.task(expected: chosen.count, share: f.devicesChoose ? chosen.count : share[c]!)
            if p?.secure == true, f.seedsFromSketchesNext {
                p?.sketch = privacy?.sketchRequest(dimension: f.config.sketchDimension > 0 ? f.config.sketchDimension : 64, seed: seed ^ wire)
            }
            tasks[d] = RoundTask(wire: wire, round: round, cluster: c, models: f.devicesChoose ? all : [c], chooseByLoss: f.devicesChoose,
                                 settings: settings, privacy: p)
        }
        return tasks
    }

    /// The privacy stage of the round just opened with `tasks` (sampled from `available`): each cluster's combine.
    public mutating func beginRound(wire: UInt64, tasks: [String: RoundTask], available: [String]) {
        guard let f = federation else { return }
        privacy?.open(expected: tasks.count, population: available.filter { f.cluster(of: $0) != nil }.count,
                      sketches: tasks.values.contains { $0.privacy?.sketch != nil })
        resumeRound(wire: wire, tasks: tasks)
    }

    /// The combines of the open round again (a restored engine replays its journal into them).
    mutating func resumeRound(wire: UInt64, tasks: [String: RoundTask]) {
        guard let ledger = privacy, var f = federation else { return }
        let chooses = tasks.values.contains { $0.chooseByLoss }
        var counts: [Int: Int] = [:]
        for t in tasks.values { counts[t.cluster, default: 0] += 1 }
        f.roundPrivacy = ledger.round(wire: wire, clusters: chooses ? nil : counts)
        federation = f
    }

    /// Would the next round take ε past the privacy target? (`available`: who it would sample from.)
    public func privacyExhausted(available: [String]) -> Bool {
        guard let ledger = privacy, let f = federation else { return false }
        let n = available.filter { f.cluster(of: $0) != nil }.count
        let f2 = fraction.isFinite ? min(1, max(0, fraction)) : 1
        let m = min(n, max(minParticipants, Int((f2 * Double(n)).rounded(.up))))
        return ledger.exhausted(expected: m, population: n)
    }

    /// Takes one upload of the open round for `task` (cluster checked against what the task offered).
    public mutating func accept(_ upload: Upload, delta: [Float], from participant: String, task: RoundTask, viaEdge: Bool) -> RejectedUpdate? {
        guard var f = federation else { return RejectedUpdate(device: participant, kind: "not_started", reason: "no round is open") }
        federation = nil  // `f` the only owner: the round's running sums change in place, not copied per upload
        defer { federation = f }
        if upload.kind == .sketch {
            guard f.cluster(of: participant) != nil else {
                return RejectedUpdate(device: participant, kind: "unknown_device", reason: "\(participant) is not in this federation")
            }
            f.addClusteringPoint(device: participant, vector: delta)
            return nil
        }
        let c = upload.cluster
        let chooses = task.chooseByLoss || viaEdge
        guard chooses ? task.models.contains(c) : c == task.cluster else {
            return RejectedUpdate(device: participant, kind: "wrong_cluster",
                                  reason: "cluster \(c) was not offered to \(participant) (offered \(chooses ? task.models : [task.cluster]))")
        }
        let cluster = c
        let version = f.models[cluster]?.version ?? 0
        let update = ModelUpdate(device: viaEdge ? "\(participant)/c\(cluster)" : participant, round: upload.wire, samples: upload.samples,
                                 baseVersion: version, delta: delta, loss: upload.loss, clipReport: upload.clipReport)
        return f.accept(update, cluster: cluster, clusteringPoint: !viaEdge)
    }

    /// A device's sketch from its masked upload (IFCA's seeding round under secure aggregation).
    public mutating func addSketch(device: String, vector: [Float]) {
        federation?.addClusteringPoint(device: device, vector: vector)
    }

    public mutating func close() -> ClusteredRound? {
        guard var f = federation else { return nil }
        let r = f.closeRound()
        federation = f
        privacy?.close(r.privacy.sorted { $0.key < $1.key }.map(\.value))
        return r
    }
}
