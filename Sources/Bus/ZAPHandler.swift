import CZMQ
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The ZAP handler (ZeroMQ RFC 27) of a secured BusContext: libzmq asks it about every CURVE client that
// completes the cryptographic handshake, and it admits only allow-listed public keys (the Ironhouse pattern).

/// What a context's ZAP handler decided so far.
public struct CurveAuthStats: Sendable, Equatable {
    public var admitted = 0
    public var refused = 0
    /// Distinct refused client keys (counted up to `RefusalLog.capacity`).
    public var refusedKeys = 0
    /// Refusals that got a log line.
    public var logged = 0
}

/// One ZAP request: frames version, request id, domain, address, routing id, mechanism, credentials...
struct ZAPRequest: Equatable {
    var version: [UInt8]
    var requestID: [UInt8]
    var domain: String
    var address: String
    var mechanism: String
    var credentials: [[UInt8]]

    init?(frames: [[UInt8]]) {
        guard frames.count >= 6 else { return nil }
        version = frames[0]
        requestID = frames[1]
        domain = String(decoding: frames[2], as: UTF8.self)
        address = String(decoding: frames[3], as: UTF8.self)
        mechanism = String(decoding: frames[5], as: UTF8.self)
        credentials = Array(frames.dropFirst(6))
    }

    /// The CURVE client key, when this is a well-formed CURVE request.
    var curveKey: CurveKey? {
        guard mechanism == "CURVE", credentials.count == 1 else { return nil }
        return CurveKey(bytes: credentials[0])
    }
}

/// The admission rule, without sockets: allow-listed CURVE keys get 200 (user id = the key's name), everything
/// else 400. A malformed request gets 500 (RFC 27), which libzmq also treats as a refusal.
struct ZAPPolicy {
    let allowed: [CurveKey: String]

    enum Decision: Equatable {
        case admit(name: String)
        case refuse(key: CurveKey?, reason: String)
        case malformed
    }

    func decide(_ request: ZAPRequest) -> Decision {
        guard request.version == Array("1.0".utf8) else { return .malformed }
        guard request.mechanism == "CURVE" else { return .refuse(key: nil, reason: "mechanism \(request.mechanism) is not CURVE") }
        guard let key = request.curveKey else { return .refuse(key: nil, reason: "no 32-byte CURVE client key") }
        guard let name = allowed[key] else { return .refuse(key: key, reason: "client key not in the allow-list") }
        return .admit(name: name)
    }

    /// The six reply frames: version, request id, status code, status text, user id, metadata.
    static func reply(to request: ZAPRequest?, _ decision: Decision) -> [[UInt8]] {
        let (code, text, user): (String, String, String)
        switch decision {
        case .admit(let name): (code, text, user) = ("200", "OK", name)
        case .refuse(_, let reason): (code, text, user) = ("400", reason, "")
        case .malformed: (code, text, user) = ("500", "malformed ZAP request", "")
        }
        return [Array("1.0".utf8), request?.requestID ?? [], Array(code.utf8), Array(text.utf8), Array(user.utf8), []]
    }
}

/// Which refusals get a log line: the first from each client key, and at most `burst` lines per `window`, so a
/// flood of fresh keys cannot flood the log. What it holds back is counted and mentioned in the next line.
/// Pure: the caller passes the time.
public struct RefusalLog: Sendable {
    public let burst: Int
    public let window: Duration
    /// Keys remembered as already logged; beyond this many, new keys are still rate-limited.
    public let capacity: Int
    private var seen: Set<CurveKey> = []
    private var windowStart: ContinuousClock.Instant?
    private var linesInWindow = 0
    private var suppressed = 0

    public init(burst: Int = 10, window: Duration = .seconds(60), capacity: Int = 4096) {
        self.burst = max(1, burst); self.window = window; self.capacity = max(1, capacity)
    }

    /// Distinct keys seen so far (up to `capacity`).
    public var distinctKeys: Int { seen.count }

    /// Records one refusal; returns the line to log, or nil.
    public mutating func record(key: CurveKey?, address: String, reason: String, at now: ContinuousClock.Instant) -> String? {
        if let key {
            guard !seen.contains(key) else { return nil }  // this peer was logged (or suppressed) already
            if seen.count < capacity { seen.insert(key) }
        }
        if let start = windowStart, now - start < window {
            guard linesInWindow < burst else { suppressed += 1; return nil }
        } else {
            windowStart = now
            linesInWindow = 0
        }
        linesInWindow += 1
        var line = "CURVE: refused a client from \(address.isEmpty ? "an unknown address" : address)"
        line += key.map { " with key \($0.z85)" } ?? ""
        line += ": \(reason)"
        if suppressed > 0 {
            line += " (\(suppressed) more refused peers not logged)"
            suppressed = 0
        }
        return line
    }
}

