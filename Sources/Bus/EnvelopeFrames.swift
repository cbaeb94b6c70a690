import Messages

// Framing conventions on the bus (DESIGN.md, "Sockets"):
//   DEALER -> ROUTER:  [envelope frames...]            ROUTER sees [peer id, envelope frames...]
//   ROUTER -> DEALER:  [peer id, envelope frames...]   DEALER sees [envelope frames...]
//   PUB -> SUB:        [topic, envelope frames...]
// "envelope frames" = Envelope.encodeFrames: the protobuf header, then raw tensor frames.

extension Socket {
    /// Sends `prefix` (routing id and/or topic) followed by the envelope's frames; large tensors go zero-copy.
    public func send(_ envelope: Envelope, prefix: [[UInt8]] = [], externalThreshold: Int = 16 << 10, dontWait: Bool = false) throws {
        try send(prefix + envelope.encodeFrames(externalThreshold: externalThreshold), dontWait: dontWait)
    }
}

extension Envelope {
    /// Decodes a received message after its first `prefixCount` frames (ROUTER peer id: 1, PUB topic: 1).
    public static func decode(received frames: [[UInt8]], prefixCount: Int, limits: DecodeLimits = .default) throws -> Envelope {
        guard frames.count > prefixCount else {
            decodeErrors.record(.truncated)
            throw MessageError.truncated
        }
        return try decode(frames: Array(frames[prefixCount...]), limits: limits)
    }
}
