import Crypto
import Foundation

/// The aggregator's side of one secure-aggregation group in one round. The caller closes each step (all in, or its
/// deadline): sharing fixes U1 (who shared) and routes the encrypted shares; masking fixes U2 (whose masked input
/// arrived) and asks U2 for shares; the reveals recover every self-mask seed of U2 and every mask key of U1 \ U2, and
/// the sum is unmasked. It holds the running sum of masked inputs, never an individual unmasked one.
public struct SecAggServer: Sendable {
    public enum Phase: String, Sendable { case sharing, masking, unmasking, done, failed }

    public let wire: UInt64
    public let group: Int
    public let members: [SecAggMember]
    /// Member id → its neighbours' ids.
    public let neighbours: [String: [String]]
    public let threshold: Int
    public let length: Int
    let weights: [String: Double]
    let bounds: [String: Double]
    public let fixedPoint: FixedPoint
    public private(set) var phase = Phase.sharing
    public private(set) var failure: String?
    /// Sharing: each sender's ciphertexts by recipient.
    var outbox: [String: [String: [UInt8]]] = [:]
    /// Who shared (fixed when sharing closes).
    public private(set) var shared: Set<String> = []
    /// Whose masked input arrived.
    public private(set) var delivered: Set<String> = []
    /// What each survivor was asked to reveal.
    public private(set) var unmaskRequests: [String: (survivors: [String], dropped: [String])] = [:]
    var sum: [UInt32]
    /// Who revealed, and the shares of each owner's secrets.
    public private(set) var revealedBy: Set<String> = []
    var selfShares: [String: [Shamir.Share]] = [:]
    var keyShares: [String: [Shamir.Share]] = [:]

    /// A group of `keys` (id → public keys) with each member's weight and clamp bound; `neighbours` (SecAgg+) pairs each
    /// member with that many others on a seeded ring (0: with everyone).
    public init(wire: UInt64, group: Int, keys: [String: SecAggPublicKeys], weights: [String: Double], bounds: [String: Double],
                length: Int, neighbours k: Int) {
        self.wire = wire; self.group = group; self.length = length; self.weights = weights; self.bounds = bounds
        let ids = keys.keys.sorted()
        members = ids.enumerated().map { SecAggMember(id: $1, index: $0 + 1, keys: keys[$1]!) }
        neighbours = Self.ring(ids, k: k, seed: wire &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(group))
        let degree = neighbours.values.map(\.count).min() ?? 0
        threshold = degree / 2 + 1
        fixedPoint = FixedPoint(step: FixedPoint.step(bounds: ids.map { bounds[$0] ?? 0 }), bound: 0)
        sum = [UInt32](repeating: 0, count: length)
    }

