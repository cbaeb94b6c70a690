#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Rényi-DP accounting of the Poisson-subsampled Gaussian mechanism (Mironov, Talwar & Zhang 2019, "Rényi
// Differential Privacy of the Sampled Gaussian Mechanism"; the computation of Opacus/TF Privacy): each round adds
// its RDP curve ε_α over a fixed list of orders; ε at δ is the best order's conversion.

/// The privacy spent so far, as RDP over fixed orders α; composes by addition.
public struct RDPAccountant: Sendable, Equatable, Codable {
    /// The orders α > 1 the curve is kept at (Opacus's default list plus large ones for tiny ε).
    public static let orders: [Double] = (1..<100).map { 1 + Double($0) / 10 } + (12..<64).map(Double.init) + [128, 256, 512]

    /// Σ over rounds of each round's RDP at `orders[i]`.
    public private(set) var rdp: [Double]
    /// Rounds (mechanism applications) composed so far.
    public private(set) var steps = 0
    /// The last (q, σ) curve: rounds usually repeat it.
    private var cached: (q: Double, sigma: Double, curve: [Double])?

    enum CodingKeys: String, CodingKey { case rdp, steps }

    public static func == (a: RDPAccountant, b: RDPAccountant) -> Bool { a.rdp == b.rdp && a.steps == b.steps }

    public init() { rdp = [Double](repeating: 0, count: Self.orders.count) }

    /// Composes `count` applications of the sampled Gaussian mechanism: sampling rate q, noise multiplier σ
    /// (noise std / sensitivity).
    public mutating func compose(q: Double, sigma: Double, count: Int = 1) {
        guard count > 0 else { return }
        let curve: [Double]
        if let c = cached, c.q == q, c.sigma == sigma { curve = c.curve } else {
            curve = Self.curve(q: q, sigma: sigma)
            cached = (q, sigma, curve)
        }
        for i in rdp.indices { rdp[i] += Double(count) * curve[i] }
        steps += count
    }

    /// Adds a precomputed curve (e.g. a mechanism whose sensitivity is a multiple of the clip: RDP scales by c²).
    public mutating func compose(curve: [Double]) {
        precondition(curve.count == rdp.count, "RDP curve over other orders (internal)")
        for i in rdp.indices { rdp[i] += curve[i] }
        steps += 1
    }

    /// ε at δ: min over orders of ε_α − (log δ + log α)/(α − 1) + log((α − 1)/α) (Balle et al. 2020's conversion,
    /// as Opacus), and the order that attains it.
    public func epsilon(delta: Double) -> (epsilon: Double, order: Double) {
        steps == 0 ? (0, 0) : Self.epsilon(rdp: rdp, delta: delta)
    }

    public static func epsilon(rdp: [Double], delta: Double) -> (epsilon: Double, order: Double) {
        guard delta > 0, delta < 1 else { return (.infinity, 0) }
        var best = (epsilon: Double.infinity, order: 0.0)
        for (a, r) in zip(orders, rdp) where r.isFinite {
            let e = r - (log(delta) + log(a)) / (a - 1) + log((a - 1) / a)
            if e < best.epsilon { best = (e, a) }
        }
        return (max(0, best.epsilon), best.order)
    }

    /// The RDP of one application at every order.
    public static func curve(q: Double, sigma: Double) -> [Double] {
        orders.map { rdp(q: q, sigma: sigma, order: $0) }
    }

    /// RDP at order α of the Poisson-subsampled Gaussian with rate q and noise multiplier σ.
    public static func rdp(q: Double, sigma: Double, order a: Double) -> Double {
        if q <= 0 { return 0 }
        if !(sigma > 0) { return .infinity }
        if q >= 1 { return a / (2 * sigma * sigma) }
        let logA = a == a.rounded() ? logAInteger(q: q, sigma: sigma, order: Int(a)) : logAFractional(q: q, sigma: sigma, order: a)
        return logA / (a - 1)
    }

    /// log A_α for integer α: A_α = Σ_k C(α,k) (1−q)^(α−k) q^k exp((k² − k)/(2σ²)).
    static func logAInteger(q: Double, sigma: Double, order a: Int) -> Double {
        var acc = -Double.infinity
        for k in 0...a {
            let term = logBinomial(Double(a), Double(k)) + Double(k) * log(q) + Double(a - k) * log1p(-q)
                + Double(k * k - k) / (2 * sigma * sigma)
            acc = logAdd(acc, term)
        }
        return acc
    }

    /// log A_α for fractional α: the two-sided series of Mironov et al. (Section 3.3), summed until its terms vanish.
    static func logAFractional(q: Double, sigma: Double, order a: Double) -> Double {
        var a0 = -Double.infinity, a1 = -Double.infinity
        let z0 = sigma * sigma * log(1 / q - 1) + 0.5
        var i = 0.0, coef = 1.0  // C(α, i), built up term by term
        while i < 10_000 {
            if i > 0 { coef *= (a - i + 1) / i }
            let logCoef = log(abs(coef))
            let j = a - i
            let t0 = logCoef + i * log(q) + j * log1p(-q)
            let t1 = logCoef + j * log(q) + i * log1p(-q)
            let e0 = log(0.5) + logErfc((i - z0) / (2.0.squareRoot() * sigma))
            let e1 = log(0.5) + logErfc((z0 - j) / (2.0.squareRoot() * sigma))
            let s0 = t0 + (i * i - i) / (2 * sigma * sigma) + e0
            let s1 = t1 + (j * j - j) / (2 * sigma * sigma) + e1
            if coef > 0 {
                a0 = logAdd(a0, s0); a1 = logAdd(a1, s1)
            } else {
                a0 = logSub(a0, s0); a1 = logSub(a1, s1)
            }
            i += 1
            if max(s0, s1) < -30 { break }
        }
        return logAdd(a0, a1)
    }

    /// The smallest σ (to 0.1%) whose ε after `rounds` rounds at rate q stays within `target` at δ; nil when even
    /// σ = 1000 does not reach it.
    public static func noiseMultiplier(forEpsilon target: Double, q: Double, rounds: Int, delta: Double) -> Double? {
        func eps(_ s: Double) -> Double {
            var a = RDPAccountant()
            a.compose(q: q, sigma: s, count: rounds)
            return a.epsilon(delta: delta).epsilon
        }
        var hi = 1.0
        while eps(hi) > target { hi *= 2; if hi > 1000 { return nil } }
        var lo = hi / 2
        if eps(lo) <= target { lo = 0 }
        while hi - lo > 1e-3 * hi {
            let mid = (lo + hi) / 2
            if eps(mid) <= target { hi = mid } else { lo = mid }
        }
        return hi
    }
}

// Log-space helpers.
func logAdd(_ x: Double, _ y: Double) -> Double {
    let (a, b) = (min(x, y), max(x, y))
    if a == -.infinity { return b }
    return log1p(exp(a - b)) + b
}

func logSub(_ x: Double, _ y: Double) -> Double {
    if y == -.infinity { return x }
    if x <= y { return -.infinity }  // the series' partial sums stay positive; rounding can touch zero
    return log(-expm1(y - x)) + x
}

func logBinomial(_ n: Double, _ k: Double) -> Double { lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1) }

/// log(erfc(x)), accurate where erfc underflows (asymptotic series for large x).
func logErfc(_ x: Double) -> Double {
    if x < 20 { return log(erfc(x)) }
    let r = 1 / (x * x)
    return -x * x - log(x) - 0.5 * log(Double.pi) + log(1 - 0.5 * r + 0.75 * r * r - 1.875 * r * r * r)
}
