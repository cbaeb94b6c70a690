import COpenBLAS

/// Krum and multi-Krum (Blanchard et al. 2017). Each update is scored by the summed squared distances to its
/// n − f − 2 nearest others (f: the Byzantine participants assumed); Krum keeps the best-scored update, multi-Krum
/// the best m (default n − f) and averages them with their sample weights. An outlier is far from everyone, so it
/// scores worst whatever sample count it claims.
public struct Krum: AggregationStrategy {
    public var name: String { selected == 1 ? "krum" : "multi_krum" }
    /// Assumed Byzantine participants f (nil: ⌊(n − 1)/3⌋, at least 1 when n ≥ 3).
    public var byzantine: Int?
    /// Updates kept: 1 for Krum; nil for multi-Krum's n − f.
    public var selected: Int?

    public init(byzantine: Int? = nil, selected: Int? = 1) { self.byzantine = byzantine; self.selected = selected }

    public func f(n: Int) -> Int {
        if let b = byzantine { return max(0, min(b, n - 1)) }
        return n >= 3 ? max(1, (n - 1) / 3) : 0
    }

    /// Krum scores of the deltas (lower is better).
    public func scores(_ deltas: [[Float]]) -> [Double] {
        let n = deltas.count
        guard n > 1 else { return [Double](repeating: 0, count: n) }
        let d2 = squaredDistances(deltas)
        let neighbours = max(1, n - f(n: n) - 2)
        return (0..<n).map { i in
            let row = (0..<n).filter { $0 != i }.map { d2[i * n + $0] }.sorted()
            return row.prefix(neighbours).reduce(0, +)
        }
    }

    public func combine(_ deltas: [[Float]], weights: [Double]) -> Combination {
        let n = deltas.count
        guard n > 0 else { return .weights([]) }
        let s = scores(deltas)
        let m = max(1, min(n, selected ?? (n - f(n: n))))
        let keep = Set(s.indices.sorted { (s[$0], $0) < (s[$1], $1) }.prefix(m))
        let kept = weights.indices.map { keep.contains($0) ? weights[$0] : 0 }
        let total = kept.reduce(0, +)
        return .weights(total > 0 ? kept.map { $0 / total } : weights.indices.map { keep.contains($0) ? 1 / Double(m) : 0 })
    }
}

/// ‖xᵢ − xⱼ‖² for every pair, row-major n×n, from one Gram matrix (sgemm).
func squaredDistances(_ points: [[Float]]) -> [Double] {
    let rows = rectangular(points)
    let n = rows.count
    guard n > 0, let d = rows.first?.count, d > 0 else { return [Double](repeating: 0, count: n * n) }
    let gram = VectorMath.gram(rows, width: d)
    // Squared norms exactly (in Double), so near-identical points get distance ≈ 0, not rounding noise.
    let sq = rows.map { r in r.reduce(0.0) { $0 + Double($1) * Double($1) } }
    var out = [Double](repeating: 0, count: n * n)
    for i in 0..<n { for j in 0..<n where i != j { out[i * n + j] = max(0, sq[i] + sq[j] - 2 * Double(gram[i * n + j])) } }
    return out
}
