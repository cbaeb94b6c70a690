// The paradigm sections of an experiment file as plain values, and what they build. A service's YAML parser fills
// these (keys in comments) and calls the builders; every bad value is a RegistryError naming the key.

/// `clustered: {warmup_rounds, recluster_every, method, k, sketch_dim, init, merge}`
public struct ClusteredSettings: Sendable, Equatable {
    public var warmupRounds = 2
    public var reclusterEvery = 0
    /// cosine | cfl | ifca
    public var method = "cosine"
    /// IFCA: the number of cluster models.
    public var k = 4
    public var sketchDim = 0
    /// parent | member_mean
    public var initialisation = "parent"
    /// Re-clusterings may merge clusters (default: split only).
    public var merge = false
    public init() {}

    public func config(seed: UInt64, rule: CombineRule = CombineRule()) throws(RegistryError) -> ClusteredFederationConfig {
        guard warmupRounds >= 1 else { throw .invalid(kind: "clustered", field: "warmup_rounds", reason: "\(warmupRounds) < 1: clustering needs one round of deltas") }
        guard reclusterEvery >= 0 else { throw .invalid(kind: "clustered", field: "recluster_every", reason: "\(reclusterEvery) < 0; use 0 to cluster once") }
        guard sketchDim >= 0 else { throw .invalid(kind: "clustered", field: "sketch_dim", reason: "\(sketchDim) < 0; use 0 for full deltas") }
        let initMode: SplitInitialisation
        switch initialisation {
        case "parent": initMode = .parent
        case "member_mean": initMode = .memberMean
        default: throw .unknown(kind: "cluster initialisation", name: initialisation, known: ["parent", "member_mean"])
        }
        guard method != "ifca" || k >= 2 else { throw .invalid(kind: "clustered", field: "k", reason: "\(k) < 2: IFCA needs at least two cluster models") }
        var config = ClusteredFederationConfig(warmupRounds: warmupRounds, reclusterEvery: reclusterEvery,
                                               method: try makeClusteringMethod(method, seed: seed), sketchDimension: sketchDim,
                                               initialisation: initMode, mergeOnRecluster: merge, seed: seed)
        config.rule = rule
        return config
    }
}

/// `async: {mode: fedasync|fedbuff, alpha, staleness: {kind, a, b}, buffer}`
public struct AsyncSettings: Sendable, Equatable {
    public var mode = "fedasync"
    public var alpha = 0.6
    /// constant | polynomial | hinge
    public var stalenessKind = "polynomial"
    public var stalenessA = 0.5
    public var stalenessB = 4.0
    /// FedBuff's K.
    public var buffer = 4
    public init() {}

    public func stalenessFunction() throws(RegistryError) -> StalenessFunction {
        switch stalenessKind {
        case "constant": return .constant
        case "polynomial": return .polynomial(a: stalenessA)
        case "hinge": return .hinge(a: stalenessA, b: stalenessB)
        default: throw .unknown(kind: "staleness function", name: stalenessKind, known: ["constant", "polynomial", "hinge"])
        }
    }

    public func rule(loraMode: LoRAAggregationMode = .naive) throws(RegistryError) -> any AsynchronousRule {
        guard alpha > 0, alpha <= 1 else { throw .invalid(kind: "async", field: "alpha", reason: "\(alpha) is not in (0, 1]") }
        guard stalenessA.isFinite, stalenessA >= 0 else { throw .invalid(kind: "async", field: "staleness.a", reason: "\(stalenessA) must be ≥ 0") }
        switch mode {
        case "fedasync":
            return FedAsync(alpha: alpha, staleness: try stalenessFunction(), loraMode: loraMode)
        case "fedbuff":
            guard buffer >= 1 else { throw .invalid(kind: "async", field: "buffer", reason: "\(buffer) < 1") }
            return FedBuff(bufferSize: buffer, serverLearningRate: 1, staleness: try stalenessFunction(), loraMode: loraMode)
        default:
            throw .unknown(kind: "async mode", name: mode, known: ["fedasync", "fedbuff"])
        }
    }
}
