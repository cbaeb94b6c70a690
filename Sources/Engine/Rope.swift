import Foundation

/// Rotary position embeddings as Hugging Face computes them (`rotate_half` convention: dimension i pairs with
/// i + d/2). `inverseFrequencies` and `attentionFactor` follow transformers' `ROPE_INIT_FUNCTIONS`.
extension RoPEConfig {
    /// θ_i for i in 0..<d/2, and the factor cos and sin are multiplied by (YaRN's mscale; 1 otherwise).
    /// `sequenceLength` matters only for dynamic NTK scaling (the base grows past the original context).
    func inverseFrequencies(headSize d: Int, sequenceLength: Int) -> (inv: [Double], attentionFactor: Double) {
        let half = d / 2
        func base(_ b: Double) -> [Double] { (0..<half).map { 1 / pow(b, Double(2 * $0) / Double(d)) } }
        let theta = Double(self.theta)
        switch scaling {
        case nil:
            return (base(theta), 1)
        case .linear(let factor):
            return (base(theta).map { $0 / Double(factor) }, 1)
        case .dynamic(let factor, let original):
            guard sequenceLength > original else { return (base(theta), 1) }
            let f = Double(factor), s = Double(sequenceLength), m = Double(original)
            let grown = theta * pow(f * s / m - (f - 1), Double(d) / Double(d - 2))
            return (base(grown), 1)
        case .llama3(let factor, let low, let high, let original):
            let f = Double(factor), lo = Double(low), hi = Double(high), m = Double(original)
            let lowWavelength = m / lo, highWavelength = m / hi
            let inv = base(theta).map { freq -> Double in
                let wavelength = 2 * Double.pi / freq
                if wavelength < highWavelength { return freq }
                if wavelength > lowWavelength { return freq / f }
                let smooth = (m / wavelength - lo) / (hi - lo)
                return (1 - smooth) * freq / f + smooth * freq
            }
            return (inv, 1)
        case .yarn(let factor, let original, let betaFast, let betaSlow, let attentionFactor):
            let f = Double(factor), m = Double(original)
            func correctionDim(_ rotations: Double) -> Double {
                Double(d) * log(m / (rotations * 2 * Double.pi)) / (2 * log(theta))
            }
            let low = max(floor(correctionDim(Double(betaFast))), 0)
            let high = min(ceil(correctionDim(Double(betaSlow))), Double(d - 1))
            let span = low == high ? 0.001 : high - low
            let extrapolation = base(theta)
            let inv = (0..<half).map { i -> Double in
                let ramp = min(max((Double(i) - low) / span, 0), 1)
                let keep = 1 - ramp  // share of the extrapolated (original) frequency
                return extrapolation[i] / f * (1 - keep) + extrapolation[i] * keep
            }
            let mscale = attentionFactor.map(Double.init) ?? (f <= 1 ? 1 : 0.1 * log(f) + 1)
            return (inv, mscale)
        }
    }

    /// cos and sin [positions, d/2] (already times the attention factor) for positions 0..<count.
    func table(headSize d: Int, positions count: Int, sequenceLength: Int) -> (cos: [Float], sin: [Float]) {
        let (inv, factor) = inverseFrequencies(headSize: d, sequenceLength: sequenceLength)
        let half = d / 2
        var c = [Float](repeating: 0, count: count * half), s = c
        for p in 0..<count {
            for i in 0..<half {
                let angle = Double(p) * inv[i]
                c[p * half + i] = Float(Foundation.cos(angle) * factor)
                s[p * half + i] = Float(Foundation.sin(angle) * factor)
            }
        }
        return (c, s)
    }

    /// Dynamic scaling changes the table with the sequence length; every other variant has one table.
    var dependsOnLength: Bool {
        if case .dynamic = scaling { return true }
        return false
    }
}

/// The rotation table of one model: built once for the context, rebuilt per call only for dynamic NTK scaling
/// past the original context.
final class RoPETable {
    let config: RoPEConfig
    let headSize: Int, context: Int
    let cos: [Float], sin: [Float]

    init(config: RoPEConfig, headSize: Int, context: Int) {
        self.config = config; self.headSize = headSize; self.context = context
        (cos, sin) = config.table(headSize: headSize, positions: context, sequenceLength: context.clamped(toOriginal: config))
    }

    /// The table to use when the sequence reaches `length` positions.
    func forLength(_ length: Int) -> (cos: [Float], sin: [Float]) {
        guard config.dependsOnLength, case .dynamic(_, let original) = config.scaling, length > original else { return (cos, sin) }
        return config.table(headSize: headSize, positions: length, sequenceLength: length)
    }
}

private extension Int {
    /// The length used for the shared table: dynamic scaling leaves positions within the original context unscaled.
    func clamped(toOriginal c: RoPEConfig) -> Int {
        if case .dynamic(_, let original) = c.scaling { return Swift.min(self, original) }
        return self
    }
}
