import Crypto
import Foundation

/// A device's side of one secure-aggregation round: keys → shares for its neighbours → (shares received) masked
/// input → reveal what the unmask request asks, once. Holds its secrets only for the round.
public struct SecAggClient: Sendable {
    public let id: String
    public let wire: UInt64
    /// The two X25519 secret keys, raw (32 bytes each).
    let cipherSecret: [UInt8]
    let maskSecret: [UInt8]
    var cipherKey: Curve25519.KeyAgreement.PrivateKey { try! .init(rawRepresentation: cipherSecret) }
    var maskKey: Curve25519.KeyAgreement.PrivateKey { try! .init(rawRepresentation: maskSecret) }
    /// b_u: the self-mask seed.
    let selfSeed: [UInt8]
    public private(set) var assignment: SecAggAssignment?
    /// Shares received from neighbours that completed the sharing step (U1 ∩ neighbours): theirs of b and of the key.
    var held: [String: (selfShare: Shamir.Share, keyShare: Shamir.Share)] = [:]
    public private(set) var sharesReceived = false
    var revealed = false

    /// Fresh keys and self-mask seed from `rng` (the system's CSPRNG in a device; seeded in tests).
    public init<R: RandomNumberGenerator>(id: String, wire: UInt64, using rng: inout R) {
        self.id = id; self.wire = wire
        cipherSecret = SecAggDerivation.randomBytes(32, &rng)
        maskSecret = SecAggDerivation.randomBytes(32, &rng)
        selfSeed = SecAggDerivation.randomBytes(32, &rng)
    }

    public var publicKeys: SecAggPublicKeys {
        SecAggPublicKeys(cipher: Array(cipherKey.publicKey.rawRepresentation), mask: Array(maskKey.publicKey.rawRepresentation))
    }

    /// Shamir shares of b and of the mask secret key for every neighbour (x = its point), each encrypted for it.
    public mutating func share<R: RandomNumberGenerator>(_ a: SecAggAssignment, using rng: inout R) throws -> [(to: String, ciphertext: [UInt8])] {
        guard assignment == nil || assignment == a else { throw SecAggError.wrongPhase("a second, different roster for round \(wire)") }
        guard a.wire == wire else { throw SecAggError.wrongPhase("a roster for round \(a.wire), this client is for \(wire)") }
        assignment = a
        let points = a.neighbours.map { UInt8($0.index) }
        let selfShares = try Shamir.split(selfSeed, threshold: a.threshold, points: points, using: &rng)
        let keyShares = try Shamir.split(maskSecret, threshold: a.threshold, points: points, using: &rng)
        var out: [(to: String, ciphertext: [UInt8])] = []
        for (i, v) in a.neighbours.enumerated() {
            let key = try SecAggDerivation.pairKey(cipherKey, v.keys.cipher, purpose: "shares", wire: wire, id, v.id)
            let plain = [UInt8(a.index), UInt8(v.index)] + selfShares[i].y + keyShares[i].y
            let nonce = try ChaChaPoly.Nonce(data: SecAggDerivation.randomBytes(12, &rng))
            let box = try ChaChaPoly.seal(plain, using: SymmetricKey(data: key), nonce: nonce, authenticating: aad(from: id, to: v.id))
            out.append((v.id, Array(box.combined)))
        }
        return out
    }

    /// The shares neighbours sent this device (only those that finished the sharing step send any).
    public mutating func receive(_ shares: [(from: String, ciphertext: [UInt8])]) throws {
        guard let a = assignment else { throw SecAggError.wrongPhase("shares before the roster") }
        var got: [String: (Shamir.Share, Shamir.Share)] = [:]
        for s in shares {
            guard let v = a.neighbours.first(where: { $0.id == s.from }) else { throw SecAggError.unknownPeer(s.from) }
            let plain: [UInt8]
            do {
                let key = try SecAggDerivation.pairKey(cipherKey, v.keys.cipher, purpose: "shares", wire: wire, id, v.id)
                plain = Array(try ChaChaPoly.open(ChaChaPoly.SealedBox(combined: s.ciphertext), using: SymmetricKey(data: key),
                                                  authenticating: aad(from: v.id, to: id)))
            } catch {
                throw SecAggError.badCiphertext(from: s.from)
            }
            guard plain.count == 66, Int(plain[0]) == v.index, Int(plain[1]) == a.index else { throw SecAggError.badCiphertext(from: s.from) }
            let x = UInt8(a.index)
            got[v.id] = (Shamir.Share(x: x, y: Array(plain[2..<34])), Shamir.Share(x: x, y: Array(plain[34..<66])))
        }
        held = got.mapValues { (selfShare: $0.0, keyShare: $0.1) }
        sharesReceived = true
    }

    /// y = encode(weight·x) + PRG(b) + Σ_{v ∈ U1 ∩ neighbours} ±PRG(s_uv) mod 2³²; `x` has the group's vector length.
    public func mask(_ x: [Float]) throws -> [UInt32] {
        guard let a = assignment, sharesReceived else { throw SecAggError.wrongPhase("masking before the shares arrived") }
        guard x.count == a.length else { throw SecAggError.wrongLength(expected: a.length, actual: x.count) }
        let w = Float(a.weight)
        var y = a.fixedPoint.encode(x.map { $0 * w })
        ChaChaStream.add(key: selfSeed, sign: 1, to: &y)
        for v in a.neighbours where held[v.id] != nil {
            let seed = try SecAggDerivation.pairKey(maskKey, v.keys.mask, purpose: "mask", wire: wire, id, v.id)
            ChaChaStream.add(key: seed, sign: SecAggDerivation.sign(a.index, v.index), to: &y)
        }
        return y
    }

    /// The unmask request: shares of b for neighbours that delivered, of the mask key for those that dropped. Answered
    /// once; refused when fewer than the threshold survive or the lists are not the neighbours that shared.
    public mutating func reveal(survivors: [String], dropped: [String]) throws -> [SecAggRevealedShare] {
        guard let a = assignment, sharesReceived else { throw SecAggError.wrongPhase("unmask before the shares arrived") }
        guard !revealed else { throw SecAggError.wrongPhase("a second unmask request for round \(wire)") }
        let s = Set(survivors), d = Set(dropped)
        guard s.isDisjoint(with: d), s.union(d).isSubset(of: Set(held.keys)) else {
            throw SecAggError.wrongPhase("the unmask lists name peers that did not share with \(id), or a peer as both survivor and dropped")
        }
        guard s.count + 1 >= a.threshold else { throw SecAggError.tooFewSurvivors(have: s.count + 1, need: a.threshold) }
        revealed = true
        return survivors.sorted().map { SecAggRevealedShare(owner: $0, selfMask: true, share: held[$0]!.selfShare) }
            + dropped.sorted().map { SecAggRevealedShare(owner: $0, selfMask: false, share: held[$0]!.keyShare) }
    }

    func aad(from: String, to: String) -> [UInt8] { Array("secagg|\(wire)|\(from)|\(to)".utf8) }
}
