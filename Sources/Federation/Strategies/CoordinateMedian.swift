/// Coordinate-wise median of the round's deltas (Yin et al. 2018): robust to a minority of arbitrary updates.
public struct CoordinateMedian: AggregationStrategy {
    public let name = "median"
    public let timing = AggregationTiming.synchronous
    public var quorum: Int
    public var validator: UpdateValidator
    private var pending = PendingRound()

    public init(quorum: Int = 1, validator: UpdateValidator = UpdateValidator(maxStaleness: 0)) {
        self.quorum = quorum; self.validator = validator
    }

    public mutating func submit(_ update: ModelUpdate, to global: inout GlobalModel) throws(UpdateRejection) -> AggregationResult? {
        try pending.add(update, validator: validator, global: global)
        return nil
    }

    public mutating func closeRound(_ global: inout GlobalModel) -> RoundOutcome {
        let n = pending.updates.count
        guard n >= max(1, quorum) else { return .belowQuorum(received: n, required: max(1, quorum)) }
        let step = uncheckedCoordinateMedian(pending.updates.map(\.delta))
        let w = [Double](repeating: 1 / Double(n), count: n)
        return .applied(pending.apply(step: step, weights: w, to: &global))
    }
}

/// Median of each coordinate (mean of the two middle values when n is even).
public func coordinateMedian(_ vectors: [[Float]]) throws(UpdateRejection) -> [Float] {
    try requireEqualLengths(vectors)
    return uncheckedCoordinateMedian(vectors)
}

func uncheckedCoordinateMedian(_ vectors: [[Float]]) -> [Float] {
    guard let d = vectors.first?.count else { return [] }
    let n = vectors.count
    var out = [Float](repeating: 0, count: d)
    var column = [Float](repeating: 0, count: n)
    for j in 0..<d {
        for i in 0..<n { column[i] = vectors[i][j] }
        column.sort()
        out[j] = n % 2 == 1 ? column[n / 2] : 0.5 * (column[n / 2 - 1] + column[n / 2])
    }
    return out
}
