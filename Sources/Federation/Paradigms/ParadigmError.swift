// Errors of the paradigm state machines (clustered, asynchronous, hierarchical): each names the device or edge at fault.

public enum ParadigmError: Error, Equatable, Sendable, CustomStringConvertible {
    case noDevices
    case unknownDevice(String)
    case missingOracleCluster(device: String)
    case deviceInTwoEdges(device: String, edges: [String])
    case badUpdate(device: String, rejection: UpdateRejection)
    case notDispatched(device: String)
    case alreadyReported(device: String)
    case versionMismatch(device: String, dispatched: UInt64, reported: UInt64)
    case invalidDuration(device: String, seconds: Double)
    case missingBackhaul(edge: String)
    case badSnapshot(reason: String)

    public var description: String {
        switch self {
        case .noDevices:
            return "no devices given; a federation needs at least one device"
        case let .unknownDevice(d):
            return "device '\(d)' is not part of this federation; register it before it sends updates"
        case let .missingOracleCluster(d):
            return "oracle mode has no cluster for device '\(d)'; give every device a true label"
        case let .deviceInTwoEdges(d, e):
            return "device '\(d)' is assigned to several edges (\(e.joined(separator: ", "))); give each device one edge"
        case let .badUpdate(d, r):
            return "update from '\(d)' rejected: \(r.description)"
        case let .notDispatched(d):
            return "device '\(d)' has no task in flight; it must be dispatched before it reports"
        case let .alreadyReported(d):
            return "device '\(d)' already reported its task; one report per dispatch"
        case let .versionMismatch(d, dispatched, reported):
            return "device '\(d)' was dispatched version \(dispatched) but reports base version \(reported); train on the dispatched model"
        case let .invalidDuration(d, s):
            return "task of device '\(d)' has duration \(s) s; durations must be finite and ≥ 0"
        case let .missingBackhaul(e):
            return "no backhaul cost for edge '\(e)' at a cloud aggregation; pass one per edge"
        case .badSnapshot(let reason):
            return "the clustered checkpoint does not fit: \(reason); remove the checkpoint folder to start over"
        }
    }
}

/// Seconds of one device task on the virtual clock: model download, local training, update upload.
public struct TaskDurations: Sendable, Equatable {
    public var download: Double
    public var compute: Double
    public var upload: Double

    public init(download: Double = 0, compute: Double, upload: Double = 0) {
        self.download = download; self.compute = compute; self.upload = upload
    }

    public var total: Double { download + compute + upload }
    var isValid: Bool { [download, compute, upload].allSatisfy { $0.isFinite && $0 >= 0 } }
}

/// An update that a paradigm refused, with the reason (for counters and logs).
public struct RejectedUpdate: Error, Sendable, Equatable {
    public var device: String
    public var kind: String
    public var reason: String
    public init(device: String, kind: String, reason: String) { self.device = device; self.kind = kind; self.reason = reason }
}
