import Foundation

/// Which kind of hop a link is.
public enum LinkKind: String, Sendable {
    case uplink, downlink, deviceToDevice, backhaul
}

/// A fixed-rate wired link (edge ↔ cloud backhaul).
public struct WiredLink: Sendable, Equatable {
    public var rateBitsPerSecond: Double = 1e9
    public var latencySeconds: Double = 0.005
    public init(rateBitsPerSecond: Double = 1e9, latencySeconds: Double = 0.005) {
        self.rateBitsPerSecond = rateBitsPerSecond
        self.latencySeconds = latencySeconds
    }
}

/// One hop at one instant: what the channel gives a transmission starting now.
public struct LinkState: Sendable, Equatable {
    public var link: LinkID
    public var kind: LinkKind
    public var distanceMeters: Double
    /// Whole band of the access point in Hz (0 for wired links).
    public var bandwidthHz: Double
    public var txPowerDBm: Double
    /// Active devices sharing the access point's band (1 for wired links).
    public var sharedBy: Int
    /// Linear SNR over the whole band (infinite for wired links).
    public var snr: Double
    /// Achievable rate of this transmission in bit/s, after sharing.
    public var rateBitsPerSecond: Double
    /// Propagation delay (wireless: d/c) or wired latency, in seconds.
    public var latencySeconds: Double
}

/// The physical model of one edge network: topology, channel, backhaul and compute.
/// A value type: copy it, change loads or the active set, and ask again.
///
/// Bandwidth sharing: the devices active on an access point get equal time shares of
/// its whole band (round-robin scheduling), so each gets B/n·log2(1+SNR) with the
/// full-band SNR. Hence two active devices each get exactly half their solo rate.
public struct EdgeNetwork: Sendable {
    public var topology: Topology
    public var channel: ChannelModel
    public var backhaul: WiredLink
    /// Devices currently sharing their access points' bands. A transmitting device
    /// always counts itself, so with an empty set every device gets the whole band.
    public private(set) var activeDevices: Set<NodeID> = []

    public static let speedOfLight = 299_792_458.0

    public init(topology: Topology, channel: ChannelModel = ChannelModel(), backhaul: WiredLink = WiredLink()) {
        self.topology = topology
        self.channel = channel
        self.backhaul = backhaul
    }

    // MARK: State the services report

    /// Sets which devices are transmitting (e.g. a round's participants).
    public mutating func setActive(_ devices: some Sequence<NodeID>) throws {
        var set = Set<NodeID>()
        for id in devices {
            guard try topology.node(id).tier == .device else { throw EdgeNetworkError.notADevice(id) }
            set.insert(id)
        }
        activeDevices = set
    }

    /// Sets the busy fraction of a node's compute, in [0, 1).
    public mutating func setLoad(_ load: Double, of id: NodeID) throws {
        guard var node = topology[id] else { throw EdgeNetworkError.unknownNode(id) }
        guard load >= 0, load < 1 else { throw EdgeNetworkError.invalidLoad(node: id, load: load) }
        node.load = load
        topology.add(node)
    }

    /// Number of active devices on an access point, counting `device` itself.
    public func sharingCount(accessPoint: NodeID, including device: NodeID) -> Int {
        // O(cell size), through the topology's per-AP index; always current after handovers.
        var active = 0, counted = false
        for id in topology.devices(servedBy: accessPoint) where activeDevices.contains(id) {
            active += 1
            if id == device { counted = true }
        }
        return counted ? active : active + 1
    }

    // MARK: Compute

    /// Seconds to run `flops` on a node: FLOPs / (FLOP/s · (1 − load)).
    public func computeTime(flops: Double, node id: NodeID) throws -> Double {
        let node = try topology.node(id)
        guard flops >= 0 else { throw EdgeNetworkError.invalidArgument(name: "flops", value: flops, reason: "must be ≥ 0") }
        return flops / (node.flopsPerSecond * (1 - node.load))
    }

