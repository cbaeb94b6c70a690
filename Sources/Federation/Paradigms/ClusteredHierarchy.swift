// Clustered + hierarchical federation: the cloud keeps one model per cluster, edges keep one per cluster of their
// devices. An edge uploads, per cluster, its cluster model − the cloud cluster model it started from (after κ2
// edge rounds); the cloud FedAvgs those per cluster. Clustering runs in the cloud on per-device random-projection
// sketches that the edges relay, so full device deltas never cross the backhaul. Warm-up and re-clustering are
// counted in cloud rounds. Cluster ids stay stable (ClusteredFederation's overlap matching).

/// One edge's aggregate for one cluster after its κ2 edge rounds.
public struct EdgeClusterUpdate: Sendable, Equatable {
    public var edge: String
    public var cluster: Int
    /// Device samples behind the edge's cluster model (the FedAvg weight at the cloud).
    public var samples: Int
    /// Edge cluster model − the cloud cluster model it started from.
    public var delta: [Float]
    /// The cloud cluster model's version the edge started from.
    public var baseVersion: UInt64
    public var loss: Float

    public init(edge: String, cluster: Int, samples: Int, delta: [Float], baseVersion: UInt64, loss: Float = 0) {
        self.edge = edge; self.cluster = cluster; self.samples = samples; self.delta = delta
        self.baseVersion = baseVersion; self.loss = loss
    }

    /// As a ModelUpdate for the cluster's FedAvg (sender "<edge>/c<cluster>").
    public var modelUpdate: ModelUpdate {
        ModelUpdate(device: "\(edge)/c\(cluster)", samples: samples, baseVersion: baseVersion, delta: delta, loss: loss)
    }
}

/// The cloud's state in a clustered hierarchical run: device → cluster, one GlobalModel per cluster.
public struct ClusteredHierarchy: Sendable {
    public private(set) var federation: ClusteredFederation

    /// `config.initialisation` is forced to `.parent`: sketches cannot rebuild member models.
    public init(devices: [String], initial: GlobalModel, mode: ClusterAssignmentMode = .automatic,
                config: ClusteredFederationConfig = ClusteredFederationConfig(),
                trueLabels: [String: String]? = nil) throws(ParadigmError) {
        var c = config
        c.initialisation = .parent
        federation = try ClusteredFederation(devices: devices, initial: initial, mode: mode, config: c, trueLabels: trueLabels)
    }

    /// Rebuilds the cloud's state from `snapshot()` (see ClusteredFederation(restoring:)).
    public init(restoring s: ClusteredFederationSnapshot, models: [Int: [Float]], layout: ParameterLayout, mode: ClusterAssignmentMode,
                config: ClusteredFederationConfig, trueLabels: [String: String]? = nil) throws(ParadigmError) {
        var c = config
        c.initialisation = .parent
        federation = try ClusteredFederation(restoring: s, models: models, layout: layout, mode: mode, config: c, trueLabels: trueLabels)
    }

    public func snapshot() -> (state: ClusteredFederationSnapshot, models: [Int: [Float]]) { federation.snapshot() }

    /// Device -> true domain, for ARI.
    public var trueLabels: [String: String]? {
        get { federation.trueLabels }
        set { federation.trueLabels = newValue }
    }
    public var clusterMap: [String: Int] { federation.clusterMap }
    public var clusterIDs: [Int] { federation.clusterIDs }
    public var models: [Int: GlobalModel] { federation.models }
    public var completedCloudRounds: Int { federation.completedRounds }
    public var reclusterings: [ReclusterEvent] { federation.reclusterings }
    public func cluster(of device: String) -> Int? { federation.cluster(of: device) }

    /// The clusters an edge needs models for: those of its devices, sorted.
    public func clusters(of devices: some Sequence<String>) -> [Int] { Set(devices.compactMap { cluster(of: $0) }).sorted() }

    /// Will the cloud (re)cluster after the next cloud round? Then the edges relay device sketches in it.
    public var sketchesDueNextRound: Bool { federation.reclusterDue(afterRound: completedCloudRounds + 1) }

    /// nil when `aggregate` would accept this edge update.
    public func check(_ u: EdgeClusterUpdate) -> RejectedUpdate? { federation.check(u.modelUpdate, cluster: u.cluster) }

    /// One cloud round: per-cluster sample-weighted FedAvg of the (edge, cluster) deltas, then, when due,
    /// re-clustering on the devices' sketches (devices without one keep their cluster).
    public mutating func aggregate(edgeUpdates: [EdgeClusterUpdate], deviceSketches: [String: [Float]] = [:]) -> ClusteredRound {
        federation.aggregate(clusterUpdates: edgeUpdates.map { ($0.cluster, $0.modelUpdate) },
                             deviceDeltas: Self.sketchUpdates(deviceSketches))
    }

    /// Re-clusters now on these sketches (outside the schedule).
    @discardableResult
    public mutating func recluster(deviceSketches: [String: [Float]]) -> ReclusterEvent? {
        federation.recluster(Self.sketchUpdates(deviceSketches))
    }

    public func adjustedRandIndexAgainstTruth() -> Double? { federation.adjustedRandIndexAgainstTruth() }

    static func sketchUpdates(_ sketches: [String: [Float]]) -> [ModelUpdate] {
        sketches.sorted { $0.key < $1.key }.map { ModelUpdate(device: $0.key, samples: 1, baseVersion: 0, delta: $0.value) }
    }

    /// What an edge relays for a device: the seeded random projection of its delta (the same matrix at every edge
    /// for a seed), or the delta itself when `dimension` is 0 or not smaller than the delta.
    public static func sketch(_ delta: [Float], dimension: Int, seed: UInt64) -> [Float] {
        sketches(["": delta], dimension: dimension, seed: seed)[""] ?? delta
    }

    /// Sketches of several devices' deltas in one pass (the projection matrix is generated once, not per device).
    public static func sketches(_ deltas: [String: [Float]], dimension: Int, seed: UInt64) -> [String: [Float]] {
        let d = deltas.values.map(\.count).max() ?? 0
        guard dimension > 0, dimension < d else { return deltas }
        let ids = deltas.keys.sorted()
        let out = RandomProjection(inputDimension: d, outputDimension: dimension, seed: seed).project(ids.map { deltas[$0]! })
        return Dictionary(uniqueKeysWithValues: zip(ids, out).map { ($0, $1) })
    }
}
