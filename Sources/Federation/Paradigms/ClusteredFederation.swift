// Clustered federation (CFL/IFCA family): one model per cluster; devices whose updates point the same way share one.

/// How devices get their clusters.
public enum ClusterAssignmentMode: Sendable, Equatable {
    /// Warm-up rounds in one cluster, then clustering by update deltas, re-clustered every M rounds.
    case automatic
    /// Clusters given (the true domains): the upper baseline.
    case oracle([String: Int])
    /// Every device its own cluster: the no-collaboration baseline.
    case localOnly

    /// Oracle clusters from true labels: distinct labels, sorted, become ids 0, 1, 2, …
    public static func oracle(labels: [String: String]) -> ClusterAssignmentMode {
        let ids = Dictionary(uniqueKeysWithValues: Set(labels.values).sorted().enumerated().map { ($1, $0) })
        return .oracle(labels.mapValues { ids[$0] ?? 0 })
    }
}

/// Where a cluster that appears at a re-clustering takes its model from.
public enum SplitInitialisation: String, Sendable, Equatable, CaseIterable {
    /// A copy of the (just aggregated) model of the cluster most of its members came from.
    case parent
    /// Its members' models: the base they trained from plus their sample-weighted mean delta. Every cluster whose
    /// membership changed is re-initialised this way.
    case memberMean
}

public struct ClusteredFederationConfig: Sendable {
    /// Rounds in one shared cluster before the first clustering (W ≥ 1: clustering needs one round of deltas).
    public var warmupRounds: Int
    /// Re-cluster every M rounds after the first clustering; 0 = cluster once.
    public var reclusterEvery: Int
    public var method: any ClusteringMethod
    /// Cluster RandomProjection sketches of this size; 0 = the full deltas.
    public var sketchDimension: Int
    /// Subtract the mean delta first: real deltas share a large common direction (the language itself).
    public var center: Bool
    public var initialisation: SplitInitialisation
    /// false (CFL): a re-clustering only splits existing clusters. After the first clustering each device's delta
    /// is measured from its own cluster's model, so it no longer carries what the clusters share and cannot
    /// justify a merge (seen on the paper workload: two domains merged at silhouette 0.27).
    public var mergeOnRecluster: Bool
    public var seed: UInt64
    /// Applied per cluster; the default takes only updates on the cluster model's current version.
    public var validator: UpdateValidator
    /// How each cluster combines its members' LoRA factors (exact modes replace the FedAvg mean by `aggregateLoRA`
    /// before any re-clustering, so split clusters start from the exact parent).
    public var loraMode: LoRAAggregationMode = .naive

    public init(warmupRounds: Int = 2, reclusterEvery: Int = 0, method: any ClusteringMethod = SilhouetteKMeans(),
                sketchDimension: Int = 0, center: Bool = true, initialisation: SplitInitialisation = .parent,
                mergeOnRecluster: Bool = false, seed: UInt64 = 0, validator: UpdateValidator = UpdateValidator(maxStaleness: 0)) {
        self.warmupRounds = max(1, warmupRounds); self.reclusterEvery = max(0, reclusterEvery); self.method = method
        self.sketchDimension = max(0, sketchDimension); self.center = center; self.initialisation = initialisation
        self.mergeOnRecluster = mergeOnRecluster
        self.seed = seed; self.validator = validator
    }
}

/// What one re-clustering did.
public struct ReclusterEvent: Codable, Sendable, Equatable {
    public var round: Int
    public var k: Int
    /// The clustering method's score (silhouette, or CFL's worst cross-cluster cosine).
    public var score: Double
    /// Clusters that appeared, each with the cluster it split from (most of its members came from there).
    public var newClusters: [Int: Int]
    /// Clusters that vanished (no members left).
    public var removedClusters: [Int]
    public var clusterMap: [String: Int]
    public var ari: Double?
}

/// One aggregated round of every cluster.
public struct ClusteredRound: Sendable, Equatable {
    public var round: Int
    /// Cluster id -> FedAvg's result (clusters without an accepted update are absent).
    public var results: [Int: AggregationResult]
    public var rejected: [RejectedUpdate]
    public var recluster: ReclusterEvent?
    /// Device -> cluster after this round (what the ClusterManager publishes).
    public var clusterMap: [String: Int]
    public var ari: Double?
    /// Exact LoRA modes: per aggregated cluster, ‖mean(B)·mean(A) − mean(B·A)‖ / ‖mean(B·A)‖ (naiveProductGap).
    public var naiveProductGaps: [Int: Double] = [:]
    /// Exact LoRA modes: clusters whose exact combine failed and kept the FedAvg mean, with why.
    public var combineErrors: [Int: String] = [:]
}

