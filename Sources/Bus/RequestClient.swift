import Foundation
import Messages

/// Request/reply from async code over a DEALER: `request` sends an Envelope with a fresh `seq` and resumes
/// when an Envelope with `replyTo == seq` arrives (servers must set it), or throws `.timeout`.
/// Everything else the server sends (pushed assignments, acks without a waiter) goes to `incoming`.
/// The DEALER lives on the client's own ServiceLoop; async callers never touch it.
public final class RequestClient: @unchecked Sendable {  // safe: mutable state is confined to `loop`
    public let loop: ServiceLoop
    public let sender: String
    /// Envelopes that did not answer a pending request.
    public let incoming: AsyncStream<Envelope>

    private let socket: Socket
    private let incomingContinuation: AsyncStream<Envelope>.Continuation
    private let limits: DecodeLimits
    private var seq: UInt64 = 0
    private var pending: [UInt64: CheckedContinuation<Envelope, Error>] = [:]

    /// Connects a DEALER (routing id = `sender`) to `endpoint` and starts its loop.
    public init(connect endpoint: String, sender: String, context: BusContext = .shared, limits: DecodeLimits = .default) throws {
        self.sender = sender
        self.limits = limits
        self.loop = ServiceLoop(name: "client-\(sender)")
        (incoming, incomingContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1024))
        socket = try Socket(.dealer, context: context)
        try socket.set(.routingId(Array(sender.utf8)))
        try socket.connect(endpoint)
        loop.add(socket) { [weak self] _, frames in try self?.receive(frames) }
        loop.start()
    }

    deinit {
        loop.stop()
        incomingContinuation.finish()
    }

    /// Sends `body` and waits for the reply.
    public func request(_ body: Body, timeout: Duration = .seconds(5)) async throws -> Envelope {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Envelope, Error>) in
            let accepted = loop.post { [self] in
                seq += 1
                let id = seq
                do {
                    try socket.send(Envelope(sender: sender, seq: id, body: body), dontWait: true)
                } catch {
                    cont.resume(throwing: error)
                    return
                }
                pending[id] = cont
                loop.after(timeout) { [self] in
                    pending.removeValue(forKey: id)?.resume(throwing: BusError.timeout)
                }
            }
            if !accepted { cont.resume(throwing: BusError.stopped) }
        }
    }

    /// Sends `body` without waiting for a reply (heartbeats, leave).
    public func send(_ body: Body) async throws {
        try await loop.perform { [self] in
            seq += 1
            try socket.send(Envelope(sender: sender, seq: seq, body: body), dontWait: true)
        }
    }

    /// Stops the loop; pending requests fail with `.stopped`.
    public func close() {
        loop.post { [self] in
            for (_, c) in pending { c.resume(throwing: BusError.stopped) }
            pending.removeAll()
        }
        loop.stop()
        incomingContinuation.finish()
    }

    private func receive(_ frames: [[UInt8]]) throws {
        let env = try Envelope.decode(frames: frames, limits: limits)
        if env.replyTo != 0, let cont = pending.removeValue(forKey: env.replyTo) {
            cont.resume(returning: env)
        } else {
            incomingContinuation.yield(env)
        }
    }
}
