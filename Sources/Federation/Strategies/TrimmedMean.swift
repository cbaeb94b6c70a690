/// Coordinate-wise trimmed mean (Yin et al. 2018): drop the ⌊β·n⌋ largest and smallest values per coordinate (at
/// least one each when n ≥ 3), average the rest. Unweighted.
public struct TrimmedMean: AggregationStrategy {
    public let name = "trimmed_mean"
    /// β in [0, 0.5).
    public var trimFraction: Double
    public init(trimFraction: Double = 0.2) {
        self.trimFraction = trimFraction.isFinite ? min(max(trimFraction, 0), 0.499) : 0
    }
    public func combine(_ deltas: [[Float]], weights: [Double]) -> Combination {
        .step(uncheckedTrimmedMean(deltas, cut: Self.cut(n: deltas.count, trimFraction: trimFraction)))
    }

    /// Values trimmed at each end: ⌊β·n⌋, at least 1 when β > 0 and n ≥ 3, never all of them.
    public static func cut(n: Int, trimFraction: Double) -> Int {
        guard n >= 3, trimFraction > 0 else { return 0 }
        return min(max(1, Int(trimFraction * Double(n))), (n - 1) / 2)
    }
}

public func trimmedMean(_ vectors: [[Float]], trimFraction: Double) throws(UpdateRejection) -> [Float] {
    try requireEqualLengths(vectors)
    return uncheckedTrimmedMean(vectors, cut: TrimmedMean.cut(n: vectors.count, trimFraction: trimFraction))
}

func uncheckedTrimmedMean(_ vectors: [[Float]], cut: Int) -> [Float] {
    guard let d = vectors.first?.count else { return [] }
    let n = vectors.count
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