/// One GlobalModel per cluster, FedAvg inside each cluster, clusters found from update deltas with stable ids.
public struct ClusteredFederation: Sendable {
    public let mode: ClusterAssignmentMode
    public var config: ClusteredFederationConfig
    /// Sorted device ids.
    public let devices: [String]
    /// Device -> true domain, for ARI (optional).
    public var trueLabels: [String: String]?
    public private(set) var assignment: [String: Int]
    public private(set) var models: [Int: GlobalModel]
    public private(set) var completedRounds = 0
    public private(set) var reclusterings: [ReclusterEvent] = []
    private var nextClusterID: Int
    /// Cluster models before the last aggregation: the base of the deltas that clustering sees.
    private var lastBase: [Int: [Float]] = [:]
    private var lastGaps: [Int: Double] = [:]
    private var lastErrors: [Int: String] = [:]

    public init(devices: [String], initial: GlobalModel, mode: ClusterAssignmentMode = .automatic,
                config: ClusteredFederationConfig = ClusteredFederationConfig(),
                trueLabels: [String: String]? = nil) throws(ParadigmError) {
        let devices = Array(Set(devices)).sorted()
        guard !devices.isEmpty else { throw .noDevices }
        self.mode = mode; self.config = config; self.devices = devices; self.trueLabels = trueLabels
        switch mode {
        case .automatic:
            assignment = Dictionary(uniqueKeysWithValues: devices.map { ($0, 0) })
        case let .oracle(given):
            var a: [String: Int] = [:]
            for d in devices {
                guard let c = given[d] else { throw .missingOracleCluster(device: d) }
                a[d] = c
            }
            assignment = a
        case .localOnly:
            assignment = Dictionary(uniqueKeysWithValues: devices.enumerated().map { ($1, $0) })
        }
        models = Dictionary(uniqueKeysWithValues: Set(assignment.values).map { ($0, initial) })
        nextClusterID = (assignment.values.max() ?? -1) + 1
    }

    /// Device -> cluster: the map the ClusterManager publishes.
    public var clusterMap: [String: Int] { assignment }
    public var clusterIDs: [Int] { models.keys.sorted() }
    public func cluster(of device: String) -> Int? { assignment[device] }
    /// The model a device trains from this round.
    public func model(forDevice device: String) -> GlobalModel? { assignment[device].flatMap { models[$0] } }
    public func members(of cluster: Int) -> [String] { devices.filter { assignment[$0] == cluster } }
    public var isWarmingUp: Bool { mode == .automatic && completedRounds < config.warmupRounds }

    /// Overwrites one cluster's parameters (same length, version kept): exact LoRA aggregation replaces FedAvg's mean.
    public mutating func replaceParameters(cluster c: Int, with parameters: [Float]) {
        guard var m = models[c], m.parameters.count == parameters.count else { return }
        m.parameters = parameters
        models[c] = m
    }

    /// Is the clustering redone after round r (1-based)? At W, then at W + M, W + 2M, … (automatic mode only).
    public func reclusterDue(afterRound r: Int) -> Bool { Self.reclusterDue(afterRound: r, mode: mode, config: config) }

    /// The same schedule without a federation (an edge aggregator decides whether to relay device sketches).
    public static func reclusterDue(afterRound r: Int, mode: ClusterAssignmentMode, config: ClusteredFederationConfig) -> Bool {
        guard mode == .automatic else { return false }
        let w = config.warmupRounds, m = config.reclusterEvery
        return r == w || (m > 0 && r > w && (r - w) % m == 0)
    }

    /// ARI of the current clusters against the true labels (devices without a label are left out).
    public func adjustedRandIndexAgainstTruth() -> Double? {
        guard let truth = trueLabels else { return nil }
        let labelled = devices.filter { truth[$0] != nil && assignment[$0] != nil }
        guard !labelled.isEmpty else { return nil }
        let ids = Dictionary(uniqueKeysWithValues: Set(labelled.compactMap { truth[$0] }).sorted().enumerated().map { ($1, $0) })
        return adjustedRandIndex(labelled.map { ids[truth[$0]!]! }, labelled.map { assignment[$0]! })
    }

