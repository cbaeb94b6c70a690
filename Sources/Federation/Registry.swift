// One registration per extension: config names → strategy, clustering method, codec.
// The specs are Decodable so a service's YAML config can decode them directly (Yams).

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

public struct StrategySpec: Sendable, Equatable, Decodable {
    public var name: String
    public var fraction: Double?
    public var minDevices: Int?
    public var quorum: Int?
    public var seed: UInt64?
    public var alpha: Double?
    /// constant | polynomial | hinge
    public var staleness: String?
    public var stalenessA: Double?
    public var stalenessB: Double?
    public var bufferSize: Int?
    public var serverLearningRate: Double?
    public var trimFraction: Double?
    /// naive | frozenA | productSVD (strategy "lora_fedavg")
    public var loraMode: String?
    public var maxNorm: Double?
    public var maxStaleness: UInt64?

    public init(name: String) { self.name = name }

    public static let known = ["fedavg", "fedasync", "fedbuff", "median", "trimmed_mean", "lora_fedavg"]

    func stalenessFunction() throws(RegistryError) -> StalenessFunction {
        switch staleness ?? "polynomial" {
        case "constant": return .constant
        case "polynomial": return .polynomial(a: stalenessA ?? 0.5)
        case "hinge": return .hinge(a: stalenessA ?? 10, b: stalenessB ?? 4)
        case let other:
            throw .unknown(kind: "staleness function", name: other, known: ["constant", "polynomial", "hinge"])
        }
    }
}

public func makeAggregationStrategy(_ spec: StrategySpec) throws(RegistryError) -> any AggregationStrategy {
    if let f = spec.fraction, !(f > 0 && f <= 1) { throw .invalid(kind: "strategy", field: "fraction", reason: "\(f) is not in (0, 1]") }
    if let a = spec.alpha, !(a > 0 && a <= 1) { throw .invalid(kind: "strategy", field: "alpha", reason: "\(a) is not in (0, 1]") }
    let syncValidator = UpdateValidator(maxNorm: spec.maxNorm, maxStaleness: spec.maxStaleness ?? 0)
    let asyncValidator = UpdateValidator(maxNorm: spec.maxNorm, maxStaleness: spec.maxStaleness)
    switch spec.name {
    case "fedavg":
        return FedAvg(fraction: spec.fraction ?? 1, minDevices: spec.minDevices ?? 1, quorum: spec.quorum ?? 1,
                      seed: spec.seed ?? 0, validator: syncValidator)
    case "fedasync":
        return FedAsync(alpha: spec.alpha ?? 0.6, staleness: try spec.stalenessFunction(), validator: asyncValidator)
    case "fedbuff":
        return FedBuff(bufferSize: spec.bufferSize ?? 10, serverLearningRate: spec.serverLearningRate ?? 1,
                       staleness: try spec.stalenessFunction(), validator: asyncValidator)
    case "median":
        return CoordinateMedian(quorum: spec.quorum ?? 1, validator: syncValidator)
    case "trimmed_mean":
        return TrimmedMean(trimFraction: spec.trimFraction ?? 0.1, quorum: spec.quorum ?? 1, validator: syncValidator)
    case "lora_fedavg":
        let modeName = spec.loraMode ?? "productSVD"
        guard let mode = LoRAAggregationMode(rawValue: modeName) else {
            throw .unknown(kind: "LoRA aggregation mode", name: modeName, known: LoRAAggregationMode.allCases.map(\.rawValue))
        }
        return LoRAFedAvg(mode: mode, fraction: spec.fraction ?? 1, minDevices: spec.minDevices ?? 1,
                          quorum: spec.quorum ?? 1, seed: spec.seed ?? 0, validator: syncValidator)
    default:
        throw .unknown(kind: "aggregation strategy", name: spec.name, known: StrategySpec.known)
    }
}

public struct ClusteringSpec: Sendable, Equatable, Decodable {
    public var name: String
    public var kMax: Int?
    public var minSilhouette: Double?
    public var seed: UInt64?
    public var maxMeanNormRatio: Double?
    public var maxCrossSimilarity: Double?
    public init(name: String) { self.name = name }
    public static let known = ["silhouette_kmeans", "cfl_bipartition"]
}

public func makeClusteringMethod(_ spec: ClusteringSpec) throws(RegistryError) -> any ClusteringMethod {
    switch spec.name {
    case "silhouette_kmeans":
        return SilhouetteKMeans(kMax: spec.kMax ?? 8, minSilhouette: spec.minSilhouette ?? 0.25, seed: spec.seed ?? 0)
    case "cfl_bipartition":
        return CFLBipartition(maxMeanNormRatio: spec.maxMeanNormRatio ?? 0.8, maxCrossSimilarity: spec.maxCrossSimilarity ?? 0.5)
    default:
        throw .unknown(kind: "clustering method", name: spec.name, known: ClusteringSpec.known)
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
