import Foundation

/// SplitMix64 (Steele et al. 2014): a small, fast, seedable generator, the one RNG of the project
/// (Federation's xoshiro `SeededRandom` aside). Every random choice goes through it and the helpers
/// below, not the stdlib's `shuffle` or `random(in:)` whose algorithms may change between
/// toolchains, so a seed means the same model init, partition, topology and fading everywhere.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return SplitMix64.mix(state)
    }

    /// The SplitMix64 finaliser: a bijective 64-bit mixer, also used to derive keyed streams.
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A generator whose stream depends only on `seed` and the keys, so the same
    /// (link, coherence block) always gives the same draw, whatever was drawn before.
    public static func keyed(seed: UInt64, _ keys: UInt64...) -> SplitMix64 {
        var h = mix(seed)
        for key in keys { h = mix(h ^ mix(key &+ 0x632B_E59B_D9B4_E019)) }
        return SplitMix64(seed: h)
    }

    /// Uniform in [0, 1) with 53 bits.
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform in the open interval (0, 1): never 0, so `log` is always finite.
    public mutating func nextUnit() -> Double { (Double(next() >> 11) + 0.5) * 0x1.0p-53 }

    /// Uniform Float in [0, 1) with 24 bits.
    public mutating func nextFloat() -> Float { Float(next() >> 40) / Float(1 << 24) }

    /// Uniform integer in 0..<bound (Lemire's multiply-shift with rejection, so no modulo bias).
    public mutating func below(_ bound: Int) -> Int {
        guard bound > 1 else { return 0 }
        let b = UInt64(bound)
        while true {
            let m = next().multipliedFullWidth(by: b)
            if m.low >= (0 &- b) % b { return Int(m.high) }
        }
    }

    /// Exp(1): the power gain |h|² of a Rayleigh-faded channel.
    public mutating func nextExponential() -> Double { -Foundation.log(nextUnit()) }

    /// Standard normal N(0, 1) by Box–Muller.
    public mutating func nextGaussian() -> Double {
        let u1 = nextUnit(), u2 = nextUnit()
        return (-2 * Foundation.log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    /// Standard normal as Float, for weight init and test tensors.
    public mutating func nextGaussian() -> Float { Float(nextGaussian() as Double) }

    /// Gamma(shape, 1) by Marsaglia–Tsang; shape < 1 uses Gamma(shape+1)·U^(1/shape).
    public mutating func gamma(shape: Double) -> Double {
        if shape < 1 {
            let g = gamma(shape: shape + 1)
            return g * pow(max(uniform(), 0x1.0p-60), 1 / shape)
        }
        let d = shape - 1.0 / 3.0
        let c = 1 / (9 * d).squareRoot()
        while true {
            var x = 0.0, v = 0.0
            repeat {
                x = nextGaussian()
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = uniform()
            if u < 1 - 0.0331 * x * x * x * x { return d * v }
            if Foundation.log(max(u, 0x1.0p-60)) < 0.5 * x * x + d * (1 - v + Foundation.log(v)) { return d * v }
        }
    }

    /// Dirichlet(α, …, α) over `count` categories, from normalised gammas.
    public mutating func dirichlet(alpha: Double, count: Int) -> [Double] {
        var g = (0..<count).map { _ in gamma(shape: alpha) }
        var sum = g.reduce(0, +)
        if sum <= 0 || !sum.isFinite {
            // Every gamma underflowed (tiny α): all mass on one category, as the limit says.
            g = [Double](repeating: 0, count: count)
            g[below(count)] = 1
            sum = 1
        }
        return g.map { $0 / sum }
    }

    /// Fisher–Yates.
    public mutating func shuffle<T>(_ array: inout [T]) {
        guard array.count > 1 else { return }
        for i in stride(from: array.count - 1, to: 0, by: -1) {
            array.swapAt(i, below(i + 1))
        }
    }
}

/// FNV-1a 64: a stable hash for seeds derived from names and for fingerprints
/// (Swift's `Hasher` is randomly seeded per process).
public func fnv1a64<S: Sequence>(_ bytes: S, seed: UInt64 = 0xCBF2_9CE4_8422_2325) -> UInt64 where S.Element == UInt8 {
    var h = seed
    for b in bytes {
        h ^= UInt64(b)
        h = h &* 0x100_0000_01B3
    }
    return h
}

/// FNV-1a over UTF-8.
public func stableHash(_ text: String) -> UInt64 { fnv1a64(text.utf8) }
