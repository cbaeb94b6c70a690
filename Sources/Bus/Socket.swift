import CZMQ
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A libzmq context. Sockets talking over `inproc://` must share one; `BusContext.shared` is the default.
public final class BusContext: @unchecked Sendable {  // safe: libzmq contexts are thread-safe
    public static let shared = BusContext()

    let handle: UnsafeMutableRawPointer
    /// CURVE and frame caps for endpoints outside inproc (TransportSecurity.swift).
    let transport = TransportSettings()

    /// `maxSockets`: libzmq's limit (1023 by default); an embedded run with a host of many devices needs two per device.
    public init(ioThreads: Int32 = 1, maxSockets: Int32 = 1023) {
        guard let h = zmq_ctx_new() else { fatalError("zmq_ctx_new failed: out of memory") }
        zmq_ctx_set(h, ZMQ_IO_THREADS, ioThreads)
        handle = h
        setMaxSockets(maxSockets)
    }

    /// libzmq's socket limit; call before the context's first socket.
    public func setMaxSockets(_ n: Int32) { zmq_ctx_set(handle, ZMQ_MAX_SOCKETS, n) }

    private let termLock = NSLock()
    private var terminated = false

    // Every Socket retains its context and sockets linger a bounded time, so this cannot hang.
    deinit {
        guard !terminated else { return }
        transport.stopAuthentication()  // its socket would block the termination
        zmq_ctx_term(handle)
    }

    /// Before a process exits: lets libzmq send what closed sockets still queue (each up to its linger), waiting at
    /// most `timeout` seconds (a socket left open would block the termination forever). Without it a message sent
    /// just before exit (an edge's last relayed evaluation) can be lost with the I/O thread. Use no socket of this
    /// context afterwards.
    public func terminate(timeout: Double) {
        termLock.lock()
        let first = !terminated
        terminated = true
        termLock.unlock()
        guard first else { return }
        transport.stopAuthentication()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread { [self] in
            zmq_ctx_term(handle)
            done.signal()
        }
        _ = done.wait(timeout: .now() + timeout)
    }
}

public enum SocketType: Sendable, Equatable {
    case pub, sub, xpub, xsub, router, dealer, push, pull, pair

    var raw: Int32 {
        switch self {
        case .pub: ZMQ_PUB
        case .sub: ZMQ_SUB
        case .xpub: ZMQ_XPUB
        case .xsub: ZMQ_XSUB
        case .router: ZMQ_ROUTER
        case .dealer: ZMQ_DEALER
        case .push: ZMQ_PUSH
        case .pull: ZMQ_PULL
        case .pair: ZMQ_PAIR
        }
    }
}

public enum SocketOption: Sendable, Equatable {
    /// How long close waits to flush pending messages (ms; -1 forever, which this package never uses).
    case linger(milliseconds: Int32)
    /// ROUTER: sending to an unknown peer fails with `.unroutable` instead of dropping silently.
    case routerMandatory(Bool)
    /// ROUTER: a peer connecting with a routing id still held by an older connection takes it over
    /// (without it libzmq ignores the newcomer, so a restarted node with a fixed id is silently cut off).
    case routerHandover(Bool)
    case sendHighWaterMark(Int32)
    case receiveHighWaterMark(Int32)
    /// SUB: receive messages whose first frame starts with this prefix (empty = everything).
    case subscribe([UInt8])
    case unsubscribe([UInt8])
    /// ROUTER peers see this id instead of a random one (set before connect).
    case routingId([UInt8])
    /// Blocking receive/send give up with `.wouldBlock` after this many ms (-1 = forever).
    case receiveTimeout(milliseconds: Int32)
    case sendTimeout(milliseconds: Int32)
    /// Queue messages only to completed connections.
    case immediate(Bool)
    /// XPUB: pass every subscription upstream, not just new ones.
    case xpubVerbose(Bool)
}

/// One libzmq socket. Not thread-safe: use it from one thread at a time (a ServiceLoop owns its sockets).
/// Handing a socket to another thread before use is fine (libzmq allows it with a memory barrier).
public final class Socket: @unchecked Sendable {  // safe: used by one thread at a time, see above
    public let type: SocketType
    public let context: BusContext
    private(set) var handle: UnsafeMutableRawPointer?