    /// Joules to run `flops` on a node, if its energy per FLOP is known.
    public func computeEnergy(flops: Double, node id: NodeID) throws -> Double? {
        try topology.node(id).energyPerFLOPJoules.map { $0 * flops }
    }

    // MARK: Links

    /// The hops a transfer takes. Devices reach any access point directly (multi-access),
    /// the cloud through their serving AP, and peers according to `deviceToDevice`.
    public func route(from a: NodeID, to b: NodeID) throws -> [LinkID] {
        let src = try topology.node(a), dst = try topology.node(b)
        if a == b { return [] }
        func serving(_ node: Node) throws -> NodeID {
            guard let ap = node.accessPoint, topology[ap]?.tier == .edge else {
                throw EdgeNetworkError.noRoute(from: a, to: b, reason: "device '\(node.id)' has no serving access point")
            }
            return ap
        }
        func wired(_ x: NodeID, _ y: NodeID) throws -> [LinkID] {
            if x == y { return [] }
            let xt = try topology.node(x).tier, yt = try topology.node(y).tier
            if xt == .cloud || yt == .cloud { return [LinkID(from: x, to: y)] }
            guard let cloud = topology.cloud else {
                throw EdgeNetworkError.noRoute(from: a, to: b, reason: "edges talk through the cloud, and there is none")
            }
            return [LinkID(from: x, to: cloud), LinkID(from: cloud, to: y)]
        }
        switch (src.tier, dst.tier) {
        case (.device, .edge), (.edge, .device):
            return [LinkID(from: a, to: b)]
        case (.device, .cloud):
            let ap = try serving(src)
            return [LinkID(from: a, to: ap)] + (try wired(ap, b))
        case (.cloud, .device):
            let ap = try serving(dst)
            return (try wired(a, ap)) + [LinkID(from: ap, to: b)]
        case (.device, .device):
            if channel.parameters.deviceToDevice == .direct { return [LinkID(from: a, to: b)] }
            let apA = try serving(src), apB = try serving(dst)
            return [LinkID(from: a, to: apA)] + (try wired(apA, apB)) + [LinkID(from: apB, to: b)]
        default:
            return try wired(a, b)
        }
    }

    /// The state of one hop for a transmission starting at time t (seconds).
    public func linkState(_ link: LinkID, at time: Double) throws -> LinkState {
        let src = try topology.node(link.from), dst = try topology.node(link.to)
        if src.tier != .device && dst.tier != .device {
            guard src.tier == .cloud || dst.tier == .cloud, src.id != dst.id else {
                throw EdgeNetworkError.noRoute(from: src.id, to: dst.id, reason: "no direct wired link; use route(from:to:)")
            }
            return LinkState(link: link, kind: .backhaul, distanceMeters: src.position.distance(to: dst.position),
                             bandwidthHz: 0, txPowerDBm: 0, sharedBy: 1, snr: .infinity,
                             rateBitsPerSecond: backhaul.rateBitsPerSecond, latencySeconds: backhaul.latencySeconds)
        }
        guard src.tier != .cloud, dst.tier != .cloud else {
            throw EdgeNetworkError.noRoute(from: src.id, to: dst.id, reason: "the cloud has no radio; go through an access point")
        }
        let kind: LinkKind
        let ap: Node, device: NodeID
        switch (src.tier, dst.tier) {
        case (.device, .edge): kind = .uplink; ap = dst; device = src.id
        case (.edge, .device): kind = .downlink; ap = src; device = dst.id
        default:
            kind = .deviceToDevice; device = src.id
            guard let apID = src.accessPoint, let serving = topology[apID] else {
                throw EdgeNetworkError.noRoute(from: src.id, to: dst.id, reason: "a sidelink uses the sender's AP band; it has none")
            }
            ap = serving
        }
        let distance = src.position.distance(to: dst.position)
        let n = sharingCount(accessPoint: ap.id, including: device)
        let snr = channel.snr(txPowerDBm: src.txPowerDBm, distanceMeters: distance, bandwidthHz: ap.bandwidthHz,
                              shadowingDB: channel.shadowingDB(between: src.id, and: dst.id),
                              fadingGain: channel.fadingGain(between: src.id, and: dst.id, at: time))
        let rate = channel.shannonRate(bandwidthHz: ap.bandwidthHz, snr: snr) / Double(n)
        return LinkState(link: link, kind: kind, distanceMeters: distance, bandwidthHz: ap.bandwidthHz,
                         txPowerDBm: src.txPowerDBm, sharedBy: n, snr: snr, rateBitsPerSecond: rate,
                         latencySeconds: distance / Self.speedOfLight)
    }

