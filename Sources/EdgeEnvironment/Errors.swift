/// Errors from queries on an `EdgeNetwork`.
public enum EdgeNetworkError: Error, Equatable, CustomStringConvertible {
    case unknownNode(NodeID)
    case noRoute(from: NodeID, to: NodeID, reason: String)
    case invalidLoad(node: NodeID, load: Double)
    case notADevice(NodeID)
    case invalidArgument(name: String, value: Double, reason: String)

    public var description: String {
        switch self {
        case .unknownNode(let id):
            return "unknown node '\(id)': use an id from the topology (e.g. cloud, edge-0, device-3)"
        case .noRoute(let from, let to, let reason):
            return "no route from '\(from)' to '\(to)': \(reason)"
        case .invalidLoad(let node, let load):
            return "load \(load) of '\(node)' is outside [0, 1): pass the busy fraction of its compute"
        case .notADevice(let id):
            return "'\(id)' is not a device: only devices share an access point's band"
        case .invalidArgument(let name, let value, let reason):
            return "\(name) = \(value) is invalid: \(reason)"
        }
    }
}