    /// Default LINGER: close never waits longer than this for unsent messages.
    public static let defaultLingerMilliseconds: Int32 = 200

    public init(_ type: SocketType, context: BusContext = .shared, linger: Int32 = Socket.defaultLingerMilliseconds) throws {
        guard let h = zmq_socket(context.handle, type.raw) else { throw BusError.last("zmq_socket") }
        self.type = type
        self.context = context
        self.handle = h
        try set(.linger(milliseconds: linger))
    }

    deinit { close() }

    /// Closes the socket (idempotent). Pending messages are dropped after LINGER.
    public func close() {
        if let h = handle { zmq_close(h) }
        handle = nil
    }

    public var isClosed: Bool { handle == nil }

    func live() throws -> UnsafeMutableRawPointer {
        guard let h = handle else { throw BusError.closed }
        return h
    }

    /// Binds and returns the actual endpoint (for `tcp://127.0.0.1:0`, the port the OS chose). Outside inproc a
    /// secured context makes it a CURVE server (TransportSecurity.swift).
    @discardableResult
    public func bind(_ endpoint: String) throws -> String {
        try prepareTransport(endpoint, binding: true)
        guard zmq_bind(try live(), endpoint) == 0 else { throw BusError.last("zmq_bind(\(endpoint))") }
        return try lastEndpoint()
    }

    /// Outside inproc a secured context makes it a CURVE client of the context's server key.
    public func connect(_ endpoint: String) throws {
        try prepareTransport(endpoint, binding: false)
        guard zmq_connect(try live(), endpoint) == 0 else { throw BusError.last("zmq_connect(\(endpoint))") }
    }

    public func unbind(_ endpoint: String) throws {
        guard zmq_unbind(try live(), endpoint) == 0 else { throw BusError.last("zmq_unbind(\(endpoint))") }
    }

    public func disconnect(_ endpoint: String) throws {
        guard zmq_disconnect(try live(), endpoint) == 0 else { throw BusError.last("zmq_disconnect(\(endpoint))") }
    }

