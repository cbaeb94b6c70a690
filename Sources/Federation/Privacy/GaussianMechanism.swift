/// The Gaussian mechanism's two halves (DP-FedAvg, McMahan et al. 2018): clip ‖Δ‖₂ to C, and add N(0, std²) to every
/// coordinate. Noise comes from a ChaCha20 stream, so nobody without the key can recompute it.
public enum GaussianMechanism {
    /// Scales `delta` to norm `clip` when it is longer; returns its norm before.
    @discardableResult
    public static func clip(_ delta: inout [Float], to clip: Double) -> Double {
        let n = VectorMath.norm(delta)
        guard n > clip, n > 0 else { return n }
        let f = Float(clip / n)
        for i in delta.indices { delta[i] *= f }
        return n
    }

    /// x += N(0, std²) per coordinate.
    public static func addNoise(_ x: inout [Float], std: Double, using rng: inout ChaChaRandom) {
        guard std > 0 else { return }
        for i in x.indices { x[i] += Float(rng.nextGaussian() * std) }
    }

    /// x += N(0, std²) per coordinate, in Double (a running sum).
    public static func addNoise(_ x: inout [Double], std: Double, using rng: inout ChaChaRandom) {
        guard std > 0 else { return }
        for i in x.indices { x[i] += rng.nextGaussian() * std }
    }
}
