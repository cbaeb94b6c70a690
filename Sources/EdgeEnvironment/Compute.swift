import Foundation

/// Compute capability of one tier: a mean FLOP/s with heterogeneity and stragglers.
public struct ComputeSpec: Sendable, Equatable {
    /// Mean peak compute of the tier, FLOP/s.
    public var flopsPerSecond: Double
    /// σ of ln(FLOP/s): each node draws mean·exp(σz − σ²/2), z ~ N(0,1), which keeps the mean.
    public var heterogeneitySigma: Double = 0
    /// Fraction of the tier's nodes made `stragglerSlowdown` times slower (exactly round(f·n)).
    public var stragglerFraction: Double = 0
    public var stragglerSlowdown: Double = 10
    /// Initial busy fraction, in [0, 1).
    public var load: Double = 0
    /// Joules per FLOP, if known.
    public var energyPerFLOPJoules: Double? = nil

    public init(flopsPerSecond: Double, heterogeneitySigma: Double = 0, stragglerFraction: Double = 0,
                stragglerSlowdown: Double = 10, load: Double = 0, energyPerFLOPJoules: Double? = nil) {
        self.flopsPerSecond = flopsPerSecond
        self.heterogeneitySigma = heterogeneitySigma
        self.stragglerFraction = stragglerFraction
        self.stragglerSlowdown = stragglerSlowdown
        self.load = load
        self.energyPerFLOPJoules = energyPerFLOPJoules
    }

    /// Draws the FLOP/s of `count` nodes, and which of them are stragglers.
    public func sample(count: Int, using rng: inout SplitMix64) -> [(flopsPerSecond: Double, isStraggler: Bool)] {
        let sigma = heterogeneitySigma
        var flops = (0..<count).map { _ in flopsPerSecond * exp(sigma * rng.nextGaussian() - sigma * sigma / 2) }
        // Seeded Fisher–Yates picks exactly round(f·n) stragglers.
        var indices = Array(0..<count)
        if count > 1 {
            for i in stride(from: count - 1, to: 0, by: -1) {
                indices.swapAt(i, Int(rng.next() % UInt64(i + 1)))
            }
        }
        let stragglers = Set(indices.prefix(Int((stragglerFraction * Double(count)).rounded())))
        for i in stragglers { flops[i] /= stragglerSlowdown }
        return (0..<count).map { (flops[$0], stragglers.contains($0)) }
    }
}
