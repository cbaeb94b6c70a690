/// Node ids are plain strings: "cloud", "edge-0", "device-3".
public typealias NodeID = String

public enum Tier: String, Codable, Sendable, CaseIterable {
    case cloud, edge, device
}

/// A point in the plane, in metres.
public struct Position: Codable, Sendable, Equatable {
    public var x: Double
    public var y: Double
    public init(x: Double, y: Double) { self.x = x; self.y = y }

    public func distance(to other: Position) -> Double {
        ((x - other.x) * (x - other.x) + (y - other.y) * (y - other.y)).squareRoot()
    }
}

/// One node: where it is, what it can compute, and (for a device) which access point serves it.
public struct Node: Sendable, Equatable {
    public var id: NodeID
    public var tier: Tier
    public var position: Position
    /// Peak compute in FLOP/s, before load.
    public var flopsPerSecond: Double
    /// Fraction of compute already busy, in [0, 1).
    public var load: Double
    /// Radio transmit power in dBm (devices and access points; unused for the cloud).
    public var txPowerDBm: Double
    /// Radio bandwidth in Hz: an access point's whole band (shared by its devices).
    public var bandwidthHz: Double
    /// Serving access point of a device; nil for edges and the cloud.
    public var accessPoint: NodeID?
    /// Joules per FLOP, if known.
    public var energyPerFLOPJoules: Double?
    /// True if the builder made this device a straggler.
    public var isStraggler: Bool

    public init(id: NodeID, tier: Tier, position: Position, flopsPerSecond: Double, load: Double = 0,
                txPowerDBm: Double = 0, bandwidthHz: Double = 0, accessPoint: NodeID? = nil,
                energyPerFLOPJoules: Double? = nil, isStraggler: Bool = false) {
        self.id = id
        self.tier = tier
        self.position = position
        self.flopsPerSecond = flopsPerSecond
        self.load = load
        self.txPowerDBm = txPowerDBm
        self.bandwidthHz = bandwidthHz
        self.accessPoint = accessPoint
        self.energyPerFLOPJoules = energyPerFLOPJoules
        self.isStraggler = isStraggler
    }
}

/// A directed hop between two nodes. Also the key of an emulated link.
public struct LinkID: Hashable, Sendable, CustomStringConvertible {
    public var from: NodeID
    public var to: NodeID
    public init(from: NodeID, to: NodeID) { self.from = from; self.to = to }
    public var reversed: LinkID { LinkID(from: to, to: from) }
    public var description: String { "\(from)->\(to)" }
}

/// The nodes of one edge network: one cloud, access points (edge servers) and devices.
/// Keeps per-tier and per-access-point indexes, so lookups stay O(1) with thousands of devices.
public struct Topology: Sendable {
    public private(set) var nodes: [NodeID: Node] = [:]
    /// Ids in insertion order, so iteration is deterministic.
    public private(set) var order: [NodeID] = []
    private var byTier: [Tier: [NodeID]] = [:]
    private var served: [NodeID: [NodeID]] = [:]

    public init(nodes: [Node] = []) {
        for node in nodes { add(node) }
    }

    /// Adds or replaces a node.
    public mutating func add(_ node: Node) {
        if let old = nodes[node.id] {
            // Same tier and AP (e.g. a new load): the indexes and their order stay as they are.
            if old.tier == node.tier && old.accessPoint == node.accessPoint {
                nodes[node.id] = node
                return
            }
            unindex(old)
        } else {
            order.append(node.id)
        }
        nodes[node.id] = node
        byTier[node.tier, default: []].append(node.id)
        if node.tier == .device, let ap = node.accessPoint { served[ap, default: []].append(node.id) }
    }

    public mutating func remove(_ id: NodeID) {
        guard let old = nodes[id] else { return }
        unindex(old)
        nodes[id] = nil
        order.removeAll { $0 == id }
    }

    private mutating func unindex(_ node: Node) {
        byTier[node.tier]?.removeAll { $0 == node.id }
        if let ap = node.accessPoint { served[ap]?.removeAll { $0 == node.id } }
    }

    public subscript(id: NodeID) -> Node? { nodes[id] }

    public func node(_ id: NodeID) throws -> Node {
        guard let node = nodes[id] else { throw EdgeNetworkError.unknownNode(id) }
        return node
    }

    /// Ids of one tier, in insertion order.
    public func ids(of tier: Tier) -> [NodeID] { byTier[tier] ?? [] }
    public var cloud: NodeID? { byTier[.cloud]?.first }
    public var accessPoints: [NodeID] { ids(of: .edge) }
    public var devices: [NodeID] { ids(of: .device) }

    /// Devices served by one access point, in insertion order.
    public func devices(servedBy accessPoint: NodeID) -> [NodeID] { served[accessPoint] ?? [] }
}
