import CMessages

// Privacy (issue 15): what a task asks of the device's privacy stage, what an upload says about it, and the
// secure-aggregation messages of one round (fi.proto explains the exchange).

/// The device's privacy stage this round (RoundAnnouncement.privacy).
public struct TaskPrivacy: Sendable, Equatable {
    public var clip: Double
    public var noiseStd: Double
    public var reportClipped: Bool
    public var countNoiseStd: Double
    /// Upload through secure aggregation.
    public var secure: Bool
    /// Also send a noised random-projection sketch of the clipped update (clustering under secure aggregation).
    public var sketchDim: UInt32
    public var sketchNoiseStd: Double
    public var sketchSeed: UInt64

    public init(clip: Double, noiseStd: Double = 0, reportClipped: Bool = false, countNoiseStd: Double = 0, secure: Bool = false,
                sketchDim: UInt32 = 0, sketchNoiseStd: Double = 0, sketchSeed: UInt64 = 0) {
        self.clip = clip; self.noiseStd = noiseStd; self.reportClipped = reportClipped; self.countNoiseStd = countNoiseStd
        self.secure = secure; self.sketchDim = sketchDim; self.sketchNoiseStd = sketchNoiseStd; self.sketchSeed = sketchSeed
    }

    init(c: UnsafeMutablePointer<Fi__V1__TaskPrivacy>) throws {
        let m = c.pointee
        for (name, v) in [("clip", m.clip), ("noise_std", m.noise_std), ("count_noise_std", m.count_noise_std), ("sketch_noise_std", m.sketch_noise_std)]
        where !(v.isFinite && v >= 0) {
            throw MessageError.invalidField(field: "TaskPrivacy.\(name)", reason: "\(v) is not a finite number ≥ 0")
        }
        guard m.sketch_dim <= 1 << 20 else { throw MessageError.invalidField(field: "TaskPrivacy.sketch_dim", reason: "\(m.sketch_dim) > 2^20") }
        self.init(clip: m.clip, noiseStd: m.noise_std, reportClipped: m.report_clipped != 0, countNoiseStd: m.count_noise_std,
                  secure: m.secure != 0, sketchDim: m.sketch_dim, sketchNoiseStd: m.sketch_noise_std, sketchSeed: m.sketch_seed)
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__TaskPrivacy> {
        let p: UnsafeMutablePointer<Fi__V1__TaskPrivacy> = arena.message(fi__v1__task_privacy__init)
        p.pointee.clip = clip; p.pointee.noise_std = noiseStd; p.pointee.report_clipped = reportClipped ? 1 : 0
        p.pointee.count_noise_std = countNoiseStd; p.pointee.secure = secure ? 1 : 0
        p.pointee.sketch_dim = sketchDim; p.pointee.sketch_noise_std = sketchNoiseStd; p.pointee.sketch_seed = sketchSeed
        return p
    }
}

/// What an upload carries besides its delta (UpdateUpload.privacy).
public struct UploadPrivacy: Sendable, Equatable {
    /// Device, adaptive clipping: the noised unclipped indicator.
    public var clipReport: Float?
    /// Edge → cloud: ε its devices have spent.
    public var epsilon: Double?
    /// Secure aggregation: the masked input.
    public var masked: [UInt32]
    public var sketch: Tensor?

    public init(clipReport: Float? = nil, epsilon: Double? = nil, masked: [UInt32] = [], sketch: Tensor? = nil) {
        self.clipReport = clipReport; self.epsilon = epsilon; self.masked = masked; self.sketch = sketch
    }