    /// Linear SNR of the single hop a → b at time t.
    public func snr(from a: NodeID, to b: NodeID, at time: Double) throws -> Double {
        try linkState(LinkID(from: a, to: b), at: time).snr
    }

    /// Rate in bit/s of the single hop a → b at time t, after band sharing.
    public func shannonRate(from a: NodeID, to b: NodeID, at time: Double) throws -> Double {
        try linkState(LinkID(from: a, to: b), at: time).rateBitsPerSecond
    }

    /// Seconds to move `bytes` from a to b starting at time t: per hop, store-and-forward,
    /// airtime (bytes·8 / rate, re-evaluated every coherence block) plus propagation/latency.
    public func transferTime(bytes: Int, from a: NodeID, to b: NodeID, at time: Double) throws -> Double {
        guard bytes >= 0 else { throw EdgeNetworkError.invalidArgument(name: "bytes", value: Double(bytes), reason: "must be ≥ 0") }
        var clock = time
        for hop in try route(from: a, to: b) {
            clock += try airtime(bits: Double(bytes) * 8, on: hop, at: clock)
            clock += try linkState(hop, at: clock).latencySeconds
        }
        return clock - time
    }

    /// Radio energy in joules the transmitters spend moving `bytes` from a to b from time t:
    /// Σ over wireless hops of airtime × transmit power. Wired hops are not charged.
    public func transmitEnergy(bytes: Int, from a: NodeID, to b: NodeID, at time: Double) throws -> Double {
        var clock = time, joules = 0.0
        for hop in try route(from: a, to: b) {
            let state = try linkState(hop, at: clock)
            let seconds = try airtime(bits: Double(max(bytes, 0)) * 8, on: hop, at: clock)
            if state.kind != .backhaul { joules += seconds * Decibel.dBmToWatts(state.txPowerDBm) }
            clock += seconds + state.latencySeconds
        }
        return joules
    }

    /// Seconds the transmitter is busy sending `bits` on one hop from time t. On a faded
    /// link the rate changes at each coherence-block boundary, so the bits are sent block by block.
    public func airtime(bits: Double, on hop: LinkID, at time: Double) throws -> Double {
        var state = try linkState(hop, at: time)
        let coherence = channel.parameters.coherenceTimeSeconds
        guard state.kind != .backhaul, channel.parameters.rayleighFading, coherence > 0 else {
            return bits / state.rateBitsPerSecond
        }
        // Walk block indices (not float times) so a boundary is never revisited; each later
        // block's rate is read at its midpoint, away from rounding at the edges.
        var remaining = bits, clock = time, block = channel.coherenceBlock(at: time)
        // Bounded: a transfer longer than a million blocks is charged at the last rate.
        for _ in 0..<1_000_000 {
            let blockEnd = max(Double(block + 1) * coherence, clock)
            let canSend = state.rateBitsPerSecond * (blockEnd - clock)
            if canSend >= remaining { return clock + remaining / state.rateBitsPerSecond - time }
            remaining -= canSend
            clock = blockEnd
            block += 1
            state = try linkState(hop, at: (Double(block) + 0.5) * coherence)
        }
        return clock + remaining / state.rateBitsPerSecond - time
    }
}
