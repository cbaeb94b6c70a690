// Clustered federation (CFL/IFCA family): one model per cluster; devices whose updates point the same way share one.

/// How devices get their clusters.
public enum ClusterAssignmentMode: Sendable, Equatable, Codable {
    /// Warm-up rounds in one cluster, then clustering by update deltas, re-clustered every M rounds.
    case automatic
    /// IFCA (Ghosh et al. 2020): warm-up in one cluster, then k models seeded from the warm-up deltas (farthest
    /// points); from then on every device trains the model with the lowest loss on its data and reports which.
    case ifca(k: Int)
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
public enum SplitInitialisation: String, Sendable, Equatable, CaseIterable, Codable {
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
    /// How each cluster combines its members' updates (strategy, weight cap, LoRA mode, server optimizer). Exact LoRA
    /// modes combine before any re-clustering, so split clusters start from the exact parent.
    public var rule = CombineRule()
    public var loraMode: LoRAAggregationMode {
        get { rule.loraMode }
        set { rule.loraMode = newValue }
    }

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
    /// Cluster id -> its aggregation's result (clusters without an accepted update are absent).
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
    /// Under DP: what each aggregated cluster released.
    public var privacy: [Int: PrivateRoundReport] = [:]
}

/// One GlobalModel per cluster, combined inside each cluster by the configured rule, clusters found from update
/// deltas (or chosen by the devices, IFCA) with stable ids. A round is incremental: `accept` each update as it
/// arrives, `closeRound` at the end; only what the rule needs is held (see RoundAggregate).
public struct ClusteredFederation: Sendable {
    public let mode: ClusterAssignmentMode
    public var config: ClusteredFederationConfig
    /// Sorted device ids.
    public private(set) var devices: [String]
    /// Device -> true domain, for ARI (optional).
    public var trueLabels: [String: String]?
    public private(set) var assignment: [String: Int]
    public private(set) var models: [Int: GlobalModel]
    public private(set) var optimizers: [Int: ServerOptimizer] = [:]
    public private(set) var completedRounds = 0
    public private(set) var reclusterings: [ReclusterEvent] = []
    private var nextClusterID: Int
    /// IFCA seeded from sketches (no individual deltas): its k models start equal, so devices train the cluster the
    /// sketches gave them until this many rounds are complete, and choose by loss after.
    public private(set) var assignedUntil: Int?
    // The open round: one aggregate per cluster, and the deltas clustering will see (re-clustering rounds only).
    private var aggregates: [Int: RoundAggregate] = [:]
    /// Under DP: how each cluster of the open round combines (set when the round opens).
    public var roundPrivacy: RoundPrivacy?
    private var points: [String: ModelUpdate] = [:]
    private var rejectedThisRound: [RejectedUpdate] = []

