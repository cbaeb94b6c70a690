import CZMQ
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed bus operation. Carries errno and libzmq's text for anything not mapped to a case.
public enum BusError: Error, Equatable, Sendable, CustomStringConvertible {
    /// EAGAIN: a non-blocking call found nothing to do, or SNDTIMEO/RCVTIMEO expired.
    case wouldBlock
    /// EHOSTUNREACH under ROUTER_MANDATORY: no connected peer has this routing id.
    case unroutable(peer: [UInt8])
    /// The socket was closed, or its context terminated (ETERM/ENOTSOCK).
    case closed
    /// An async request got no reply in time.
    case timeout
    /// The ServiceLoop was stopped before the work ran.
    case stopped
    /// Any other libzmq failure.
    case zmq(call: String, errno: Int32, message: String)

    /// Maps the current errno after a failed libzmq `call`.
    static func last(_ call: String, peer: [UInt8] = []) -> BusError {
        let e = zmq_errno()
        switch e {
        case EAGAIN: return .wouldBlock
        case EHOSTUNREACH: return .unroutable(peer: peer)
        case ETERM, ENOTSOCK: return .closed
        default: return .zmq(call: call, errno: e, message: String(cString: zmq_strerror(e)))
        }
    }

    /// A routing id as text when it is printable, else as hex (libzmq's own ids start with a 0 byte).
    static func printable(_ id: [UInt8]) -> String {
        if id.allSatisfy({ (0x20..<0x7f).contains($0) }) { return "'" + String(decoding: id, as: UTF8.self) + "'" }
        return "0x" + id.map { String(format: "%02x", $0) }.joined()
    }

    public var description: String {
        switch self {
        case .wouldBlock: "operation would block (no message ready, or the send/receive timeout expired)"
        case .unroutable(let peer):
            "no connected peer with routing id \(Self.printable(peer)); it left or never connected"
        case .closed: "socket closed or its context terminated"
        case .timeout: "no reply before the deadline; is the server running and reachable?"
        case .stopped: "the service loop has stopped"
        case .zmq(let call, let errno, let message): "\(call) failed: \(message) (errno \(errno)); check the endpoint and socket options"
        }
    }
}