    init(c: UnsafeMutablePointer<Fi__V1__UploadPrivacy>, _ ctx: inout DecodeContext) throws {
        let m = c.pointee
        let bytes = readBytes(m.masked)
        guard bytes.count % 4 == 0 else { throw MessageError.invalidField(field: "UploadPrivacy.masked", reason: "\(bytes.count) bytes is not whole 32-bit words") }
        guard m.epsilon.isFinite, m.epsilon >= 0 else { throw MessageError.invalidField(field: "UploadPrivacy.epsilon", reason: "\(m.epsilon)") }
        var words = [UInt32](repeating: 0, count: bytes.count / 4)
        for i in words.indices {
            words[i] = UInt32(bytes[4 * i]) | UInt32(bytes[4 * i + 1]) << 8 | UInt32(bytes[4 * i + 2]) << 16 | UInt32(bytes[4 * i + 3]) << 24
        }
        self.init(clipReport: m.has_clip_report != 0 ? m.clip_report : nil, epsilon: m.epsilon > 0 ? m.epsilon : nil, masked: words,
                  sketch: try m.sketch.map { try Tensor(c: $0, &ctx) })
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__UploadPrivacy> {
        let p: UnsafeMutablePointer<Fi__V1__UploadPrivacy> = arena.message(fi__v1__upload_privacy__init)
        p.pointee.has_clip_report = clipReport == nil ? 0 : 1; p.pointee.clip_report = clipReport ?? 0
        p.pointee.epsilon = epsilon ?? 0
        var bytes = [UInt8](repeating: 0, count: 4 * masked.count)
        for (i, w) in masked.enumerated() {
            bytes[4 * i] = UInt8(truncatingIfNeeded: w); bytes[4 * i + 1] = UInt8(truncatingIfNeeded: w >> 8)
            bytes[4 * i + 2] = UInt8(truncatingIfNeeded: w >> 16); bytes[4 * i + 3] = UInt8(truncatingIfNeeded: w >> 24)
        }
        p.pointee.masked = arena.bytes(bytes)
        p.pointee.sketch = sketch.map { $0.c(arena) }
        return p
    }
}

/// A device's two X25519 public keys for one secure-aggregation round.
public struct SecAggKeys: Sendable, Equatable {
    public var round: UInt64
    public var cluster: UInt32
    public var cipherPublic: [UInt8]
    public var maskPublic: [UInt8]
    public var samples: UInt64

    public init(round: UInt64, cluster: UInt32 = 0, cipherPublic: [UInt8], maskPublic: [UInt8], samples: UInt64 = 0) {
        self.round = round; self.cluster = cluster; self.cipherPublic = cipherPublic; self.maskPublic = maskPublic; self.samples = samples
    }

    init(c: UnsafeMutablePointer<Fi__V1__SecAggKeys>) throws {
        let m = c.pointee
        self.init(round: m.round, cluster: m.cluster, cipherPublic: try readKey(m.cipher_public, field: "SecAggKeys.cipher_public"),
                  maskPublic: try readKey(m.mask_public, field: "SecAggKeys.mask_public"), samples: m.samples)
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__SecAggKeys> {
        let p: UnsafeMutablePointer<Fi__V1__SecAggKeys> = arena.message(fi__v1__sec_agg_keys__init)
        p.pointee.round = round; p.pointee.cluster = cluster; p.pointee.samples = samples
        p.pointee.cipher_public = arena.bytes(cipherPublic); p.pointee.mask_public = arena.bytes(maskPublic)
        return p
    }
}

/// One neighbour in a roster.
public struct SecAggPeer: Sendable, Equatable {
    public var nodeId: String
    public var index: UInt32
    public var cipherPublic: [UInt8]
    public var maskPublic: [UInt8]

    public init(nodeId: String, index: UInt32, cipherPublic: [UInt8], maskPublic: [UInt8]) {
        self.nodeId = nodeId; self.index = index; self.cipherPublic = cipherPublic; self.maskPublic = maskPublic
    }

    init(c: UnsafeMutablePointer<Fi__V1__SecAggPeer>) throws {
        let m = c.pointee
        guard (1...255).contains(m.index) else { throw MessageError.invalidField(field: "SecAggPeer.index", reason: "\(m.index) is not in 1…255") }
        self.init(nodeId: readString(m.node_id), index: m.index, cipherPublic: try readKey(m.cipher_public, field: "SecAggPeer.cipher_public"),
                  maskPublic: try readKey(m.mask_public, field: "SecAggPeer.mask_public"))
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__SecAggPeer> {
        let p: UnsafeMutablePointer<Fi__V1__SecAggPeer> = arena.message(fi__v1__sec_agg_peer__init)
        p.pointee.node_id = arena.string(nodeId); p.pointee.index = index
        p.pointee.cipher_public = arena.bytes(cipherPublic); p.pointee.mask_public = arena.bytes(maskPublic)
        return p
    }
}

/// The aggregator tells a device its group: its point, the threshold, its neighbours and how to encode.
public struct SecAggRoster: Sendable, Equatable {
    public var round: UInt64
    public var group: UInt32
    public var index: UInt32
    public var threshold: UInt32
    public var neighbours: [SecAggPeer]
    public var weight: Double
    public var step: Double
    public var bound: Double
    public var length: UInt32