    /// ZMQ_LAST_ENDPOINT: the endpoint of the last bind.
    public func lastEndpoint() throws -> String {
        var buf = [CChar](repeating: 0, count: 1024)
        var size = buf.count
        guard zmq_getsockopt(try live(), ZMQ_LAST_ENDPOINT, &buf, &size) == 0 else { throw BusError.last("zmq_getsockopt(LAST_ENDPOINT)") }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public func set(_ option: SocketOption) throws {
        let h = try live()
        func int(_ name: Int32, _ value: Int32) -> Int32 {
            var v = value
            return zmq_setsockopt(h, name, &v, MemoryLayout<Int32>.size)
        }
        func bytes(_ name: Int32, _ value: [UInt8]) -> Int32 {
            value.withUnsafeBytes { zmq_setsockopt(h, name, $0.baseAddress, $0.count) }
        }
        let rc: Int32
        switch option {
        case .linger(let ms): rc = int(ZMQ_LINGER, ms)
        case .routerMandatory(let on): rc = int(ZMQ_ROUTER_MANDATORY, on ? 1 : 0)
        case .routerHandover(let on): rc = int(ZMQ_ROUTER_HANDOVER, on ? 1 : 0)
        case .sendHighWaterMark(let n): rc = int(ZMQ_SNDHWM, n)
        case .receiveHighWaterMark(let n): rc = int(ZMQ_RCVHWM, n)
        case .subscribe(let prefix): rc = bytes(ZMQ_SUBSCRIBE, prefix)
        case .unsubscribe(let prefix): rc = bytes(ZMQ_UNSUBSCRIBE, prefix)
        case .routingId(let id): rc = bytes(ZMQ_ROUTING_ID, id)
        case .receiveTimeout(let ms): rc = int(ZMQ_RCVTIMEO, ms)
        case .sendTimeout(let ms): rc = int(ZMQ_SNDTIMEO, ms)
        case .immediate(let on): rc = int(ZMQ_IMMEDIATE, on ? 1 : 0)
        case .xpubVerbose(let on): rc = int(ZMQ_XPUB_VERBOSE, on ? 1 : 0)
        }
        guard rc == 0 else { throw BusError.last("zmq_setsockopt(\(option))") }
    }

    /// Convenience for `set(.subscribe(Array(topic.utf8)))`.
    public func subscribe(_ topic: String) throws { try set(.subscribe(Array(topic.utf8))) }

    // MARK: sending

    /// Frames at least this large are sent zero-copy (libzmq reads the Swift buffer directly).
    public static let zeroCopyThreshold = 64 << 10

    /// Sends one multipart message. ROUTER: frame 0 is the peer's routing id.
    /// The first frame decides: if it fails (EAGAIN, unroutable), nothing was sent.
    public func send(_ frames: [[UInt8]], dontWait: Bool = false) throws {
        let h = try live()
        guard !frames.isEmpty else { return }
        for (i, frame) in frames.enumerated() {
            var flags: Int32 = dontWait ? ZMQ_DONTWAIT : 0
            if i < frames.count - 1 { flags |= ZMQ_SNDMORE }
            try sendFrame(h, frame, flags: flags, peer: i == 0 && type == .router ? frame : [])
        }
    }

    /// Sends one frame; `more` marks that further frames of the same message follow.
    public func send(frame: [UInt8], more: Bool, dontWait: Bool = false) throws {
        var flags: Int32 = dontWait ? ZMQ_DONTWAIT : 0
        if more { flags |= ZMQ_SNDMORE }
        try sendFrame(try live(), frame, flags: flags, peer: [])
    }

    private func sendFrame(_ h: UnsafeMutableRawPointer, _ frame: [UInt8], flags: Int32, peer: [UInt8]) throws {
        if frame.count >= Socket.zeroCopyThreshold {
            var msg = zmq_msg_t()
            ZeroCopy.initMessage(&msg, frame)
            if zmq_msg_send(&msg, h, flags) < 0 {
                let error = BusError.last("zmq_msg_send", peer: peer)
                zmq_msg_close(&msg)  // still ours after a failed send; releases the buffer
                throw error
            }
            return
        }
        let rc = frame.withUnsafeBytes { zmq_send(h, $0.baseAddress, $0.count, flags) }
        if rc < 0 { throw BusError.last("zmq_send", peer: peer) }
    }

    // MARK: receiving

    /// Receives one whole multipart message; each frame is copied once into a `[UInt8]`.
    public func receive(dontWait: Bool = false) throws -> [[UInt8]] {
        let h = try live()
        var frames: [[UInt8]] = []
        var msg = zmq_msg_t()
        zmq_msg_init(&msg)
        defer { zmq_msg_close(&msg) }
        repeat {
            // Only the first frame may block or fail with EAGAIN: the rest of a message arrives together.
            if zmq_msg_recv(&msg, h, frames.isEmpty && dontWait ? ZMQ_DONTWAIT : 0) < 0 { throw BusError.last("zmq_msg_recv") }
            let size = zmq_msg_size(&msg)
            let data = zmq_msg_data(&msg)
            frames.append([UInt8](unsafeUninitializedCapacity: size) { buf, count in
                if size > 0, let data { memcpy(buf.baseAddress!, data, size) }
                count = size
            })
        } while zmq_msg_more(&msg) != 0
        return frames
    }

    /// The raw libzmq socket, for code (and benchmarks) that call libzmq directly.
    public var rawHandle: UnsafeMutableRawPointer? { handle }
}

extension Socket {
    /// The ROUTER a stable service binds (DESIGN.md: stable services bind, workers connect). Sending to an
    /// unknown peer is an error (ROUTER_MANDATORY), and because node ids are fixed, a restarted peer
    /// reconnecting under its id takes it over from the dead connection libzmq may still hold
    /// (ROUTER_HANDOVER); without that the newcomer is silently ignored.
    public static func serviceRouter(bind endpoint: String, context: BusContext = .shared) throws -> (socket: Socket, endpoint: String) {
        let socket = try Socket(.router, context: context)
        try socket.set(.routerMandatory(true))
        try socket.set(.routerHandover(true))
        return (socket, try socket.bind(endpoint))
    }
}
