import Foundation
import Messages

/// A message the tap could not decode. Counted and reported, never fatal.
public enum TapError: Error, Equatable, Sendable, CustomStringConvertible {
    case undecodable(topic: String, frames: Int, bytes: Int, cause: MessageError)

    public var description: String {
        switch self {
        case .undecodable(let topic, let frames, let bytes, let cause):
            "undecodable message on topic '\(topic)' (\(frames) frames, \(bytes) bytes): \(cause)"
        }
    }
}

/// One line of tap output; `diagnostic` lines (undecodable messages, the summary) go to stderr.
public struct TapLine: Sendable, Equatable {
    public var text: String
    public var diagnostic: Bool

    public init(_ text: String, diagnostic: Bool = false) { self.text = text; self.diagnostic = diagnostic }
}

/// What a tap has seen so far.
public struct TapStats: Sendable, Equatable {
    public var messages = 0
    public var decoded = 0
    public var undecodable = 0
    /// Undecodable messages by `MessageError.kind`.
    public var errors: [String: Int] = [:]
    public var senders: [String: GapDetector.SenderStats] = [:]

    public var gaps: Int { senders.values.reduce(0) { $0 + $1.gaps } }
    public var lost: UInt64 { senders.values.reduce(0) { $0 + $1.lost } }
}

/// The tap's logic without sockets: frames in, output lines out. Frames follow the PUB -> SUB convention
/// ([topic, envelope frames...]); a single frame is taken as an envelope without a topic.
///
/// JSON mode prints one object per message: `{"topic", "kind", "version", "sender", "seq", "timestamp_us",
/// "reply_to", "<body>": {...}}` (see `Envelope.json`), and one `{"gap": {...}}`, `{"late": ...}`,
/// `{"duplicate": ...}` or `{"restart": ...}` line when a sender's seq misbehaves.
public struct TapSession: Sendable {
    public let json: Bool
    /// Off when the subscription filters by kind: a sender's seq spans all its kinds, so a filtered
    /// stream skips seqs that were never lost.
    public let trackSequence: Bool
    public let limits: DecodeLimits
    public private(set) var stats = TapStats()
    private var detector = GapDetector()

    public init(json: Bool = true, trackSequence: Bool = true, limits: DecodeLimits = .default) {
        self.json = json
        self.trackSequence = trackSequence
        self.limits = limits
    }

    public mutating func consume(_ frames: [[UInt8]]) -> [TapLine] {
        stats.messages += 1
        let hasTopic = frames.count > 1
        let topic = hasTopic ? String(decoding: frames[0], as: UTF8.self) : ""
        let envelope: Envelope
        do {
            envelope = try Envelope.decode(received: frames, prefixCount: hasTopic ? 1 : 0, limits: limits)
        } catch {
            let cause = error as? MessageError ?? .invalidProtobuf
            stats.undecodable += 1
            stats.errors[cause.kind, default: 0] += 1
            let failure = TapError.undecodable(topic: topic, frames: frames.count, bytes: frames.reduce(0) { $0 + $1.count }, cause: cause)
            return [TapLine(render(failure), diagnostic: true)]
        }
        stats.decoded += 1
        var lines = [TapLine(render(envelope, topic: topic))]
        guard trackSequence else { return lines }
        let observation = detector.observe(sender: envelope.sender, seq: envelope.seq)
        stats.senders[envelope.sender] = detector.stats(for: envelope.sender)
        if let line = render(observation, envelope: envelope) { lines.append(line) }
        return lines
    }

