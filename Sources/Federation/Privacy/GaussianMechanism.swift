/// DP-FedAvg style privatisation of one update (McMahan et al. 2018): clip ‖Δ‖₂ to C, then add N(0, (z·C)²) noise
/// per coordinate, seeded so a run can be replayed. Accounting (ε, δ) is left to the caller.
public struct GaussianMechanism: Sendable, Equatable {
    public var clipNorm: Double
    public var noiseMultiplier: Double

    public init(clipNorm: Double, noiseMultiplier: Double) {
        self.clipNorm = max(0, clipNorm); self.noiseMultiplier = max(0, noiseMultiplier)
    }

    /// Δ·min(1, C/‖Δ‖). Returns the factor applied.
    @discardableResult
    public func clip(_ delta: inout [Float]) -> Double {
        let n = VectorMath.norm(delta)
        guard n > clipNorm, n > 0 else { return 1 }
        let f = clipNorm / n
        for i in delta.indices { delta[i] *= Float(f) }
        return f
    }

    public func privatize(_ delta: [Float], seed: UInt64) -> [Float] {
        var x = delta
        clip(&x)
        let sigma = noiseMultiplier * clipNorm
        guard sigma > 0 else { return x }
        var rng = SeededRandom(seed: seed)
        for i in x.indices { x[i] += Float(rng.nextGaussian() * sigma) }
        return x
    }
}