    public init(round: UInt64, group: UInt32, index: UInt32, threshold: UInt32, neighbours: [SecAggPeer], weight: Double, step: Double,
                bound: Double, length: UInt32) {
        self.round = round; self.group = group; self.index = index; self.threshold = threshold; self.neighbours = neighbours
        self.weight = weight; self.step = step; self.bound = bound; self.length = length
    }

    init(c: UnsafeMutablePointer<Fi__V1__SecAggRoster>) throws {
        let m = c.pointee
        guard (1...255).contains(m.index) else { throw MessageError.invalidField(field: "SecAggRoster.index", reason: "\(m.index) is not in 1…255") }
        guard m.n_neighbours <= 255 else { throw MessageError.invalidField(field: "SecAggRoster.neighbours", reason: "\(m.n_neighbours) > 255") }
        guard m.threshold >= 1, m.threshold <= UInt32(m.n_neighbours) + 1 else {
            throw MessageError.invalidField(field: "SecAggRoster.threshold", reason: "\(m.threshold) of \(m.n_neighbours) neighbours")
        }
        for (name, v) in [("weight", m.weight), ("step", m.step), ("bound", m.bound)] where !(v.isFinite && v > 0) {
            throw MessageError.invalidField(field: "SecAggRoster.\(name)", reason: "\(v) is not a finite number > 0")
        }
        self.init(round: m.round, group: m.group, index: m.index, threshold: m.threshold,
                  neighbours: try readMessages(m.neighbours, m.n_neighbours, field: "SecAggRoster.neighbours") { try SecAggPeer(c: $0) },
                  weight: m.weight, step: m.step, bound: m.bound, length: m.length)
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__SecAggRoster> {
        let p: UnsafeMutablePointer<Fi__V1__SecAggRoster> = arena.message(fi__v1__sec_agg_roster__init)
        p.pointee.round = round; p.pointee.group = group; p.pointee.index = index; p.pointee.threshold = threshold
        p.pointee.n_neighbours = neighbours.count; p.pointee.neighbours = arena.messages(neighbours) { $0.c(arena) }
        p.pointee.weight = weight; p.pointee.step = step; p.pointee.bound = bound; p.pointee.length = length
        return p
    }
}

/// Encrypted shares, to (device → aggregator) or from (aggregator → device) each named peer.
public struct SecAggShares: Sendable, Equatable {
    public var round: UInt64
    public var group: UInt32
    /// Peer id → ciphertext.
    public var shares: [(peer: String, ciphertext: [UInt8])]

    public init(round: UInt64, group: UInt32, shares: [(peer: String, ciphertext: [UInt8])]) {
        self.round = round; self.group = group; self.shares = shares
    }

    public static func == (a: SecAggShares, b: SecAggShares) -> Bool {
        a.round == b.round && a.group == b.group && a.shares.count == b.shares.count
            && zip(a.shares, b.shares).allSatisfy { $0.peer == $1.peer && $0.ciphertext == $1.ciphertext }
    }

    init(c: UnsafeMutablePointer<Fi__V1__SecAggShares>) throws {
        let m = c.pointee
        guard m.n_shares <= 255 else { throw MessageError.invalidField(field: "SecAggShares.shares", reason: "\(m.n_shares) > 255") }
        self.init(round: m.round, group: m.group, shares: try readMessages(m.shares, m.n_shares, field: "SecAggShares.shares") {
            (readString($0.pointee.peer), readBytes($0.pointee.ciphertext))
        })
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__SecAggShares> {
        let p: UnsafeMutablePointer<Fi__V1__SecAggShares> = arena.message(fi__v1__sec_agg_shares__init)
        p.pointee.round = round; p.pointee.group = group
        p.pointee.n_shares = shares.count
        p.pointee.shares = arena.messages(shares) { s in
            let q: UnsafeMutablePointer<Fi__V1__SecAggShare> = arena.message(fi__v1__sec_agg_share__init)
            q.pointee.peer = arena.string(s.peer); q.pointee.ciphertext = arena.bytes(s.ciphertext)
            return q
        }
        return p
    }
}

/// Who delivered a masked input (reveal their self-mask shares) and who dropped (reveal their key shares).
public struct SecAggUnmask: Sendable, Equatable {
    public var round: UInt64
    public var group: UInt32
    public var survivors: [String]
    public var dropped: [String]

