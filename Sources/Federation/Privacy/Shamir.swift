// Shamir's t-of-n secret sharing (Shamir 1979) over GF(2⁸), byte by byte: each byte of the secret is the constant term
// of its own random polynomial of degree t − 1, and share i holds every polynomial at x = i (1…255). Any t shares give
// the secret back by Lagrange interpolation at 0; fewer reveal nothing about it.

public enum ShamirError: Error, Equatable, CustomStringConvertible {
    case badThreshold(threshold: Int, shares: Int)
    case badPoint(UInt8)
    case tooFewShares(have: Int, need: Int)
    case inconsistentShares(reason: String)

    public var description: String {
        switch self {
        case let .badThreshold(t, n): return "threshold \(t) must be in 1…\(n) (the number of shares)"
        case let .badPoint(x): return "share point \(x) is not in 1…255 or repeats"
        case let .tooFewShares(h, n): return "\(h) shares cannot recover a secret that needs \(n)"
        case let .inconsistentShares(r): return "shares do not fit together: \(r)"
        }
    }
}

public enum Shamir {
    public struct Share: Sendable, Equatable, Codable {
        /// The evaluation point, 1…255 (a participant's index in its group).
        public var x: UInt8
        public var y: [UInt8]
        public init(x: UInt8, y: [UInt8]) { self.x = x; self.y = y }
    }

    /// Shares of `secret` at the given distinct points (1…255); any `threshold` of them recover it.
    public static func split<R: RandomNumberGenerator>(_ secret: [UInt8], threshold t: Int, points: [UInt8],
                                                       using rng: inout R) throws(ShamirError) -> [Share] {
        guard t >= 1, t <= points.count else { throw .badThreshold(threshold: t, shares: points.count) }
        var seen = Set<UInt8>()
        for p in points where p == 0 || !seen.insert(p).inserted { throw .badPoint(p) }
        var shares = points.map { Share(x: $0, y: [UInt8](repeating: 0, count: secret.count)) }
        var coefficients = [UInt8](repeating: 0, count: t)
        for (b, s) in secret.enumerated() {
            coefficients[0] = s
            for k in 1..<t { coefficients[k] = UInt8.random(in: 0...255, using: &rng) }
            for i in shares.indices {
                // Horner: ((c_{t−1}·x + c_{t−2})·x + …)·x + c_0.
                var y: UInt8 = 0
                for k in stride(from: t - 1, through: 0, by: -1) { y = GF256.mul(y, shares[i].x) ^ coefficients[k] }
                shares[i].y[b] = y
            }
        }
        return shares
    }

    /// The secret from at least `threshold` shares (the first `threshold` distinct points are used).
    public static func combine(_ shares: [Share], threshold t: Int) throws(ShamirError) -> [UInt8] {
        var seen = Set<UInt8>()
        let use = shares.filter { $0.x != 0 && seen.insert($0.x).inserted }.prefix(t)
        guard use.count >= max(1, t) else { throw .tooFewShares(have: use.count, need: t) }
        let length = use.first!.y.count
        guard use.allSatisfy({ $0.y.count == length }) else { throw .inconsistentShares(reason: "shares of different lengths") }
        // Lagrange basis at 0: L_i = Π_{j≠i} x_j / (x_j − x_i); in GF(2⁸) subtraction is xor.
        let xs = use.map(\.x)
        let basis = xs.indices.map { i -> UInt8 in
            var num: UInt8 = 1, den: UInt8 = 1
            for j in xs.indices where j != i { num = GF256.mul(num, xs[j]); den = GF256.mul(den, xs[j] ^ xs[i]) }
            return GF256.div(num, den)
        }
        var secret = [UInt8](repeating: 0, count: length)
        for (share, l) in zip(use, basis) {
            for b in 0..<length { secret[b] ^= GF256.mul(share.y[b], l) }
        }
        return secret
    }
}

/// Arithmetic in GF(2⁸) with the AES polynomial x⁸ + x⁴ + x³ + x + 1, by log/antilog tables of the generator 3.
enum GF256 {
    static let tables: (exp: [UInt8], log: [UInt8]) = {
        var exp = [UInt8](repeating: 0, count: 510), log = [UInt8](repeating: 0, count: 256)
        var x: UInt8 = 1
        for i in 0..<255 {
            exp[i] = x; exp[i + 255] = x
            log[Int(x)] = UInt8(i)
            // x·3 = x·2 ⊕ x, reduced by the polynomial.
            let double = (x << 1) ^ ((x & 0x80) != 0 ? 0x1B : 0)
            x = double ^ x
        }
        return (exp, log)
    }()

    @inline(__always) static func mul(_ a: UInt8, _ b: UInt8) -> UInt8 {
        if a == 0 || b == 0 { return 0 }
        return tables.exp[Int(tables.log[Int(a)]) + Int(tables.log[Int(b)])]
    }

    /// a / b for b ≠ 0.
    @inline(__always) static func div(_ a: UInt8, _ b: UInt8) -> UInt8 {
        if a == 0 { return 0 }
        return tables.exp[Int(tables.log[Int(a)]) + 255 - Int(tables.log[Int(b)])]
    }
}