/// The REP socket on `inproc://zeromq.zap.01` of one context and the thread that answers it. It binds before
/// `init` returns, so every CURVE listener created afterwards is guarded; it holds the raw context handle (not
/// the BusContext), so a context can still be deinitialised, which stops the handler first.
final class ZAPHandler: @unchecked Sendable {  // safe: the socket is used only by the handler thread; shared state behind `lock`
    private let socket: UnsafeMutableRawPointer
    private let policy: ZAPPolicy
    private let sink: @Sendable (String) -> Void
    private let lock = NSLock()
    private var counters = CurveAuthStats()
    private var refusals: RefusalLog
    private var stopping = false
    private let finished = DispatchSemaphore(value: 0)
    private let wakeRead: Int32
    private let wakeWrite: Int32

    init(context: UnsafeMutableRawPointer, allowed: [CurveKey: String], log: RefusalLog, sink: @escaping @Sendable (String) -> Void) throws {
        guard let s = zmq_socket(context, ZMQ_REP) else { throw BusError.last("zmq_socket(ZAP)") }
        var zero: Int32 = 0
        zmq_setsockopt(s, ZMQ_LINGER, &zero, MemoryLayout<Int32>.size)
        guard zmq_bind(s, "inproc://zeromq.zap.01") == 0 else {
            let error = BusError.last("zmq_bind(inproc://zeromq.zap.01)")
            zmq_close(s)
            throw error
        }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { zmq_close(s); throw BusError.zmq(call: "pipe", errno: errno, message: "out of file descriptors") }
        socket = s
        policy = ZAPPolicy(allowed: allowed)
        refusals = log
        self.sink = sink
        wakeRead = fds[0]
        wakeWrite = fds[1]
        let thread = Thread { [self] in run() }
        thread.name = "zap"
        thread.start()
    }

    deinit {
        close(wakeRead)
        close(wakeWrite)
    }

    var stats: CurveAuthStats {
        lock.lock(); defer { lock.unlock() }
        return counters
    }

    /// Closes the socket and ends the thread (idempotent). Do it only when no CURVE listener of the context
    /// remains: libzmq fails closed without a handler (ZAP_ENFORCE_DOMAIN), so clients would be refused.
    func stop() {
        lock.lock()
        let first = !stopping
        stopping = true
        lock.unlock()
        guard first else { return }
        var b: UInt8 = 1
        _ = write(wakeWrite, &b, 1)
        finished.wait()
    }

    private func run() {
        var items = [zmq_pollitem_t(socket: socket, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0),
                     zmq_pollitem_t(socket: nil, fd: wakeRead, events: Int16(ZMQ_POLLIN), revents: 0)]
        while true {
            lock.lock(); let stop = stopping; lock.unlock()
            if stop { break }
            let rc = items.withUnsafeMutableBufferPointer { zmq_poll($0.baseAddress, 2, -1) }
            if rc < 0 && zmq_errno() != EINTR { break }  // context terminated
            guard items[0].revents & Int16(ZMQ_POLLIN) != 0 else { continue }
            guard let frames = receive() else { continue }
            answer(frames)
        }
        zmq_close(socket)
        finished.signal()
    }

    private func answer(_ frames: [[UInt8]]) {
        let request = ZAPRequest(frames: frames)
        let decision = request.map(policy.decide) ?? .malformed
        lock.lock()
        var line: String?
        switch decision {
        case .admit: counters.admitted += 1
        case .refuse(let key, let reason):
            counters.refused += 1
            line = refusals.record(key: key, address: request?.address ?? "", reason: reason, at: .now)
            counters.refusedKeys = refusals.distinctKeys
            if line != nil { counters.logged += 1 }
        case .malformed: counters.refused += 1
        }
        lock.unlock()
        if let line { sink(line) }
        let reply = ZAPPolicy.reply(to: request, decision)
        for (i, frame) in reply.enumerated() {
            let flags: Int32 = i < reply.count - 1 ? ZMQ_SNDMORE : 0
            _ = frame.withUnsafeBytes { zmq_send(socket, $0.baseAddress, $0.count, flags) }
        }
    }

    private func receive() -> [[UInt8]]? {
        var frames: [[UInt8]] = []
        var msg = zmq_msg_t()
        zmq_msg_init(&msg)
        defer { zmq_msg_close(&msg) }
        repeat {
            guard zmq_msg_recv(&msg, socket, frames.isEmpty ? ZMQ_DONTWAIT : 0) >= 0 else { return nil }
            let size = zmq_msg_size(&msg)
            frames.append(size == 0 ? [] : Array(UnsafeRawBufferPointer(start: zmq_msg_data(&msg), count: size)))
        } while zmq_msg_more(&msg) != 0
        return frames
    }
}
