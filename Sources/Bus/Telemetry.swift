import Foundation
import Messages

// Telemetry: each service's PUB -> the proxy's XSUB, XPUB -> any SUB (DESIGN.md, "Sockets").
// Frames: ["telemetry/<kind>/<sender>", envelope frames...]; a SUB filters by prefix,
// e.g. "telemetry/" (everything), "telemetry/load/" (all load reports), "telemetry/event/dev-3".

public enum TelemetryTopic {
    public static let prefix = "telemetry/"

    /// load, channel, metric or event for telemetry; the body's proto name otherwise ("round", "model", "update").
    public static func kind(of body: Body) -> String {
        guard case .telemetry(let t) = body else { return body.name }
        switch t {
        case .load: return "load"
        case .channel: return "channel"
        case .metric: return "metric"
        case .event: return "event"
        }
    }

    /// "telemetry/<kind>/<sender>".
    public static func topic(for body: Body, sender: String) -> String {
        prefix + kind(of: body) + "/" + sender
    }
}

/// A service's telemetry outlet: a PUB connected to the proxy's XSUB. Each publish wraps the body in an
/// Envelope from `sender` with the next `seq` (1, 2, 3, ...), so a tap can tell lost messages from quiet ones.
///
/// Threading: safe from any thread. Every send happens under a lock, and libzmq allows a socket to move
/// between threads given a full memory barrier, which the lock provides. Typically the service loop
/// publishes, and a worker thread may publish an event directly without `loop.post`.
/// Sending never blocks: with no subscriber, or a full queue, PUB drops the message; its seq is still used,
/// so the drop shows up downstream as a gap.
public final class TelemetryPublisher: @unchecked Sendable {  // safe: socket and counters only touched under `lock`
    private var name: String
    private let socket: Socket
    private let lock = NSLock()
    private var next: UInt64 = 1
    private var sent = 0

    /// Connects to `endpoint` (the proxy's XSUB). Messages published before the connection completes
    /// and the subscriptions arrive are dropped, as with any PUB (the slow-joiner rule).
    public init(connect endpoint: String, sender: String, context: BusContext = .shared,
                linger: Int32 = Socket.defaultLingerMilliseconds, sendHighWaterMark: Int32 = 10_000) throws {
        name = sender
        socket = try Socket(.pub, context: context, linger: linger)
        try socket.set(.sendHighWaterMark(sendHighWaterMark))
        try socket.connect(endpoint)
    }

    deinit { socket.close() }

    /// Publishes a telemetry report; returns the seq it used.
    @discardableResult
    public func publish(_ telemetry: Telemetry) throws -> UInt64 {
        try publish(envelope: .telemetry(telemetry))
    }

    /// Publishes any body (a round announcement, a model summary, ...) on the telemetry bus; returns its seq.
    /// Tensors travel as their own frames above 16 KiB, as on every other socket.
    @discardableResult
    public func publish(envelope body: Body) throws -> UInt64 {
        lock.lock(); defer { lock.unlock() }
        let seq = next
        next += 1
        let envelope = Envelope(sender: name, seq: seq, body: body)
        let topic = Array(TelemetryTopic.topic(for: body, sender: name).utf8)
        do {
            try socket.send(envelope, prefix: [topic], dontWait: true)
            sent += 1
        } catch BusError.wouldBlock {
            // Dropped like any PUB overflow; the subscriber sees the gap in seq.
        }
        return seq
    }

    public var sender: String {
        lock.lock(); defer { lock.unlock() }
        return name
    }

    /// Publishes as `sender` from now on, from seq 1: a scaled worker learns its id from the manager after it
    /// connected, and a tap tracks gaps per sender.
    public func rename(_ sender: String) {
        lock.lock(); defer { lock.unlock() }
        guard sender != name else { return }
        name = sender
        next = 1
    }

    /// The seq the next publish will use.
    public var nextSeq: UInt64 {
        lock.lock(); defer { lock.unlock() }
        return next
    }

    /// Messages handed to libzmq (PUB may still drop them if no subscriber is connected).
    public var sentCount: Int {
        lock.lock(); defer { lock.unlock() }
        return sent
    }

    /// Closes the socket; later publishes throw `BusError.closed`.
    public func close() {
        lock.lock(); defer { lock.unlock() }
        socket.close()
    }
}
