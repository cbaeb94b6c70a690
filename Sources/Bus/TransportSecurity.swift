import CZMQ
import Foundation
import Messages

// Transport security of a BusContext (DESIGN.md, "Sockets"): once `secure` is called, every socket of the
// context that binds or connects outside `inproc://` uses CURVE. Bound sockets are CURVE servers whose ZAP
// handler admits only allow-listed client keys; connecting sockets are CURVE clients that know the server's
// public key. inproc:// stays plain (it never leaves the process). Every non-inproc socket also gets
// ZMQ_MAXMSGSIZE, so libzmq drops a frame larger than the decoders accept before buffering it.
// Services need no change: they bind and connect as before.

/// The keys of one process.
public struct CurveSecurity: Sendable {
    /// This process's identity: its secret key signs bound sockets (server) and connections (client) alike.
    public var identity: CurveKeyPair
    /// Client keys that bound sockets admit (key -> name, the name becomes the ZAP user id); nil = binding
    /// outside inproc is an error.
    public var allowed: [CurveKey: String]?
    /// The public key every server this process connects to presents; nil = connecting outside inproc is an error.
    public var serverKey: CurveKey?

    public init(identity: CurveKeyPair, allowed: [CurveKey: String]? = nil, serverKey: CurveKey? = nil) {
        self.identity = identity; self.allowed = allowed; self.serverKey = serverKey
    }

    /// From key files: `secret` (NAME.secret), `allow` (a folder of NAME.key) and `server` (a NAME.key).
    public static func load(secret: String, allow: String? = nil, server: String? = nil) throws(CurveKeyError) -> CurveSecurity {
        CurveSecurity(identity: try CurveKeyPair(secret: CurveKeyFile.readSecret(secret)),
                      allowed: try allow.map(CurveKeyFile.readAllowList),
                      serverKey: try server.map(CurveKeyFile.readPublic))
    }
}

/// A socket that cannot be secured as asked.
public enum CurveError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Connecting outside inproc under CURVE without the server's public key.
    case noServerKey(endpoint: String)
    /// Binding outside inproc under CURVE without an allow-list.
    case noAllowList(endpoint: String)
    /// `secure` was called on a context that is already secured.
    case alreadySecured
    case unavailable

    public var description: String {
        switch self {
        case .noServerKey(let e): "cannot connect to \(e) over CURVE without the server's public key: give --curve-server FILE"
        case .noAllowList(let e): "cannot bind \(e) over CURVE without the client keys it admits: give --curve-allow DIR"
        case .alreadySecured: "this bus context is secured already; secure it once, before its first tcp socket"
        case .unavailable: "this libzmq has no CURVE support (zmq_has(\"curve\") is false): install a libzmq built with libsodium"
        }
    }
}

/// The mutable transport state of a BusContext (behind a lock: sockets on any thread read it).
final class TransportSettings: @unchecked Sendable {  // safe: all state behind `lock`
    private let lock = NSLock()
    private var _security: CurveSecurity?
    private var _handler: ZAPHandler?
    private var _maxInboundFrameBytes = DecodeLimits.default.maxBytes

    var security: CurveSecurity? {
        lock.lock(); defer { lock.unlock() }
        return _security
    }

    var handler: ZAPHandler? {
        lock.lock(); defer { lock.unlock() }
        return _handler
    }

    var maxInboundFrameBytes: Int {
        get { lock.lock(); defer { lock.unlock() }; return _maxInboundFrameBytes }
        set { lock.lock(); _maxInboundFrameBytes = newValue; lock.unlock() }
    }

    func install(_ security: CurveSecurity, handler: () throws -> ZAPHandler?) throws {
        lock.lock(); defer { lock.unlock() }
        guard _security == nil else { throw CurveError.alreadySecured }
        _handler = try handler()
        _security = security
    }

    /// Before the context terminates: the handler's socket would block zmq_ctx_term.
    func stopAuthentication() {
        handler?.stop()
    }
}

extension BusContext {
    /// True when libzmq was built with CURVE (libsodium or tweetnacl).
    public static var curveAvailable: Bool { zmq_has("curve") != 0 }