    /// A closing line for stderr: totals, errors by kind, and per-sender sequence stats.
    public func summary() -> TapLine {
        let senders = stats.senders.keys.sorted().map { name -> (String, JSONValue) in
            let s = stats.senders[name] ?? GapDetector.SenderStats()
            return (name, .object([("received", .int(Int64(s.received))), ("gaps", .int(Int64(s.gaps))), ("lost", .uint(s.lost)),
                                   ("late", .int(Int64(s.late))), ("duplicates", .int(Int64(s.duplicates))),
                                   ("restarts", .int(Int64(s.restarts))), ("last_seq", .uint(s.lastSeq))]))
        }
        let errors = stats.errors.keys.sorted().map { ($0, JSONValue.int(Int64(stats.errors[$0] ?? 0))) }
        let value = JSONValue.object([("tap_summary", .object([
            ("messages", .int(Int64(stats.messages))), ("decoded", .int(Int64(stats.decoded))),
            ("undecodable", .int(Int64(stats.undecodable))), ("errors", .object(errors)), ("senders", .object(senders)),
        ]))])
        if json { return TapLine(value.rendered, diagnostic: true) }
        let perSender = stats.senders.keys.sorted().map { name -> String in
            let s = stats.senders[name] ?? GapDetector.SenderStats()
            return "\(name): \(s.received) received, \(s.gaps) gaps, \(s.lost) lost, last seq \(s.lastSeq)"
        }
        return TapLine((["tap: \(stats.messages) messages, \(stats.decoded) decoded, \(stats.undecodable) undecodable"] + perSender)
            .joined(separator: "\n  "), diagnostic: true)
    }

    private func render(_ envelope: Envelope, topic: String) -> String {
        let kind = TelemetryTopic.kind(of: envelope.body)
        if json {
            guard case .object(let fields) = envelope.json else { return envelope.json.rendered }
            return JSONValue.object([("topic", .string(topic)), ("kind", .string(kind))] + fields).rendered
        }
        let body = envelope.body.json
        // Telemetry bodies are {"load": {...}}: show the inner report.
        let shown = if case .telemetry = envelope.body, case .object(let pairs) = body, let inner = pairs.first?.1 { inner } else { body }
        var line = "\(Self.clock(envelope.timestampUs)) \(envelope.sender) #\(envelope.seq) \(kind)"
        if envelope.replyTo != 0 { line += " reply_to=\(envelope.replyTo)" }
        let fields = shown.humanReadable
        return fields.isEmpty ? line : line + " " + fields
    }

    private func render(_ failure: TapError) -> String {
        guard json, case .undecodable(let topic, let frames, let bytes, let cause) = failure else { return "tap: \(failure)" }
        return JSONValue.object([("tap_error", .object([
            ("kind", .string(cause.kind)), ("topic", .string(topic)), ("frames", .int(Int64(frames))),
            ("bytes", .int(Int64(bytes))), ("message", .string(cause.description)),
        ]))]).rendered
    }

    private func render(_ observation: GapDetector.Observation, envelope: Envelope) -> TapLine? {
        let sender = envelope.sender, seq = envelope.seq
        switch observation {
        case .first, .inOrder, .unnumbered:
            return nil
        case .gap(let missing):
            let n = missing.upperBound - missing.lowerBound + 1
            if json {
                return TapLine(JSONValue.object([("gap", .object([
                    ("sender", .string(sender)), ("from", .uint(missing.lowerBound)), ("to", .uint(missing.upperBound)),
                    ("missing", .uint(n)), ("at_seq", .uint(seq)),
                ]))]).rendered)
            }
            let range = n == 1 ? "seq \(missing.lowerBound)" : "seq \(missing.lowerBound)...\(missing.upperBound)"
            return TapLine("warning: gap from \(sender): \(range) missing (\(n) message\(n == 1 ? "" : "s")) before #\(seq)")
        case .late, .duplicate, .restart:
            let name = observation == .late ? "late" : observation == .duplicate ? "duplicate" : "restart"
            if json {
                return TapLine(JSONValue.object([(name, .object([("sender", .string(sender)), ("seq", .uint(seq))]))]).rendered)
            }
            return TapLine("warning: \(name) message from \(sender): #\(seq)")
        }
    }

    /// HH:MM:SS.mmm (UTC) of a microsecond timestamp.
    static func clock(_ us: UInt64) -> String {
        let ms = us / 1000
        let s = ms / 1000
        func two(_ v: UInt64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let milli = ms % 1000
        return "\(two(s / 3600 % 24)):\(two(s / 60 % 60)):\(two(s % 60)).\(milli < 10 ? "00" : milli < 100 ? "0" : "")\(milli)"
    }
}
