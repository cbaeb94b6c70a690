import Crypto
import Foundation

// Secure aggregation (SecAgg, Bonawitz et al. 2017; SecAgg+, Bell et al. 2020): each device masks its fixed-point
// update in Z_2^32 with a self mask PRG(b_u) and pairwise masks ±PRG(s_uv) that cancel in the sum; s_uv comes from
// X25519 between the devices' mask keys. Each device Shamir-shares b_u and its mask secret key among its neighbours
// (everyone in SecAgg, k random neighbours in SecAgg+), so once the masked inputs are in, the aggregator can remove
// the self masks of the survivors and the pairwise masks of the devices that dropped after sharing, and learns the
// sum only. The protocol is two pure state machines per round and group: SecAggClient (device) and SecAggServer.

/// `privacy.secure_aggregation`.
public struct SecAggSettings: Sendable, Equatable, Codable {
    /// Neighbours each device pairs with and shares to (SecAgg+); 0 = everyone in its group (SecAgg).
    public var neighbours: Int
    /// Largest group; a round's participants of one model are split into groups of at most this many (≤ 255, the
    /// Shamir points of GF(2⁸)).
    public var maxGroup: Int

    public init(neighbours: Int = 0, maxGroup: Int = 255) {
        self.neighbours = max(0, neighbours); self.maxGroup = min(255, max(2, maxGroup))
    }
}

public enum SecAggError: Error, Equatable, CustomStringConvertible {
    case wrongPhase(String)
    case unknownPeer(String)
    case badCiphertext(from: String)
    case wrongLength(expected: Int, actual: Int)
    case tooFewSurvivors(have: Int, need: Int)
    case unrecoverable(String)

    public var description: String {
        switch self {
        case .wrongPhase(let what): return "secure aggregation: \(what)"
        case .unknownPeer(let id): return "secure aggregation: \(id) is not in this group"
        case .badCiphertext(let from): return "secure aggregation: the shares from \(from) do not decrypt"
        case let .wrongLength(e, a): return "secure aggregation: a masked input of \(a) words, the group's vector has \(e)"
        case let .tooFewSurvivors(h, n): return "secure aggregation: \(h) survivors, the threshold is \(n): refusing to unmask"
        case .unrecoverable(let why): return "secure aggregation: cannot recover the sum: \(why)"
        }
    }
}

/// Fixed-point encoding into Z_2^32: x → round(clamp(x, ±bound) / step) mod 2³². The aggregator picks the step so that
/// the group's clamped values cannot overflow ±2³¹ when summed; the sum decodes as a signed 32-bit integer × step.
public struct FixedPoint: Sendable, Equatable, Codable {
    public var step: Double
    /// Each device clamps its (weighted) values to ±bound first.
    public var bound: Double

    public init(step: Double, bound: Double) { self.step = step; self.bound = bound }

    /// The step for devices whose bounds are `bounds`: their sum stays inside ±(2³¹ − 1) steps.
    public static func step(bounds: [Double]) -> Double { max(bounds.reduce(0, +), 1e-30) / Double(Int32.max - 1) }

    public func encode(_ x: [Float]) -> [UInt32] {
        x.map { v in
            let c = min(bound, max(-bound, Double(v.isFinite ? v : 0)))
            return UInt32(truncatingIfNeeded: Int64((c / step).rounded()))
        }
    }

    public func decode(_ sum: [UInt32]) -> [Double] { sum.map { Double(Int32(bitPattern: $0)) * step } }
}

/// A device's two X25519 public keys for one round.
public struct SecAggPublicKeys: Sendable, Equatable, Codable {
    /// Encrypts the shares others send it.
    public var cipher: [UInt8]
    /// Pairwise masks.
    public var mask: [UInt8]
    public init(cipher: [UInt8], mask: [UInt8]) { self.cipher = cipher; self.mask = mask }
}

/// One member of a group as the others see it: id, Shamir point (1…255) and public keys.
public struct SecAggMember: Sendable, Equatable, Codable {
    public var id: String
    public var index: Int
    public var keys: SecAggPublicKeys
    public init(id: String, index: Int, keys: SecAggPublicKeys) { self.id = id; self.index = index; self.keys = keys }
}

/// What the aggregator tells one device after the keys are in: its group, its point, the threshold, its neighbours,
/// and how to encode (weight, fixed point, vector length).
public struct SecAggAssignment: Sendable, Equatable {
    public var wire: UInt64
    public var group: Int
    public var index: Int
    public var threshold: Int
    public var neighbours: [SecAggMember]
    public var weight: Double
    public var fixedPoint: FixedPoint
    public var length: Int

    public init(wire: UInt64, group: Int, index: Int, threshold: Int, neighbours: [SecAggMember], weight: Double, fixedPoint: FixedPoint, length: Int) {
        self.wire = wire; self.group = group; self.index = index; self.threshold = threshold; self.neighbours = neighbours
        self.weight = weight; self.fixedPoint = fixedPoint; self.length = length
    }
}

/// A neighbour's share of an owner's secret, revealed in the unmasking step.
public struct SecAggRevealedShare: Sendable, Equatable {
    public var owner: String
    /// true: of the owner's self-mask seed b; false: of its mask secret key.
    public var selfMask: Bool
    public var share: Shamir.Share
    public init(owner: String, selfMask: Bool, share: Shamir.Share) { self.owner = owner; self.selfMask = selfMask; self.share = share }
}

/// The key derivations both sides share.
enum SecAggDerivation {
    static let salt = Array("fi-secagg-v1".utf8)

    /// A 32-byte key for the pair (a, b) in round `wire`, from an X25519 agreement (the same from either side).
    static func pairKey(_ secret: Curve25519.KeyAgreement.PrivateKey, _ peer: [UInt8], purpose: String, wire: UInt64, _ a: String, _ b: String) throws -> [UInt8] {
        let shared = try secret.sharedSecretFromKeyAgreement(with: Curve25519.KeyAgreement.PublicKey(rawRepresentation: peer))
        let (lo, hi) = a < b ? (a, b) : (b, a)
        let info = Array("\(purpose)|\(wire)|\(lo)|\(hi)".utf8)
        let key = shared.hkdfDerivedSymmetricKey(using: SHA256.self, salt: salt, sharedInfo: info, outputByteCount: 32)
        return key.withUnsafeBytes { Array($0) }
    }

    /// +1 when `a` adds the pair's mask, −1 when it subtracts it (the lower point adds).
    static func sign(_ a: Int, _ b: Int) -> Int { a < b ? 1 : -1 }

    /// Any 32 random bytes are a valid X25519 secret key (clamped on use).
    static func randomBytes<R: RandomNumberGenerator>(_ n: Int, _ rng: inout R) -> [UInt8] { (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) } }
}
