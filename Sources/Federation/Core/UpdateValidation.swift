// A bad update is rejected with a reason before it can touch the global model.

public enum UpdateRejection: Error, Equatable, Sendable, CustomStringConvertible {
    case wrongLength(expected: Int, actual: Int)
    case nonFinite(index: Int)
    case normTooLarge(norm: Double, limit: Double)
    case tooLarge(parameters: Int, limit: Int)
    case staleBeyond(staleness: UInt64, limit: UInt64)
    case fromFuture(baseVersion: UInt64, currentVersion: UInt64)
    case duplicate(device: String, round: UInt64)
    case nonPositiveSamples(Int)
    /// An exact LoRA combine (SVD) failed on an update applied on arrival; the global is unchanged.
    case combineFailed(reason: String)

    /// Short stable key for counters and logs.
    public var kind: String {
        switch self {
        case .wrongLength: return "wrong_length"
        case .nonFinite: return "non_finite"
        case .normTooLarge: return "norm_too_large"
        case .tooLarge: return "too_large"
        case .staleBeyond: return "stale"
        case .fromFuture: return "from_future"
        case .duplicate: return "duplicate"
        case .nonPositiveSamples: return "non_positive_samples"
        case .combineFailed: return "combine_failed"
        }
    }

    public var description: String {
        switch self {
        case let .wrongLength(e, a):
            return "update has \(a) parameters but the global layout has \(e); train against the current layout"
        case let .nonFinite(i):
            return "update value at index \(i) is NaN or infinite; lower the learning rate or clip gradients"
        case let .normTooLarge(n, l):
            return "update norm \(n) exceeds the limit \(l); clip the update or raise maxNorm"
        case let .tooLarge(p, l):
            return "update has \(p) parameters, more than the limit \(l)"
        case let .staleBeyond(s, l):
            return "update is \(s) versions stale, more than the limit \(l); fetch the current model and retrain"
        case let .fromFuture(b, c):
            return "update claims base version \(b) but the global is at \(c); the device must use a version it received"
        case let .duplicate(d, r):
            return "update from '\(d)' for round \(r) was already accepted; the retry is ignored"
        case let .nonPositiveSamples(n):
            return "update reports \(n) samples; a contribution needs at least one"
        case let .combineFailed(reason):
            return "the exact LoRA combine failed (\(reason)); the global is unchanged"
        }
    }
}

/// Checks one update against the global: shape, finiteness, size and norm caps, staleness.
public struct UpdateValidator: Sendable, Equatable {
    /// Largest accepted ||Δ||₂ (nil: no cap).
    public var maxNorm: Double?
    /// Largest accepted parameter count (nil: no cap beyond the layout).
    public var maxParameters: Int?
    /// Largest accepted τ = current − base (nil: any).
    public var maxStaleness: UInt64?

    public init(maxNorm: Double? = nil, maxParameters: Int? = nil, maxStaleness: UInt64? = nil) {
        self.maxNorm = maxNorm; self.maxParameters = maxParameters; self.maxStaleness = maxStaleness
    }

    /// Returns τ when the update is acceptable.
    @discardableResult
    public func validate(_ update: ModelUpdate, against global: GlobalModel) throws(UpdateRejection) -> UInt64 {
        if let cap = maxParameters, update.delta.count > cap { throw .tooLarge(parameters: update.delta.count, limit: cap) }
        if update.delta.count != global.parameters.count {
            throw .wrongLength(expected: global.parameters.count, actual: update.delta.count)
        }
        if update.samples <= 0 { throw .nonPositiveSamples(update.samples) }
        if update.baseVersion > global.version {
            throw .fromFuture(baseVersion: update.baseVersion, currentVersion: global.version)
        }
        let tau = global.version - update.baseVersion
        if let limit = maxStaleness, tau > limit { throw .staleBeyond(staleness: tau, limit: limit) }
        // One pass: the sum of squares is NaN or infinite exactly when some value is (then find which).
        let sumSquares = update.delta.withUnsafeBufferPointer(VectorMath.sumOfSquares)
        if !sumSquares.isFinite, let i = update.delta.firstIndex(where: { !$0.isFinite }) { throw .nonFinite(index: i) }
        if let limit = maxNorm, sumSquares.squareRoot() > limit {
            throw .normTooLarge(norm: sumSquares.squareRoot(), limit: limit)
        }
        return tau
    }
}

/// Counts rejections by kind, for telemetry.
public struct RejectionCounter: Sendable, Equatable {
    public private(set) var counts: [String: Int] = [:]
    public init() {}
    public mutating func record(_ rejection: UpdateRejection) { counts[rejection.kind, default: 0] += 1 }
    public var total: Int { counts.values.reduce(0, +) }
}
