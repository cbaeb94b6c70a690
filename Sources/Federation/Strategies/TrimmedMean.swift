/// Coordinate-wise trimmed mean (Yin et al. 2018): drop the ⌊β·n⌋ largest and smallest values per coordinate, average the rest.
public struct TrimmedMean: AggregationStrategy {
    public let name = "trimmed_mean"
    public let timing = AggregationTiming.synchronous
    /// β in [0, 0.5).
    public var trimFraction: Double
    public var quorum: Int
    public var validator: UpdateValidator
    private var pending = PendingRound()

    public init(trimFraction: Double = 0.1, quorum: Int = 1, validator: UpdateValidator = UpdateValidator(maxStaleness: 0)) {
        self.trimFraction = trimFraction.isFinite ? min(max(trimFraction, 0), 0.499) : 0; self.quorum = quorum; self.validator = validator
    }

    public mutating func submit(_ update: ModelUpdate, to global: inout GlobalModel) throws(UpdateRejection) -> AggregationResult? {
        try pending.add(update, validator: validator, global: global)
        return nil
    }

    public mutating func closeRound(_ global: inout GlobalModel) -> RoundOutcome {
        let n = pending.updates.count
        guard n >= max(1, quorum) else { return .belowQuorum(received: n, required: max(1, quorum)) }
        let step = uncheckedTrimmedMean(pending.updates.map(\.delta), trimFraction: trimFraction)
        let w = [Double](repeating: 1 / Double(n), count: n)
        return .applied(pending.apply(step: step, weights: w, to: &global))
    }
}

public func trimmedMean(_ vectors: [[Float]], trimFraction: Double) throws(UpdateRejection) -> [Float] {
    try requireEqualLengths(vectors)
    return uncheckedTrimmedMean(vectors, trimFraction: trimFraction)
}

func uncheckedTrimmedMean(_ vectors: [[Float]], trimFraction: Double) -> [Float] {
    guard let d = vectors.first?.count else { return [] }
    let n = vectors.count
    let t = trimFraction.isFinite ? min(max(trimFraction, 0), 0.5) : 0
    let cut = min(Int(t * Double(n)), (n - 1) / 2)
    var out = [Float](repeating: 0, count: d)
    var column = [Float](repeating: 0, count: n)
    for j in 0..<d {
        for i in 0..<n { column[i] = vectors[i][j] }
        column.sort()
        var s = 0.0
        for i in cut..<(n - cut) { s += Double(column[i]) }
        out[j] = Float(s / Double(n - 2 * cut))
    }
    return out
}