    /// Neighbours on a ring in a seeded random order (a Harary graph, as SecAgg+'s implementations use): each member
    /// pairs with ⌈k/2⌉ on either side; everyone with everyone when k = 0 or the ring is small.
    static func ring(_ ids: [String], k: Int, seed: UInt64) -> [String: [String]] {
        let n = ids.count
        guard k > 0, k < n - 1 else { return Dictionary(uniqueKeysWithValues: ids.map { id in (id, ids.filter { $0 != id }) }) }
        var order = ids
        var rng = SeededRandom(seed: seed)
        for i in stride(from: n - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        let half = (k + 1) / 2
        var out: [String: [String]] = [:]
        for (p, id) in order.enumerated() {
            var set = Set<String>()
            for j in 1...half { set.insert(order[(p + j) % n]); set.insert(order[(p - j + n) % n]) }
            set.remove(id)
            out[id] = set.sorted()
        }
        return out
    }

    func member(_ id: String) -> SecAggMember? { members.first { $0.id == id } }

    /// What member `id` is told after the keys step.
    public func assignment(for id: String) -> SecAggAssignment? {
        guard let m = member(id) else { return nil }
        let ns = (neighbours[id] ?? []).compactMap(member)
        var fp = fixedPoint
        fp.bound = bounds[id] ?? 0
        return SecAggAssignment(wire: wire, group: group, index: m.index, threshold: threshold, neighbours: ns,
                                weight: weights[id] ?? 0, fixedPoint: fp, length: length)
    }

    // MARK: sharing

    public mutating func shares(from id: String, _ cts: [(to: String, ciphertext: [UInt8])]) throws {
        guard phase == .sharing else {
            if shared.contains(id) { return }  // a repeat (the device answered a resent roster from its cache)
            throw SecAggError.wrongPhase("shares from \(id) after the sharing step closed")
        }
        guard let ns = neighbours[id] else { throw SecAggError.unknownPeer(id) }
        let byTo = Dictionary(cts.map { ($0.to, $0.ciphertext) }, uniquingKeysWith: { a, _ in a })
        guard Set(byTo.keys) == Set(ns) else { throw SecAggError.wrongPhase("\(id) sent shares for \(byTo.keys.sorted()), its neighbours are \(ns)") }
        outbox[id] = byTo
    }

    public var allShared: Bool { outbox.count == members.count }
    public func hasShared(_ id: String) -> Bool { outbox[id] != nil || shared.contains(id) }

    /// Closes the sharing step: U1 = who shared. Each member of U1 gets the shares U1 addressed to it. Fails when a
    /// member of U1 has fewer than `threshold` neighbours in U1 (its secrets could not be recovered).
    public mutating func closeSharing() -> [String: [(from: String, ciphertext: [UInt8])]] {
        guard phase == .sharing else { return [:] }
        shared = Set(outbox.keys)
        for id in shared where (neighbours[id] ?? []).filter(shared.contains).count < threshold {
            fail("\(id) has fewer than \(threshold) neighbours that shared (\(shared.count) of \(members.count) members shared)")
            return [:]
        }
        phase = .masking
        var deliveries: [String: [(from: String, ciphertext: [UInt8])]] = [:]
        for v in shared.sorted() {
            deliveries[v] = (neighbours[v] ?? []).filter(shared.contains).sorted().compactMap { u in outbox[u]?[v].map { (u, $0) } }
        }
        outbox = [:]
        return deliveries
    }

    // MARK: masking

    public mutating func masked(from id: String, _ y: [UInt32]) throws {
        guard phase == .masking else { throw SecAggError.wrongPhase("a masked input from \(id) outside the masking step") }
        guard shared.contains(id) else { throw SecAggError.unknownPeer(id) }
        guard y.count == length else { throw SecAggError.wrongLength(expected: length, actual: y.count) }
        guard !delivered.contains(id) else { return }
        delivered.insert(id)
        sum.withUnsafeMutableBufferPointer { s in y.withUnsafeBufferPointer { v in for i in 0..<s.count { s[i] &+= v[i] } } }
    }

    public var allDelivered: Bool { phase == .masking && delivered == shared }

    /// Closes the masking step: U2 = who delivered. Returns each member of U2's unmask request (its neighbours in U2
    /// and in U1 \ U2); fails when U2 is smaller than the threshold.
    public mutating func closeMasking() -> [String: (survivors: [String], dropped: [String])] {
        guard phase == .masking else { return [:] }
        guard delivered.count >= threshold else {
            fail("\(delivered.count) masked inputs arrived, the threshold is \(threshold)")
            return [:]
        }
        phase = .unmasking
        var out: [String: (survivors: [String], dropped: [String])] = [:]
        for u in delivered.sorted() {
            let ns = (neighbours[u] ?? []).filter(shared.contains)
            out[u] = (ns.filter(delivered.contains).sorted(), ns.filter { !delivered.contains($0) }.sorted())
        }
        unmaskRequests = out
        return out
    }

    // MARK: unmasking

    public mutating func reveal(from id: String, _ shares: [SecAggRevealedShare]) throws {
        guard phase == .unmasking else { throw SecAggError.wrongPhase("a reveal from \(id) outside the unmasking step") }
        guard delivered.contains(id) else { throw SecAggError.unknownPeer(id) }
        guard !revealedBy.contains(id) else { return }
        let ns = Set(neighbours[id] ?? [])
        for s in shares {
            guard ns.contains(s.owner), shared.contains(s.owner), s.selfMask == delivered.contains(s.owner) else {
                throw SecAggError.wrongPhase("\(id) revealed a share of \(s.owner) that was not asked for")
            }
        }
        revealedBy.insert(id)
        for s in shares {
            if s.selfMask { selfShares[s.owner, default: []].append(s.share) } else { keyShares[s.owner, default: []].append(s.share) }
        }
    }

    /// Every secret the sum needs has `threshold` shares.
    public var recoverable: Bool {
        phase == .unmasking
            && delivered.allSatisfy { (selfShares[$0]?.count ?? 0) >= threshold }
            && shared.subtracting(delivered).allSatisfy { (keyShares[$0]?.count ?? 0) >= threshold }
    }

    public var allRevealed: Bool { phase == .unmasking && revealedBy == delivered }

    /// The unmasked sum Σ_{u ∈ U2} weight_u·x_u (decoded), once `recoverable`.
    public mutating func finish() throws -> (sum: [Double], contributors: [String], weight: Double) {
        guard phase == .unmasking else { throw SecAggError.wrongPhase("finish in phase \(phase.rawValue)") }
        guard recoverable else {
            let missing = delivered.filter { (selfShares[$0]?.count ?? 0) < threshold } + shared.subtracting(delivered).filter { (keyShares[$0]?.count ?? 0) < threshold }
            fail("too few shares for \(missing.sorted())")
            throw SecAggError.unrecoverable(failure!)
        }
        var s = sum
        for u in delivered.sorted() {
            let b = try Shamir.combine(selfShares[u]!, threshold: threshold)
            ChaChaStream.add(key: b, sign: -1, to: &s)
        }
        for v in shared.subtracting(delivered).sorted() {
            let raw = try Shamir.combine(keyShares[v]!, threshold: threshold)
            let key = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: raw)
            guard let mv = member(v), Array(key.publicKey.rawRepresentation) == mv.keys.mask else {
                fail("the shares of \(v)'s mask key do not give its advertised public key")
                throw SecAggError.unrecoverable(failure!)
            }
            // Each surviving neighbour w added sign(w, v)·PRG(s_wv): take it out.
            for w in (neighbours[v] ?? []) where delivered.contains(w) {
                guard let mw = member(w) else { continue }
                let seed = try SecAggDerivation.pairKey(key, mw.keys.mask, purpose: "mask", wire: wire, v, w)
                ChaChaStream.add(key: seed, sign: -SecAggDerivation.sign(mw.index, mv.index), to: &s)
            }
        }
        phase = .done
        let contributors = delivered.sorted()
        return (fixedPoint.decode(s), contributors, contributors.reduce(0) { $0 + (weights[$1] ?? 0) })
    }

    mutating func fail(_ why: String) {
        phase = .failed
        failure = why
    }
}