    public init(round: UInt64, group: UInt32, survivors: [String], dropped: [String]) {
        self.round = round; self.group = group; self.survivors = survivors; self.dropped = dropped
    }

    init(c: UnsafeMutablePointer<Fi__V1__SecAggUnmask>) throws {
        let m = c.pointee
        guard m.n_survivors + m.n_dropped <= 255 else { throw MessageError.invalidField(field: "SecAggUnmask", reason: "more than 255 peers") }
        self.init(round: m.round, group: m.group, survivors: readStrings(m.survivors, m.n_survivors), dropped: readStrings(m.dropped, m.n_dropped))
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__SecAggUnmask> {
        let p: UnsafeMutablePointer<Fi__V1__SecAggUnmask> = arena.message(fi__v1__sec_agg_unmask__init)
        p.pointee.round = round; p.pointee.group = group
        p.pointee.n_survivors = survivors.count; p.pointee.survivors = arena.strings(survivors)
        p.pointee.n_dropped = dropped.count; p.pointee.dropped = arena.strings(dropped)
        return p
    }
}

/// A device's shares of its neighbours' secrets, as the unmask request asked.
public struct SecAggReveal: Sendable, Equatable {
    public struct Share: Sendable, Equatable {
        public var owner: String
        /// true: a share of the owner's self-mask seed; false: of its mask secret key.
        public var selfMask: Bool
        public var x: UInt32
        public var y: [UInt8]
        public init(owner: String, selfMask: Bool, x: UInt32, y: [UInt8]) { self.owner = owner; self.selfMask = selfMask; self.x = x; self.y = y }
    }
    public var round: UInt64
    public var group: UInt32
    public var shares: [Share]

    public init(round: UInt64, group: UInt32, shares: [Share]) { self.round = round; self.group = group; self.shares = shares }

    init(c: UnsafeMutablePointer<Fi__V1__SecAggReveal>) throws {
        let m = c.pointee
        guard m.n_shares <= 255 else { throw MessageError.invalidField(field: "SecAggReveal.shares", reason: "\(m.n_shares) > 255") }
        self.init(round: m.round, group: m.group, shares: try readMessages(m.shares, m.n_shares, field: "SecAggReveal.shares") { s in
            let q = s.pointee
            guard (1...255).contains(q.x) else { throw MessageError.invalidField(field: "SecAggRevealedShare.x", reason: "\(q.x) is not in 1…255") }
            let y = readBytes(q.y)
            guard y.count == 32 else { throw MessageError.invalidField(field: "SecAggRevealedShare.y", reason: "\(y.count) bytes, a share is 32") }
            return Share(owner: readString(q.owner), selfMask: q.self_mask != 0, x: q.x, y: y)
        })
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__SecAggReveal> {
        let p: UnsafeMutablePointer<Fi__V1__SecAggReveal> = arena.message(fi__v1__sec_agg_reveal__init)
        p.pointee.round = round; p.pointee.group = group
        p.pointee.n_shares = shares.count
        p.pointee.shares = arena.messages(shares) { s in
            let q: UnsafeMutablePointer<Fi__V1__SecAggRevealedShare> = arena.message(fi__v1__sec_agg_revealed_share__init)
            q.pointee.owner = arena.string(s.owner); q.pointee.self_mask = s.selfMask ? 1 : 0
            q.pointee.x = s.x; q.pointee.y = arena.bytes(s.y)
            return q
        }
        return p
    }
}

/// An X25519 public key: exactly 32 bytes.
func readKey(_ b: ProtobufCBinaryData, field: String) throws -> [UInt8] {
    let k = readBytes(b)
    guard k.count == 32 else { throw MessageError.invalidField(field: field, reason: "\(k.count) bytes, an X25519 public key is 32") }
    return k
}