    /// Checks one update at upload time (for the acknowledgement) against its device's cluster model, without
    /// keeping it: nil when `aggregate` would accept it.
    public func check(_ update: ModelUpdate) -> RejectedUpdate? {
        guard let model = model(forDevice: update.device) else {
            return RejectedUpdate(device: update.device, kind: "unknown_device", reason: ParadigmError.unknownDevice(update.device).description)
        }
        do { try config.validator.validate(update, against: model) } catch {
            return RejectedUpdate(device: update.device, kind: error.kind, reason: error.description)
        }
        return nil
    }

    /// Aggregates one round: each update goes to its device's cluster, FedAvg (sample-weighted) per cluster.
    /// When due, re-clusters on this round's accepted deltas afterwards.
    public mutating func aggregate(_ updates: [ModelUpdate]) -> ClusteredRound {
        var rejected: [RejectedUpdate] = []
        var pairs: [(cluster: Int, update: ModelUpdate)] = []
        for u in updates {
            guard let c = assignment[u.device], models[c] != nil else {
                rejected.append(RejectedUpdate(device: u.device, kind: "unknown_device",
                                               reason: ParadigmError.unknownDevice(u.device).description))
                continue
            }
            pairs.append((c, u))
        }
        let (results, accepted, bad) = fedAvgPerCluster(pairs)
        return finishRound(results: results, rejected: rejected + bad, reclusterOn: accepted)
    }

    /// Hierarchical: updates already keyed by cluster (an edge's cluster-model delta; `device` names the sender),
    /// FedAvg per cluster; when due, re-clusters the devices on `deviceDeltas` (their deltas or sketches).
    public mutating func aggregate(clusterUpdates: [(cluster: Int, update: ModelUpdate)], deviceDeltas: [ModelUpdate]) -> ClusteredRound {
        var rejected: [RejectedUpdate] = []
        var pairs: [(cluster: Int, update: ModelUpdate)] = []
        for p in clusterUpdates {
            guard models[p.cluster] != nil else {
                rejected.append(RejectedUpdate(device: p.update.device, kind: "unknown_cluster", reason: "cluster \(p.cluster) does not exist (clusters: \(clusterIDs))"))
                continue
            }
            pairs.append(p)
        }
        let (results, _, bad) = fedAvgPerCluster(pairs)
        return finishRound(results: results, rejected: rejected + bad, reclusterOn: deviceDeltas)
    }

    /// Checks an update against one cluster's model (as `aggregate(clusterUpdates:)` would): nil when accepted.
    public func check(_ update: ModelUpdate, cluster c: Int) -> RejectedUpdate? {
        guard let model = models[c] else {
            return RejectedUpdate(device: update.device, kind: "unknown_cluster", reason: "cluster \(c) does not exist (clusters: \(clusterIDs))")
        }
        do { try config.validator.validate(update, against: model) } catch {
            return RejectedUpdate(device: update.device, kind: error.kind, reason: error.description)
        }
        return nil
    }

    /// Sample-weighted FedAvg inside each cluster; remembers each aggregated cluster's base for re-clustering.
    private mutating func fedAvgPerCluster(_ pairs: [(cluster: Int, update: ModelUpdate)])
        -> (results: [Int: AggregationResult], accepted: [ModelUpdate], rejected: [RejectedUpdate]) {
        var rejected: [RejectedUpdate] = []
        var byCluster: [Int: FedAvg] = [:]
        var accepted: [ModelUpdate] = []
        var members: [Int: [ModelUpdate]] = [:]
        for (c, u) in pairs {
            guard var model = models[c] else { continue }
            var strategy = byCluster[c] ?? FedAvg(quorum: 1, validator: config.validator)
            do {
                _ = try strategy.submit(u, to: &model)
                accepted.append(u)
                members[c, default: []].append(u)
            } catch {
                rejected.append(RejectedUpdate(device: u.device, kind: error.kind, reason: error.description))
            }
            byCluster[c] = strategy
        }
        var results: [Int: AggregationResult] = [:]
        lastBase = [:]
        lastGaps = [:]; lastErrors = [:]
        for (c, var strategy) in byCluster {
            guard var model = models[c] else { continue }
            let base = model.parameters
            lastBase[c] = base
            if case let .applied(r) = strategy.closeRound(&model) {
                results[c] = r
                if config.loraMode != .naive { exactCombine(cluster: c, base: base, updates: members[c] ?? [], into: &model) }
            }
            models[c] = model
        }
        return (results, accepted, rejected)
    }

