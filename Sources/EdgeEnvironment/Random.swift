import Foundation

/// SplitMix64 (Steele et al. 2014): tiny, fast, and deterministic across platforms,
/// so a scenario seed reproduces the same positions, shadowing and fading everywhere.
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

    /// Uniform in the open interval (0, 1): never 0, so `log` is always finite.
    public mutating func nextUnit() -> Double {
        (Double(next() >> 11) + 0.5) * 0x1.0p-53
    }

    /// Exp(1): the power gain |h|² of a Rayleigh-faded channel.
    public mutating func nextExponential() -> Double { -Foundation.log(nextUnit()) }

    /// Standard normal N(0, 1) by Box–Muller.
    public mutating func nextGaussian() -> Double {
        let u1 = nextUnit(), u2 = nextUnit()
        return (-2 * Foundation.log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}

/// FNV-1a over UTF-8. Swift's `Hasher` is randomised per process, so it cannot key
/// reproducible draws; this can.
public func stableHash(_ text: String) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in text.utf8 {
        h ^= UInt64(byte)
        h &*= 0x0000_0100_0000_01B3
    }
    return h
}
