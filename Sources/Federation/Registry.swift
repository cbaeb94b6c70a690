// One registration per extension: config names → strategy, clustering method, codec. Every bad value is a
// RegistryError naming the field.

public enum RegistryError: Error, Equatable, Sendable, CustomStringConvertible {
    case unknown(kind: String, name: String, known: [String])
    case invalid(kind: String, field: String, reason: String)

    public var description: String {
        switch self {
        case let .unknown(kind, name, known):
            return "unknown \(kind) '\(name)'; use one of: \(known.joined(separator: ", "))"
        case let .invalid(kind, field, reason):
            return "\(kind) field '\(field)' is invalid: \(reason)"
        }
    }
}

/// `federation.strategy` and its parameters.
public struct StrategySettings: Sendable, Equatable {
    /// fedavg | median | trimmed_mean | krum | multi_krum | norm_bounded
    public var name = "fedavg"
    /// norm_bounded: the clip norm (required).
    public var maxNorm: Double?
    /// trimmed_mean: β.
    public var trimFraction = 0.2
    /// krum, multi_krum: assumed Byzantine participants f (nil: ⌊(n − 1)/3⌋).
    public var byzantine: Int?
    /// multi_krum: updates kept (nil: n − f).
    public var selected: Int?
    public init(name: String = "fedavg") { self.name = name }

    public static let known = ["fedavg", "median", "trimmed_mean", "krum", "multi_krum", "norm_bounded"]

    public func make() throws(RegistryError) -> any AggregationStrategy {
        switch name {
        case "fedavg": return FedAvg()
        case "median": return CoordinateMedian()
        case "trimmed_mean":
            guard trimFraction >= 0, trimFraction < 0.5 else { throw .invalid(kind: "strategy", field: "trim_fraction", reason: "\(trimFraction) is not in [0, 0.5)") }
            return TrimmedMean(trimFraction: trimFraction)
        case "krum", "multi_krum":
            if let f = byzantine, f < 0 { throw .invalid(kind: "strategy", field: "byzantine", reason: "\(f) < 0") }
            if let m = selected, m < 1 { throw .invalid(kind: "strategy", field: "selected", reason: "\(m) < 1") }
            return Krum(byzantine: byzantine, selected: name == "krum" ? 1 : selected)
        case "norm_bounded":
            guard let c = maxNorm else { throw .invalid(kind: "strategy", field: "max_norm", reason: "norm_bounded needs max_norm (the clip norm)") }
            guard c > 0, c.isFinite else { throw .invalid(kind: "strategy", field: "max_norm", reason: "\(c) must be a positive number") }
            return NormBounded(maxNorm: c)
        default:
            throw .unknown(kind: "aggregation strategy", name: name, known: Self.known)
        }
    }
}

/// `clustered.method`: cosine (silhouette k-means on centred cosine) | cfl (CFL bipartition) | ifca (device choice).
public func makeClusteringMethod(_ name: String, seed: UInt64) throws(RegistryError) -> any ClusteringMethod {
    switch name {
    case "cosine", "ifca": return SilhouetteKMeans(seed: seed)
    case "cfl": return CFLBipartition()
    default: throw .unknown(kind: "clustering method", name: name, known: ["cosine", "cfl", "ifca"])
    }
}

/// Codec by name: fp32 | fp16 | int8 | topk (with `topKFraction`, default 0.01).
public func makeUpdateCodec(name: String, topKFraction: Double? = nil) throws(RegistryError) -> any UpdateCodec {
    switch name {
    case "fp32": return Float32Codec()
    case "fp16": return FP16Codec()
    case "int8": return Int8Codec()
    case "topk":
        let f = topKFraction ?? 0.01
        guard f > 0, f <= 1 else { throw .invalid(kind: "codec", field: "topKFraction", reason: "\(f) is not in (0, 1]") }
        return TopKCodec(fraction: f)
    default:
        throw .unknown(kind: "update codec", name: name, known: ["fp32", "fp16", "int8", "topk"])
    }
}