    /// Replaces the FedAvg mean by `aggregateLoRA` of the members' adapters (base + Δ, sample-weighted); on failure
    /// the mean stays and the error is reported.
    private mutating func exactCombine(cluster c: Int, base: [Float], updates: [ModelUpdate], into model: inout GlobalModel) {
        let adapters = updates.map { u -> [Float] in var x = base; VectorMath.axpy(1, u.delta, &x); return x }
        let weights = sampleWeights(updates.map(\.samples))
        do {
            lastGaps[c] = try naiveProductGap(adapters, weights: weights, layout: model.layout)
            model.parameters = try aggregateLoRA(adapters, weights: weights, layout: model.layout, mode: config.loraMode, global: base)
        } catch {
            lastErrors[c] = error.description
        }
    }

    private mutating func finishRound(results: [Int: AggregationResult], rejected: [RejectedUpdate], reclusterOn deltas: [ModelUpdate]) -> ClusteredRound {
        completedRounds += 1
        var event: ReclusterEvent? = nil
        if reclusterDue(afterRound: completedRounds) { event = recluster(deltas) }
        var round = ClusteredRound(round: completedRounds, results: results, rejected: rejected, recluster: event,
                                   clusterMap: assignment, ari: adjustedRandIndexAgainstTruth())
        round.naiveProductGaps = lastGaps
        round.combineErrors = lastErrors
        return round
    }

    /// Re-clusters the devices that sent these deltas (others keep their cluster). New clusters are matched to old
    /// ones by member overlap, so ids stay stable. Needs deltas from at least two devices; returns nil otherwise.
    @discardableResult
    public mutating func recluster(_ updates: [ModelUpdate]) -> ReclusterEvent? {
        var latest: [String: ModelUpdate] = [:]
        for u in updates where assignment[u.device] != nil { latest[u.device] = u }
        let members = latest.keys.sorted()
        guard members.count >= 2 else { return nil }
        var points = members.map { latest[$0]!.delta }
        let d = points.map(\.count).max() ?? 0
        if config.sketchDimension > 0 && config.sketchDimension < d {
            points = RandomProjection(inputDimension: d, outputDimension: config.sketchDimension, seed: config.seed).project(points)
        }
        if config.center { points = centered(points) }
        let found = config.method.cluster(points)
        // k = 1 is no evidence of structure, not a merge: once devices train on their own cluster models, their
        // centred deltas look alike. Existing clusters stay (CFL likewise only ever splits).
        if found.k <= 1 && Set(members.compactMap { assignment[$0] }).count > 1 {
            let event = ReclusterEvent(round: completedRounds, k: Set(assignment.values).count, score: found.score,
                                       newClusters: [:], removedClusters: [], clusterMap: assignment,
                                       ari: adjustedRandIndexAgainstTruth())
            reclusterings.append(event)
            return event
        }

        let oldIDs = members.map { assignment[$0]! }
        // Split only: the groups are (old cluster, new label) pairs (Clustering renumbers them), so no merge.
        let clustering = config.mergeOnRecluster ? found
            : Clustering(labels: zip(oldIDs, found.labels).map { $0.0 * (found.k + 1) + $0.1 }, score: found.score)
        let (ids, parents) = matchClusters(newLabels: clustering.labels, oldIDs: oldIDs, k: clustering.k)
        let before = assignment
        for (i, m) in members.enumerated() { assignment[m] = ids[clustering.labels[i]] }

        var newClusters: [Int: Int] = [:]
        for label in 0..<clustering.k {
            let id = ids[label], parent = parents[label]
            let memberIdx = (0..<members.count).filter { clustering.labels[$0] == label }
            let isNew = models[id] == nil
            if isNew { newClusters[id] = parent }
            let changed = isNew || Set(memberIdx.map { members[$0] }) != Set(before.filter { $0.value == id }.map(\.key))
            guard let parentModel = models[parent] else { continue }
            switch config.initialisation {
            case .parent where isNew:
                models[id] = parentModel
            case .memberMean where changed:
                var m = parentModel
                var x = lastBase[parent] ?? parentModel.parameters
                let w = sampleWeights(memberIdx.map { latest[members[$0]]!.samples })
                for (j, i) in memberIdx.enumerated() where latest[members[i]]!.delta.count == x.count {
                    VectorMath.axpy(Float(w[j]), latest[members[i]]!.delta, &x)
                }
                m.parameters = x
                models[id] = m
            case .parent, .memberMean:
                break
            }
        }
        let alive = Set(assignment.values)
        let removed = models.keys.filter { !alive.contains($0) }.sorted()
        for c in removed { models[c] = nil }
        let event = ReclusterEvent(round: completedRounds, k: Set(assignment.values).count, score: clustering.score,
                                   newClusters: newClusters, removedClusters: removed, clusterMap: assignment,
                                   ari: adjustedRandIndexAgainstTruth())
        reclusterings.append(event)
        return event
    }

