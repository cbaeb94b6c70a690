import CMessages

// Membership: DEALER -> ROUTER (ClusterManager), and the clone-style cluster map.

public enum Role: UInt32, Sendable, Equatable, CaseIterable {
    case unspecified = 0, device, edgeAggregator, cloudAggregator, edgeServer, cloudServer, router
}

public struct Capabilities: Sendable, Equatable {
    /// Sustained FLOP/s.
    public var flops: Double
    public var memoryBytes: UInt64
    /// How many transformer blocks the node can host.
    public var layersCapacity: UInt32

    public init(flops: Double = 0, memoryBytes: UInt64 = 0, layersCapacity: UInt32 = 0) {
        self.flops = flops; self.memoryBytes = memoryBytes; self.layersCapacity = layersCapacity
    }

    init(c: UnsafeMutablePointer<Fi__V1__Capabilities>) {
        let m = c.pointee
        self.init(flops: m.flops, memoryBytes: m.memory_bytes, layersCapacity: m.layers_capacity)
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__Capabilities> {
        let p: UnsafeMutablePointer<Fi__V1__Capabilities> = arena.message(fi__v1__capabilities__init)
        p.pointee.flops = flops; p.pointee.memory_bytes = memoryBytes; p.pointee.layers_capacity = layersCapacity
        return p
    }
}

public struct Register: Sendable, Equatable {
    public var role: Role
    /// Empty: ask the manager to assign one.
    public var nodeId: String
    public var caps: Capabilities?
    public var domainHint: String
    /// Where the node serves (stage nodes, aggregators).
    public var endpoint: String

    public init(role: Role, nodeId: String = "", caps: Capabilities? = nil, domainHint: String = "", endpoint: String = "") {
        self.role = role; self.nodeId = nodeId; self.caps = caps; self.domainHint = domainHint; self.endpoint = endpoint
    }

    init(c: UnsafeMutablePointer<Fi__V1__Register>) throws {
        let m = c.pointee
        self.init(role: try readEnum(m.role.rawValue, field: "Register.role"), nodeId: readString(m.node_id),
                  caps: m.caps.map(Capabilities.init(c:)), domainHint: readString(m.domain_hint), endpoint: readString(m.endpoint))
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__Register> {
        let p: UnsafeMutablePointer<Fi__V1__Register> = arena.message(fi__v1__register__init)
        p.pointee.role = Fi__V1__Role(rawValue: role.rawValue)
        p.pointee.node_id = arena.string(nodeId)
        p.pointee.caps = caps?.c(arena)
        p.pointee.domain_hint = arena.string(domainHint)
        p.pointee.endpoint = arena.string(endpoint)
        return p
    }
}

public struct Heartbeat: Sendable, Equatable {
    public var round: UInt64
    /// 0...1
    public var load: Double
    /// Measured compute state (stage nodes).
    public var live: NodeLoad?
    /// Measured links from the sender, and its radio state.
    public var links: [LinkReport]

    public init(round: UInt64 = 0, load: Double = 0, live: NodeLoad? = nil, links: [LinkReport] = []) {
        self.round = round; self.load = load; self.live = live; self.links = links
    }

    init(c: UnsafeMutablePointer<Fi__V1__Heartbeat>) throws {
        let m = c.pointee
        self.init(round: m.round, load: m.load, live: m.live.map(NodeLoad.init(c:)),
                  links: try readMessages(m.links, m.n_links, field: "Heartbeat.links", LinkReport.init(c:)))
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__Heartbeat> {
        let p: UnsafeMutablePointer<Fi__V1__Heartbeat> = arena.message(fi__v1__heartbeat__init)
        p.pointee.round = round; p.pointee.load = load
        p.pointee.live = live?.c(arena)
        p.pointee.n_links = links.count; p.pointee.links = arena.messages(links) { $0.c(arena) }
        return p
    }
}

public struct Leave: Sendable, Equatable {
    public var reason: String

    public init(reason: String = "") { self.reason = reason }

    init(c: UnsafeMutablePointer<Fi__V1__Leave>) { self.init(reason: readString(c.pointee.reason)) }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__Leave> {
        let p: UnsafeMutablePointer<Fi__V1__Leave> = arena.message(fi__v1__leave__init)
        p.pointee.reason = arena.string(reason)
        return p
    }
}

public struct Assignment: Sendable, Equatable {
    public var nodeId: String
    /// Data partition index from the manifest.
    public var partition: UInt32
    /// Node id of the aggregator this device reports to.
    public var aggregator: String
    public var aggregatorEndpoint: String
    public var cluster: UInt32
    /// Edge server / access point index.
    public var edge: UInt32

