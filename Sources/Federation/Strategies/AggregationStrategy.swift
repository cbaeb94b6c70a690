// Like Flower's Strategy: one small type says how the updates of one round of one model combine.
// Which participants get a task is the algorithm's choice (SynchronousAlgorithm, ClusteredAlgorithm).

/// How a synchronous rule combines one round's updates.
public enum Combination: Sendable, Equatable {
    /// A weighted sum of the deltas (weights sum to 1): FedAvg, and rules that pick or re-weight updates (Krum).
    case weights([Double])
    /// A coordinate-wise statistic that is no weighted sum (median, trimmed mean).
    case step([Float])
}

/// A synchronous aggregation rule.
public protocol AggregationStrategy: Sendable {
    var name: String { get }
    /// True when the rule is the weighted mean of the prepared deltas: the round then streams the sum instead of
    /// holding every update (memory stays flat with the number of participants).
    var isWeightedMean: Bool { get }
    /// Applied to each accepted delta before it is combined (norm_bounded clips it).
    func prepare(_ delta: inout [Float])
    /// Combines the round's prepared deltas; `weights` are the capped sample weights (they sum to 1).
    func combine(_ deltas: [[Float]], weights: [Double]) -> Combination
}

extension AggregationStrategy {
    public var isWeightedMean: Bool { false }
    public func prepare(_ delta: inout [Float]) {}
}

/// What one aggregation did to a model.
public struct AggregationResult: Sendable, Equatable, Codable {
    /// Model version after the step.
    public var version: UInt64
    public var contributors: [String]
    /// Effective weight of each contributor's update in the step (same order as contributors).
    public var weights: [Double]
    /// τ of each contribution when it arrived.
    public var stalenesses: [UInt64]
    /// ||x_after − x_before||₂
    public var stepNorm: Double
    /// Sample-weighted mean of the reported losses.
    public var meanLoss: Double
    public var totalSamples: Int
}

/// Seeded choice of ⌈fraction·n⌉ participants (at least `minimum`) per round.
public func sampleDevices(_ available: [String], fraction: Double, minimum: Int, seed: UInt64, round: UInt64) -> [String] {
    var pool = Array(Set(available)).sorted()
    let f = fraction.isFinite ? min(1, max(0, fraction)) : 1
    let want = min(pool.count, max(minimum, Int((f * Double(pool.count)).rounded(.up))))
    var rng = SeededRandom(seed: seed, stream: round)
    // Partial Fisher–Yates: the first `want` slots are a uniform sample.
    for i in 0..<want {
        let j = i + Int(rng.next() % UInt64(pool.count - i))
        pool.swapAt(i, j)
    }
    return Array(pool[0..<want]).sorted()
}

/// Sample weights with no participant above `maxShare` of the total (water-filling): a claimed sample count is never
/// trusted beyond that share. When the cap cannot hold (fewer than 1/maxShare participants) every weight is equal.
/// Returns weights that sum to 1.
public func cappedWeights(_ samples: [Double], maxShare: Double) -> [Double] {
    let n = samples.count
    guard n > 0 else { return [] }
    let s = samples.map { $0.isFinite ? max(0, $0) : 0 }
    let total = s.reduce(0, +)
    guard total > 0 else { return [Double](repeating: 1 / Double(n), count: n) }
    guard maxShare < 1 else { return s.map { $0 / total } }
    guard maxShare > 0, Double(n) * maxShare > 1 else { return [Double](repeating: 1 / Double(n), count: n) }
    let order = s.indices.sorted { s[$0] > s[$1] }
    var rest = total
    // Cap the k largest at c = maxShare·rest / (1 − k·maxShare) until the (k+1)-th fits under c.
    for k in 0..<n {
        let c = maxShare * rest / (1 - Double(k) * maxShare)
        if s[order[k]] <= c {
            var w = s
            for i in order[0..<k] { w[i] = c }
            let sum = w.reduce(0, +)
            return w.map { $0 / sum }
        }
        rest -= s[order[k]]
        if 1 - Double(k + 1) * maxShare <= 0 { break }
    }
    return [Double](repeating: 1 / Double(n), count: n)
}