    public init(devices: [String], initial: GlobalModel, mode: ClusterAssignmentMode = .automatic,
                config: ClusteredFederationConfig = ClusteredFederationConfig(),
                trueLabels: [String: String]? = nil) throws(ParadigmError) {
        let devices = Array(Set(devices)).sorted()
        guard !devices.isEmpty else { throw .noDevices }
        self.mode = mode; self.config = config; self.devices = devices; self.trueLabels = trueLabels
        switch mode {
        case .automatic, .ifca:
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
    public var isWarmingUp: Bool {
        switch mode {
        case .automatic, .ifca: return completedRounds < config.warmupRounds
        default: return false
        }
    }
    /// IFCA after its warm-up: devices choose their model by loss.
    public var devicesChoose: Bool {
        if case .ifca = mode { return completedRounds >= max(config.warmupRounds, assignedUntil ?? 0) && models.count > 1 }
        return false
    }

    /// IFCA's next round seeds its models, and only sketches can reach it (secure aggregation).
    public var seedsFromSketchesNext: Bool {
        if case .ifca = mode { return reclusterDue(afterRound: completedRounds + 1) }
        return false
    }
    /// Updates accepted in the open round.
    public var acceptedThisRound: Int { aggregates.values.reduce(0) { $0 + $1.count } }

    /// A device that was not there at the start joins: its oracle cluster, its own (local), or the lowest cluster id.
    public mutating func admit(_ device: String, oracle: Int? = nil) {
        guard assignment[device] == nil else { return }
        let c: Int
        switch mode {
        case .localOnly:
            c = nextClusterID; nextClusterID += 1
            models[c] = models[clusterIDs.first ?? 0] ?? models.values.first
        case .oracle:
            c = oracle ?? clusterIDs.first ?? 0
            if models[c] == nil { models[c] = models[clusterIDs.first ?? 0]; nextClusterID = max(nextClusterID, c + 1) }
        case .automatic, .ifca:
            c = clusterIDs.first ?? 0
        }
        assignment[device] = c
        devices = (devices + [device]).sorted()
    }

    /// Overwrites one cluster's parameters (same length, version kept).
    public mutating func replaceParameters(cluster c: Int, with parameters: [Float]) {
        guard var m = models[c], m.parameters.count == parameters.count else { return }
        m.parameters = parameters
        models[c] = m
    }

    /// Is the clustering redone after round r (1-based)? At W, then at W + M, W + 2M, … (automatic mode); IFCA seeds
    /// its k models once, at W.
    public func reclusterDue(afterRound r: Int) -> Bool { Self.reclusterDue(afterRound: r, mode: mode, config: config) }

    /// The same schedule without a federation (an edge aggregator decides whether to relay device sketches).
    public static func reclusterDue(afterRound r: Int, mode: ClusterAssignmentMode, config: ClusteredFederationConfig) -> Bool {
        let w = config.warmupRounds, m = config.reclusterEvery
        switch mode {
        case .automatic: return r == w || (m > 0 && r > w && (r - w) % m == 0)
        case .ifca: return r == w
        default: return false
        }
    }

    /// ARI of the current clusters against the true labels (devices without a label are left out).
    public func adjustedRandIndexAgainstTruth() -> Double? {
        guard let truth = trueLabels else { return nil }
        let labelled = devices.filter { truth[$0] != nil && assignment[$0] != nil }
        guard !labelled.isEmpty else { return nil }
        let ids = Dictionary(uniqueKeysWithValues: Set(labelled.compactMap { truth[$0] }).sorted().enumerated().map { ($1, $0) })
        return adjustedRandIndex(labelled.map { ids[truth[$0]!]! }, labelled.map { assignment[$0]! })
    }

    /// Checks one update against a cluster's model (its device's cluster by default), without keeping it: nil when
    /// `accept` would take it.
    public func check(_ update: ModelUpdate, cluster: Int? = nil) -> RejectedUpdate? {
        guard let c = cluster ?? assignment[update.device] else {
            return RejectedUpdate(device: update.device, kind: "unknown_device", reason: ParadigmError.unknownDevice(update.device).description)
        }
        guard let model = models[c] else {
            return RejectedUpdate(device: update.device, kind: "unknown_cluster", reason: "cluster \(c) does not exist (clusters: \(clusterIDs))")
        }
        do { try config.validator.validate(update, against: model) } catch {
            return RejectedUpdate(device: update.device, kind: error.kind, reason: error.description)
        }
        return nil
    }

    /// Takes one update of the open round into `cluster` (default: its device's cluster). A device choosing by loss
    /// (IFCA) names its cluster and joins it. Keeps the delta for clustering when this round re-clusters.
    public mutating func accept(_ update: ModelUpdate, cluster: Int? = nil, clusteringPoint: Bool = true) -> RejectedUpdate? {
        if let r = check(update, cluster: cluster) { rejectedThisRound.append(r); return r }
        let c = cluster ?? assignment[update.device]!
        if cluster != nil, devicesChoose, assignment[update.device] != nil { assignment[update.device] = c }
        let tau = (models[c]?.version ?? 0) &- update.baseVersion
        // In place: a copy out of the dictionary would copy the round's running sum on every upload.
        aggregates[c, default: RoundAggregate(rule: config.rule, privacy: roundPrivacy?.combine(for: c))].add(update, staleness: tau)
        if clusteringPoint, reclusterDue(afterRound: completedRounds + 1), assignment[update.device] != nil {
            points[update.device] = update
        }
        return nil
    }

    /// A secure-aggregation group's sum for `cluster`: its members' updates never reach the federation one by one.
    /// Devices choosing their cluster (IFCA) join it.
    public mutating func acceptSum(cluster c: Int, sum: [Double], devices: [String], samples: [Int], losses: [Float], unclipped: Double) {
        guard models[c] != nil else { return }
        if devicesChoose { for d in devices where assignment[d] != nil { assignment[d] = c } }
        var agg = aggregates[c] ?? RoundAggregate(rule: config.rule, privacy: roundPrivacy?.combine(for: c))
        agg.addSum(sum, devices: devices, samples: samples, losses: losses, unclipped: unclipped)
        aggregates[c] = agg
    }

    /// A device's sketch (or delta) for this round's clustering, when its update reached the cluster through an edge.
    public mutating func addClusteringPoint(device: String, vector: [Float]) {
        guard assignment[device] != nil else { return }
        points[device] = ModelUpdate(device: device, samples: 1, baseVersion: 0, delta: vector)
    }

    /// Ends the round: each cluster with accepted updates is combined and steps; then re-clusters when due.
    public mutating func closeRound() -> ClusteredRound {
        var results: [Int: AggregationResult] = [:]
        var gaps: [Int: Double] = [:], errors: [Int: String] = [:], privacy: [Int: PrivateRoundReport] = [:]
        var bases: [Int: [Float]] = [:]
        for c in aggregates.keys.sorted() {
            guard var model = models[c], let agg = aggregates[c] else { continue }
            var opt = optimizers[c] ?? ServerOptimizer(config.rule.serverOptimizer)
            bases[c] = model.parameters
            guard let combined = agg.combine(base: model.parameters, layout: model.layout, optimizer: &opt, version: model.version + 1) else { continue }
            VectorMath.axpy(1, combined.step, &model.parameters)
            model.version += 1
            models[c] = model
            optimizers[c] = opt
            results[c] = combined.result
            if let g = combined.naiveProductGap { gaps[c] = g }
            if let e = combined.combineError { errors[c] = e }
            if let p = combined.privacy { privacy[c] = p }
        }
        completedRounds += 1
        var event: ReclusterEvent? = nil
        let deltas = points.keys.sorted().map { points[$0]! }
        if reclusterDue(afterRound: completedRounds) {
            if case .ifca(let k) = mode { event = seedIFCA(deltas, k: k) } else { event = recluster(deltas, bases: bases) }
        }
        var round = ClusteredRound(round: completedRounds, results: results, rejected: rejectedThisRound, recluster: event,
                                   clusterMap: assignment, ari: adjustedRandIndexAgainstTruth())
        round.naiveProductGaps = gaps
        round.combineErrors = errors
        round.privacy = privacy
        aggregates = [:]; points = [:]; rejectedThisRound = []; roundPrivacy = nil
        return round
    }

    /// One whole round from a batch of updates (each into its device's cluster).
    public mutating func aggregate(_ updates: [ModelUpdate]) -> ClusteredRound {
        for u in updates { _ = accept(u) }
        return closeRound()
    }

    /// Hierarchical: updates already keyed by cluster (an edge's cluster-model delta; `device` names the sender);
    /// when due, re-clusters the devices on `deviceDeltas` (their deltas or sketches).
    public mutating func aggregate(clusterUpdates: [(cluster: Int, update: ModelUpdate)], deviceDeltas: [ModelUpdate]) -> ClusteredRound {
        for p in clusterUpdates { _ = accept(p.update, cluster: p.cluster, clusteringPoint: false) }
        for d in deviceDeltas { addClusteringPoint(device: d.device, vector: d.delta) }
        return closeRound()
    }

    /// IFCA's start: k models seeded at the warm-up deltas farthest apart (centred cosine), each device in the
    /// cluster of its most similar seed; from the next round devices choose by loss.
    mutating func seedIFCA(_ updates: [ModelUpdate], k: Int) -> ReclusterEvent? {
        let members = updates.map(\.device)
        guard members.count >= 2, k >= 2, let base = models[0] else { return nil }
        var points = updates.map(\.delta)
        // Sketches, not deltas: the models start equal and the assignment holds for one round.
        let blind = points.contains { $0.count != base.parameters.count }
        let d = points.map(\.count).max() ?? 0
        if config.sketchDimension > 0 && config.sketchDimension < d {
            points = RandomProjection(inputDimension: d, outputDimension: config.sketchDimension, seed: config.seed).project(points)
        }
        if config.center { points = centered(points) }
        let cos = cosineSimilarityMatrix(points)
        let n = members.count
        // Farthest-point seeding: each next seed is the delta least similar to every seed so far.
        var seeds = [0]
        while seeds.count < min(k, n) {
            var best = -1, bestScore = Double.infinity
            for i in 0..<n where !seeds.contains(i) {
                let s = seeds.map { cos[i * n + $0] }.max() ?? 1
                if s < bestScore { bestScore = s; best = i }
            }
            seeds.append(best)
        }
        for (c, s) in seeds.enumerated() {
            var m = base
            if !blind { VectorMath.axpy(1, updates[s].delta, &m.parameters) }
            models[c] = m
        }
        if blind { assignedUntil = completedRounds + 1 }
        for i in 0..<n {
            var best = 0
            for c in seeds.indices where cos[i * n + seeds[c]] > cos[i * n + seeds[best]] { best = c }
            assignment[members[i]] = best
        }
        nextClusterID = max(nextClusterID, seeds.count)
        let event = ReclusterEvent(round: completedRounds, k: seeds.count, score: 0,
                                   newClusters: Dictionary(uniqueKeysWithValues: (1..<seeds.count).map { ($0, 0) }),
                                   removedClusters: [], clusterMap: assignment, ari: adjustedRandIndexAgainstTruth())
        reclusterings.append(event)
        return event
    }

    /// Re-clusters the devices that sent these deltas (others keep their cluster). New clusters are matched to old
    /// ones by member overlap, so ids stay stable. Needs deltas from at least two devices; returns nil otherwise.
    @discardableResult
    public mutating func recluster(_ updates: [ModelUpdate], bases lastBase: [Int: [Float]] = [:]) -> ReclusterEvent? {
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
                optimizers[id] = optimizers[parent]
            case .memberMean where changed:
                var m = parentModel
                var x = lastBase[parent] ?? parentModel.parameters
                let w = sampleWeights(memberIdx.map { latest[members[$0]]!.samples })
                for (j, i) in memberIdx.enumerated() where latest[members[i]]!.delta.count == x.count {
                    VectorMath.axpy(Float(w[j]), latest[members[i]]!.delta, &x)
                }
                m.parameters = x
                models[id] = m
                optimizers[id] = optimizers[parent]
            case .parent, .memberMean:
                break
            }
        }
        let alive = Set(assignment.values)
        let removed = models.keys.filter { !alive.contains($0) }.sorted()
        for c in removed { models[c] = nil; optimizers[c] = nil }
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

/// What a snapshot keeps of a ClusteredFederation between rounds; the models' parameters and the optimizer moments
/// go to the snapshot's float blobs under `prefix`.
public struct ClusteredFederationSnapshot: Codable, Sendable, Equatable {
    public var devices: [String]
    public var assignment: [String: Int]
    /// Cluster id -> its model's version.
    public var versions: [Int: UInt64]
    public var completedRounds: Int
    public var reclusterings: [ReclusterEvent]
    public var nextClusterID: Int
    public var assignedUntil: Int?
}

extension ClusteredFederation {
    /// Between rounds only (an open round's updates are in the engine's journal, not here).
    public func snapshot(blobs: inout [String: [Float]], prefix: String) -> ClusteredFederationSnapshot {
        for (c, m) in models { blobs["\(prefix)model/\(c)"] = m.parameters }
        for (c, o) in optimizers {
            blobs["\(prefix)m/\(c)"] = o.m
            blobs["\(prefix)v/\(c)"] = o.v
        }
        return ClusteredFederationSnapshot(devices: devices, assignment: assignment, versions: models.mapValues(\.version),
                                           completedRounds: completedRounds, reclusterings: reclusterings, nextClusterID: nextClusterID,
                                           assignedUntil: assignedUntil)
    }

    /// Rebuilds a federation from `snapshot`; every model must fit `layout` and every device's cluster must exist.
    public init(restoring s: ClusteredFederationSnapshot, blobs: [String: [Float]], prefix: String, layout: ParameterLayout,
                mode: ClusterAssignmentMode, config: ClusteredFederationConfig, trueLabels: [String: String]? = nil) throws(ParadigmError) {
        guard !s.devices.isEmpty else { throw .noDevices }
        guard Set(s.assignment.keys) == Set(s.devices) else { throw .badSnapshot(reason: "the cluster map does not list exactly the devices") }
        var saved: [Int: [Float]] = [:]
        for c in s.versions.keys {
            guard let p = blobs["\(prefix)model/\(c)"] else { throw .badSnapshot(reason: "no parameters for cluster \(c)") }
            guard p.count == layout.count else {
                throw .badSnapshot(reason: "cluster \(c) has \(p.count) parameters, the adapter layout \(layout.count)")
            }
            saved[c] = p
        }
        guard let first = saved.values.first else { throw .badSnapshot(reason: "no clusters") }
        if let c = Set(s.assignment.values).subtracting(saved.keys).min() { throw .badSnapshot(reason: "devices in cluster \(c), which has no model") }
        guard s.completedRounds >= 0, s.nextClusterID > (saved.keys.max() ?? -1) else {
            throw .badSnapshot(reason: "round \(s.completedRounds), next cluster id \(s.nextClusterID)")
        }
        try self.init(devices: s.devices, initial: GlobalModel(layout: layout, parameters: first), mode: mode,
                      config: config, trueLabels: trueLabels)
        assignment = s.assignment
        models = Dictionary(uniqueKeysWithValues: saved.map { ($0.key, GlobalModel(layout: layout, parameters: $0.value, version: s.versions[$0.key] ?? 0)) })
        for c in saved.keys {
            if let m = blobs["\(prefix)m/\(c)"] {
                optimizers[c] = ServerOptimizer(config.rule.serverOptimizer, m: m, v: blobs["\(prefix)v/\(c)"] ?? [])
            }
        }
        completedRounds = s.completedRounds
        reclusterings = s.reclusterings
        nextClusterID = s.nextClusterID
        assignedUntil = s.assignedUntil
    }
}