    /// Greedy maximum-overlap matching of new labels to old cluster ids (largest overlap first; ties to the lower
    /// ids). Unmatched labels get fresh ids. Also returns each label's parent: the old id most of its members had.
    private mutating func matchClusters(newLabels: [Int], oldIDs: [Int], k: Int) -> (ids: [Int], parents: [Int]) {
        var overlap: [Int: [Int: Int]] = [:]
        for (l, o) in zip(newLabels, oldIDs) { overlap[l, default: [:]][o, default: 0] += 1 }
        var pairs: [(count: Int, label: Int, old: Int)] = []
        for (l, row) in overlap { for (o, n) in row { pairs.append((n, l, o)) } }
        pairs.sort { ($0.count, -$0.old, -$0.label) > ($1.count, -$1.old, -$1.label) }
        var ids = [Int](repeating: -1, count: k)
        var usedOld = Set<Int>()
        for p in pairs where ids[p.label] < 0 && !usedOld.contains(p.old) {
            ids[p.label] = p.old; usedOld.insert(p.old)
        }
        for l in 0..<k where ids[l] < 0 { ids[l] = nextClusterID; nextClusterID += 1 }
        let parents = (0..<k).map { l -> Int in
            let row = overlap[l] ?? [:]
            return row.max { ($0.value, -$0.key) < ($1.value, -$1.key) }?.key ?? ids[l]
        }
        return (ids, parents)
    }
}

/// What a checkpoint keeps of a ClusteredFederation besides the cluster models' parameters (stored as binary).
/// Re-clustering state of the last round (its bases) is not kept: the next round sets it again.
public struct ClusteredFederationSnapshot: Codable, Sendable, Equatable {
    public var devices: [String]
    public var assignment: [String: Int]
    /// Cluster id -> its model's version.
    public var versions: [Int: UInt64]
    public var completedRounds: Int
    public var reclusterings: [ReclusterEvent]
    public var nextClusterID: Int
}

extension ClusteredFederation {
    public func snapshot() -> (state: ClusteredFederationSnapshot, models: [Int: [Float]]) {
        (ClusteredFederationSnapshot(devices: devices, assignment: assignment, versions: models.mapValues(\.version),
                                     completedRounds: completedRounds, reclusterings: reclusterings, nextClusterID: nextClusterID),
         models.mapValues(\.parameters))
    }

    /// Rebuilds a federation from `snapshot()`; every model must fit `layout` and every device's cluster must exist.
    public init(restoring s: ClusteredFederationSnapshot, models saved: [Int: [Float]], layout: ParameterLayout,
                mode: ClusterAssignmentMode, config: ClusteredFederationConfig, trueLabels: [String: String]? = nil) throws(ParadigmError) {
        guard !s.devices.isEmpty else { throw .noDevices }
        guard Set(s.assignment.keys) == Set(s.devices) else { throw .badSnapshot(reason: "the cluster map does not list exactly the devices") }
        guard Set(saved.keys) == Set(s.versions.keys), !saved.isEmpty else {
            throw .badSnapshot(reason: "models for clusters \(saved.keys.sorted()) but versions for \(s.versions.keys.sorted())")
        }
        for (c, p) in saved where p.count != layout.count {
            throw .badSnapshot(reason: "cluster \(c) has \(p.count) parameters, the adapter layout \(layout.count)")
        }
        if let c = Set(s.assignment.values).subtracting(saved.keys).min() { throw .badSnapshot(reason: "devices in cluster \(c), which has no model") }
        guard s.completedRounds >= 0, s.nextClusterID > (saved.keys.max() ?? -1) else {
            throw .badSnapshot(reason: "round \(s.completedRounds), next cluster id \(s.nextClusterID)")
        }
        try self.init(devices: s.devices, initial: GlobalModel(layout: layout, parameters: saved.values.first!), mode: mode,
                      config: config, trueLabels: trueLabels)
        assignment = s.assignment
        models = Dictionary(uniqueKeysWithValues: saved.map { ($0.key, GlobalModel(layout: layout, parameters: $0.value, version: s.versions[$0.key] ?? 0)) })
        completedRounds = s.completedRounds
        reclusterings = s.reclusterings
        nextClusterID = s.nextClusterID
    }
}