    public init(nodeId: String, partition: UInt32 = 0, aggregator: String = "", aggregatorEndpoint: String = "",
                cluster: UInt32 = 0, edge: UInt32 = 0) {
        self.nodeId = nodeId; self.partition = partition; self.aggregator = aggregator
        self.aggregatorEndpoint = aggregatorEndpoint; self.cluster = cluster; self.edge = edge
    }

    init(c: UnsafeMutablePointer<Fi__V1__Assignment>) {
        let m = c.pointee
        self.init(nodeId: readString(m.node_id), partition: m.partition, aggregator: readString(m.aggregator),
                  aggregatorEndpoint: readString(m.aggregator_endpoint), cluster: m.cluster, edge: m.edge)
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__Assignment> {
        let p: UnsafeMutablePointer<Fi__V1__Assignment> = arena.message(fi__v1__assignment__init)
        p.pointee.node_id = arena.string(nodeId); p.pointee.partition = partition
        p.pointee.aggregator = arena.string(aggregator); p.pointee.aggregator_endpoint = arena.string(aggregatorEndpoint)
        p.pointee.cluster = cluster; p.pointee.edge = edge
        return p
    }
}

public struct ClusterMember: Sendable, Equatable {
    public var nodeId: String
    public var role: Role
    public var cluster: UInt32
    public var edge: UInt32
    public var alive: Bool
    public var endpoint: String

    public init(nodeId: String, role: Role, cluster: UInt32 = 0, edge: UInt32 = 0, alive: Bool = true, endpoint: String = "") {
        self.nodeId = nodeId; self.role = role; self.cluster = cluster; self.edge = edge; self.alive = alive; self.endpoint = endpoint
    }

    init(c: UnsafeMutablePointer<Fi__V1__ClusterMember>) throws {
        let m = c.pointee
        self.init(nodeId: readString(m.node_id), role: try readEnum(m.role.rawValue, field: "ClusterMember.role"),
                  cluster: m.cluster, edge: m.edge, alive: m.alive != 0, endpoint: readString(m.endpoint))
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__ClusterMember> {
        let p: UnsafeMutablePointer<Fi__V1__ClusterMember> = arena.message(fi__v1__cluster_member__init)
        p.pointee.node_id = arena.string(nodeId); p.pointee.role = Fi__V1__Role(rawValue: role.rawValue)
        p.pointee.cluster = cluster; p.pointee.edge = edge; p.pointee.alive = alive ? 1 : 0
        p.pointee.endpoint = arena.string(endpoint)
        return p
    }
}

public struct ClusterMap: Sendable, Equatable {
    /// Sequence number of this map version.
    public var mapSeq: UInt64
    public var members: [ClusterMember]
    /// True when sent as a reply to SnapshotRequest.
    public var snapshot: Bool

    public init(mapSeq: UInt64, members: [ClusterMember] = [], snapshot: Bool = false) {
        self.mapSeq = mapSeq; self.members = members; self.snapshot = snapshot
    }

    init(c: UnsafeMutablePointer<Fi__V1__ClusterMap>) throws {
        let m = c.pointee
        self.init(mapSeq: m.map_seq,
                  members: try readMessages(m.members, m.n_members, field: "ClusterMap.members", ClusterMember.init(c:)),
                  snapshot: m.snapshot != 0)
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__ClusterMap> {
        let p: UnsafeMutablePointer<Fi__V1__ClusterMap> = arena.message(fi__v1__cluster_map__init)
        p.pointee.map_seq = mapSeq
        p.pointee.n_members = members.count
        p.pointee.members = arena.messages(members) { $0.c(arena) }
        p.pointee.snapshot = snapshot ? 1 : 0
        return p
    }
}

public struct SnapshotRequest: Sendable, Equatable {
    /// "map", or "model/<cluster>/<tier>".
    public var topic: String

    public init(topic: String) { self.topic = topic }

    init(c: UnsafeMutablePointer<Fi__V1__SnapshotRequest>) { self.init(topic: readString(c.pointee.topic)) }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__SnapshotRequest> {
        let p: UnsafeMutablePointer<Fi__V1__SnapshotRequest> = arena.message(fi__v1__snapshot_request__init)
        p.pointee.topic = arena.string(topic)
        return p
    }
}
