import EdgeEnvironment
import Foundation
import Messages

/// The cluster manager's pure state: who is registered, alive, where they report, and the map version.
public struct Directory: Sendable {
    public struct Node: Sendable, Equatable {
        public var id: String
        public var role: Role
        public var caps: Capabilities?
        public var endpoint: String
        public var partition: UInt32
        public var cluster: UInt32
        public var alive: Bool
        public var load: Double
        public var round: UInt64
        /// Edge ordinal (hierarchical: a device's edge server, an edge aggregator's edge).
        public var edge: UInt32 = 0
    }

    /// Number of data partitions to hand out (the manifest's device count).
    public let partitions: Int
    public private(set) var nodes: [String: Node] = [:]
    /// Registration order (partitions are dealt in it).
    public private(set) var order: [String] = []
    /// Bumped on every change of the map.
    public private(set) var mapSeq: UInt64 = 0
    private var nextDevice = 0
    private var nextPartition = 0

    /// Hierarchical: edge ordinal per device ordinal (cyclic); empty = flat (any aggregator serves any device).
    public let deviceEdges: [Int]

    public init(partitions: Int, deviceEdges: [Int] = []) { self.partitions = max(1, partitions); self.deviceEdges = deviceEdges }

    public var aggregators: [Node] {
        order.compactMap { nodes[$0] }.filter { ($0.role == .cloudAggregator || $0.role == .edgeAggregator) && $0.alive }
    }

    /// Registers (or re-registers) a node; returns its assignment. A known id keeps its partition.
    public mutating func register(_ r: Register) -> Assignment {
        var id = r.nodeId
        if id.isEmpty {
            repeat { id = "\(r.role == .device ? "device" : "node")-\(nextDevice)"; nextDevice += 1 } while nodes[id] != nil
        }
        if var known = nodes[id] {
            known.alive = true
            known.endpoint = r.endpoint.isEmpty ? known.endpoint : r.endpoint
            known.caps = r.caps ?? known.caps
            nodes[id] = known
        } else {
            var partition: UInt32 = 0
            if r.role == .device {
                partition = UInt32(nextPartition % partitions)
                nextPartition += 1
            }
            nodes[id] = Node(id: id, role: r.role, caps: r.caps, endpoint: r.endpoint, partition: partition, cluster: 0,
                             alive: true, load: 0, round: 0, edge: edgeOrdinal(id: id, role: r.role))
            order.append(id)
        }
        mapSeq += 1
        return assignment(for: id)
    }

    /// The node's assignment: partition, and the least-loaded live aggregator (by devices assigned).
    public func assignment(for id: String) -> Assignment {
        guard let n = nodes[id] else { return Assignment(nodeId: id) }
        let agg = deviceEdges.isEmpty || n.role != .device ? (aggregators.first { $0.cluster == n.cluster } ?? aggregators.first)
            : edgeAggregator(for: n)
        return Assignment(nodeId: id, partition: n.partition, aggregator: agg?.id ?? "", aggregatorEndpoint: agg?.endpoint ?? "",
                          cluster: n.cluster, edge: n.edge)
    }

    /// A heartbeat: returns false for an unknown id (it must register again).
    public mutating func heartbeat(_ id: String, load: Double, round: UInt64) -> Bool {
        guard var n = nodes[id] else { return false }
        let revived = !n.alive
        n.alive = true; n.load = load; n.round = round
        nodes[id] = n
        if revived { mapSeq += 1 }
        return true
    }

    /// Marks nodes dead; returns true when the map changed.
    @discardableResult
    public mutating func markDead(_ ids: [String]) -> Bool {
        var changed = false
        for id in ids where nodes[id]?.alive == true { nodes[id]?.alive = false; changed = true }
        if changed { mapSeq += 1 }
        return changed
    }

    public mutating func leave(_ id: String) { markDead([id]) }

    /// Clustered federation: a registered aggregator sets its devices' clusters; returns true when the map changed
    /// (mapSeq bumped, so subscribers see a new map). Anyone else, and unknown or non-device ids, are ignored.
    @discardableResult
    public mutating func setClusters(by sender: String, _ clusters: [String: UInt32]) -> Bool {
        guard let s = nodes[sender], s.role == .cloudAggregator || s.role == .edgeAggregator else { return false }
        var changed = false
        for (id, c) in clusters where nodes[id]?.role == .device && nodes[id]?.cluster != c { nodes[id]?.cluster = c; changed = true }
        if changed { mapSeq += 1 }
        return changed
    }

    public var liveCount: Int { nodes.values.filter(\.alive).count }

    public func map(snapshot: Bool = false) -> ClusterMap {
        ClusterMap(mapSeq: mapSeq, members: order.compactMap { nodes[$0] }.map {
            ClusterMember(nodeId: $0.id, role: $0.role, cluster: $0.cluster, edge: $0.edge, alive: $0.alive, endpoint: $0.endpoint)
        }, snapshot: snapshot)
    }
}

extension Directory {
    /// A device's edge from the topology; an edge aggregator's from its id ("edge-<k>"); 0 otherwise.
    func edgeOrdinal(id: String, role: Role) -> UInt32 {
        guard !deviceEdges.isEmpty else { return 0 }
        switch role {
        case .device: return UInt32(deviceEdges[deviceOrdinal(id) % deviceEdges.count])
        case .edgeAggregator: return UInt32(deviceOrdinal(id))
        default: return 0
        }
    }

    /// Hierarchical: the live edge aggregator of the device's edge; nil until it registers (the device retries).
    func edgeAggregator(for device: Node) -> Node? {
        aggregators.first { $0.role == .edgeAggregator && $0.edge == device.edge }
    }
}
