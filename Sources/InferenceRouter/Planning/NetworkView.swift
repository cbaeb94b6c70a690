import Stage

/// A stage node as the planner sees it: capacity and reported load.
public struct NodeState: Sendable, Equatable {
    public var id: String
    public var role: NodeRole
    /// FLOP/s: measured by the node (claimed until it has measured).
    public var flops: Double
    /// 0...1; the node delivers flops · (1 − load).
    public var load: Double
    /// Most blocks the node can hold (memory); 0 = no limit. A share of h heads counts h/heads of every block.
    public var maxLayers: Int
    /// Admission control: sessions the node takes at once (0 = no limit), and the router's sessions on it now.
    public var maxSessions: Int
    public var activeSessions: Int

    public init(id: String, role: NodeRole, flops: Double, load: Double = 0, maxLayers: Int = 0, maxSessions: Int = 0, activeSessions: Int = 0) {
        self.id = id; self.role = role; self.flops = flops; self.load = load; self.maxLayers = maxLayers
        self.maxSessions = maxSessions; self.activeSessions = activeSessions
    }

    /// Whether the node takes another session.
    public var admits: Bool { maxSessions <= 0 || activeSessions < maxSessions }

    /// Whether `layers` blocks fit in this node's memory.
    public func holds(_ layers: Double) -> Bool { maxLayers <= 0 || layers <= Double(maxLayers) + 1e-9 }

    public var effectiveFlops: Double { flops * max(0.01, 1 - min(max(load, 0), 1)) }
}

/// One direction of a link: rate and one-way latency. Transfer time = latency + bytes·8 / rate.
public struct LinkProfile: Sendable, Equatable, Codable {
    public var rateBps: Double
    public var latencySeconds: Double

    public init(rateBps: Double, latencySeconds: Double) { self.rateBps = rateBps; self.latencySeconds = latencySeconds }

    /// Same node: no transfer.
    public static let local = LinkProfile(rateBps: .infinity, latencySeconds: 0)

    public func seconds(bytes: Int) -> Double {
        rateBps.isInfinite ? latencySeconds : latencySeconds + Double(bytes) * 8 / max(rateBps, 1)
    }
}

/// What the planner knows: alive nodes and the links between them (and to the requesting device).
public struct NetworkView: Sendable, Equatable {
    public var nodes: [NodeState]
    /// Keyed by `NetworkView.key(from, to)`.
    public var links: [String: LinkProfile]
    /// For pairs without a report.
    public var defaultLink: LinkProfile

    public init(nodes: [NodeState], links: [String: LinkProfile] = [:], defaultLink: LinkProfile = LinkProfile(rateBps: 100e6, latencySeconds: 0.005)) {
        self.nodes = nodes; self.links = links; self.defaultLink = defaultLink
    }

    public static func key(_ from: String, _ to: String) -> String { "\(from)->\(to)" }

    public func link(_ from: String, _ to: String) -> LinkProfile {
        from == to ? .local : links[Self.key(from, to)] ?? defaultLink
    }

    public func node(_ id: String) -> NodeState? { nodes.first { $0.id == id } }
}
