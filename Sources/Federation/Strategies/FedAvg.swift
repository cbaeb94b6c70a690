/// FedAvg (McMahan et al. 2017): x ← x + Σ wᵢ·Δᵢ with wᵢ ∝ samples (capped by `max_weight`).
public struct FedAvg: AggregationStrategy {
    public let name = "fedavg"
    public init() {}
    public var isWeightedMean: Bool { true }
    public func combine(_ deltas: [[Float]], weights: [Double]) -> Combination { .weights(weights) }
}

/// Norm bounding (Sun et al. 2019) as DP-FedAvg aggregates: each update is clipped to ‖Δ‖ ≤ maxNorm and the clipped
/// updates are averaged with equal weights, so no participant moves the model by more than maxNorm/n, whatever it sends
/// and whatever sample count it claims.
public struct NormBounded: AggregationStrategy {
    public let name = "norm_bounded"
    public var maxNorm: Double
    public init(maxNorm: Double) { self.maxNorm = maxNorm }

    public func prepare(_ delta: inout [Float]) {
        let n = VectorMath.norm(delta)
        guard n > maxNorm, n > 0 else { return }
        let f = Float(maxNorm / n)
        for i in delta.indices { delta[i] *= f }
    }

    public func combine(_ deltas: [[Float]], weights: [Double]) -> Combination {
        .weights([Double](repeating: 1 / Double(max(1, deltas.count)), count: deltas.count))
    }
}