    /// Secures every later bind and connect outside inproc:// with CURVE. Call once, before the context's first
    /// tcp socket. With an allow-list it starts the ZAP handler; refusals are counted (`curveStats`) and logged
    /// through `log`, once per client key and at most `refusals.burst` lines per window.
    public func secure(_ security: CurveSecurity, refusals: RefusalLog = RefusalLog(),
                       log: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) throws {
        guard Self.curveAvailable else { throw CurveError.unavailable }
        try transport.install(security) {
            guard let allowed = security.allowed else { return nil }
            return try ZAPHandler(context: handle, allowed: allowed, log: refusals, sink: log)
        }
    }

    /// The keys this context uses, or nil when it is plain.
    public var curve: CurveSecurity? { transport.security }

    /// The ZAP handler's counts (all zero for a plain context or one that binds nothing).
    public var curveStats: CurveAuthStats { transport.handler?.stats ?? CurveAuthStats() }

    /// ZMQ_MAXMSGSIZE of every later non-inproc socket: a larger frame closes that connection before libzmq
    /// buffers it. Default: `DecodeLimits.default.maxBytes`; services set their decoders' `maxBytes`.
    public var maxInboundFrameBytes: Int {
        get { transport.maxInboundFrameBytes }
        set { transport.maxInboundFrameBytes = newValue }
    }
}

extension Socket {
    /// Sets the transport options for one bind (server) or connect (client) before libzmq sees the endpoint.
    /// Options are per socket and libzmq copies them when the endpoint is created, so each endpoint gets its own.
    func prepareTransport(_ endpoint: String, binding: Bool) throws {
        guard !endpoint.hasPrefix("inproc://") else { return }
        let h = try live()
        let security = context.curve
        // Under CURVE libzmq checks the size of the encrypted frame: the plaintext plus `curveFrameOverhead`.
        try setInt64(h, ZMQ_MAXMSGSIZE, Int64(context.maxInboundFrameBytes + (security == nil ? 0 : Self.curveFrameOverhead)))
        guard let security else { return }
        if binding {
            guard security.allowed != nil else { throw CurveError.noAllowList(endpoint: endpoint) }
            try setInt32(h, ZMQ_CURVE_SERVER, 1)
            try setBytes(h, ZMQ_CURVE_SECRETKEY, security.identity.secretKey.bytes)
            try setBytes(h, ZMQ_ZAP_DOMAIN, Array("fi".utf8))
            // ZMQ_ZAP_ENFORCE_DOMAIN (a draft option, so not in the C header we import): without a ZAP handler
            // libzmq would admit every client that knows the server key (Stonehouse); with it, it refuses them.
            try setInt32(h, 93, 1)
        } else {
            guard let server = security.serverKey else { throw CurveError.noServerKey(endpoint: endpoint) }
            try setBytes(h, ZMQ_CURVE_SERVERKEY, server.bytes)
            try setBytes(h, ZMQ_CURVE_PUBLICKEY, security.identity.publicKey.bytes)
            try setBytes(h, ZMQ_CURVE_SECRETKEY, security.identity.secretKey.bytes)
        }
    }

    /// A CURVE MESSAGE command around a frame: "\u{7}MESSAGE", an 8-byte nonce, the 16-byte MAC and the flags byte.
    static let curveFrameOverhead = 8 + 8 + 16 + 1

    private func setInt32(_ h: UnsafeMutableRawPointer, _ name: Int32, _ value: Int32) throws {
        var v = value
        guard zmq_setsockopt(h, name, &v, MemoryLayout<Int32>.size) == 0 else { throw BusError.last("zmq_setsockopt(\(name))") }
    }

    private func setInt64(_ h: UnsafeMutableRawPointer, _ name: Int32, _ value: Int64) throws {
        var v = value
        guard zmq_setsockopt(h, name, &v, MemoryLayout<Int64>.size) == 0 else { throw BusError.last("zmq_setsockopt(\(name))") }
    }

    private func setBytes(_ h: UnsafeMutableRawPointer, _ name: Int32, _ value: [UInt8]) throws {
        let rc = value.withUnsafeBytes { zmq_setsockopt(h, name, $0.baseAddress, $0.count) }
        guard rc == 0 else { throw BusError.last("zmq_setsockopt(\(name))") }
    }
}
