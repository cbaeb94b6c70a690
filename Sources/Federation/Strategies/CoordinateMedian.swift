/// Coordinate-wise median of the round's deltas (Yin et al. 2018): robust to a minority of arbitrary updates.
/// Unweighted: a claimed sample count buys nothing.
public struct CoordinateMedian: AggregationStrategy {
    public let name = "median"
    public init() {}
    public func combine(_ deltas: [[Float]], weights: [Double]) -> Combination { .step(uncheckedCoordinateMedian(deltas)) }
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
