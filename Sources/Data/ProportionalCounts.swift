@_exported import Randomness

/// Splits `total` into integer counts proportional to `weights` (largest remainder), so the
/// counts sum to `total` exactly.
func proportionalCounts(total: Int, weights: [Double]) -> [Int] {
    let sum = weights.reduce(0, +)
    guard sum > 0, total > 0 else { return weights.map { _ in 0 } }
    let exact = weights.map { Double(total) * $0 / sum }
    var counts = exact.map { Int($0.rounded(.down)) }
    let order = exact.indices.sorted { (exact[$0] - Double(counts[$0]), -$0) > (exact[$1] - Double(counts[$1]), -$1) }
    var left = total - counts.reduce(0, +)
    for i in order where left > 0 {
        counts[i] += 1
        left -= 1
    }
    return counts
}
