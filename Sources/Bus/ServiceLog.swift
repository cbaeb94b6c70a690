import Foundation
import Logging

/// Repeated messages of one kind pass at a bounded rate: the first `burst` of a key in a `window`, then nothing until
/// the next window, whose first line says how many were held back (20,000 garbage frames print a few lines, not
/// 20,000). Pure: the caller gives the time.
public struct LogRateLimiter: Sendable {
    public let burst: Int
    public let window: Double
    private var state: [String: (start: Double, passed: Int, suppressed: Int)] = [:]

    public init(burst: Int = 10, window: Double = 60) { self.burst = max(1, burst); self.window = window }

    /// Whether a message with `key` passes now, and how many of that key were suppressed since the last that passed.
    public mutating func admit(_ key: String, now: Double) -> (pass: Bool, suppressedBefore: Int) {
        var s = state[key] ?? (now, 0, 0)
        if now - s.start >= window { s = (now, 0, s.suppressed) }
        if s.passed < burst {
            let held = s.suppressed
            s.passed += 1
            s.suppressed = 0
            state[key] = s
            return (true, held)
        }
        s.suppressed += 1
        state[key] = s
        return (false, 0)
    }
}

/// Where a service's log lines go: stderr by default, one rate limiter per service. Thread-safe (a lock).
public final class LogSink: @unchecked Sendable {  // safe: `limiter` only under `lock`
    private let lock = NSLock()
    private var limiter: LogRateLimiter
    private let write: @Sendable (String) -> Void
    private let clock: @Sendable () -> Double

    public init(limiter: LogRateLimiter = LogRateLimiter(), write: (@Sendable (String) -> Void)? = nil,
                clock: (@Sendable () -> Double)? = nil) {
        self.limiter = limiter
        self.write = write ?? { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
        self.clock = clock ?? { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
    }

    /// Admits one message of `key`; nil when it is suppressed.
    func admit(_ key: String) -> Int? {
        lock.lock(); defer { lock.unlock() }
        let r = limiter.admit(key, now: clock())
        return r.pass ? r.suppressedBefore : nil
    }

    func emit(_ line: String) { write(line) }
}

/// swift-log handler of the services: `[node] kind: text (round=N …)`, with the node id and the round as metadata and
/// repeated kinds rate-limited (warnings and errors by kind; info by kind too).
public struct ServiceLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let node: String
    let sink: LogSink

    public init(node: String, sink: LogSink) { self.node = node; self.sink = sink }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(level: Logger.Level, message: Logger.Message, metadata extra: Logger.Metadata?, source: String,
                    file: String, function: String, line: UInt) {
        var all = metadata
        if let extra { all.merge(extra) { $1 } }
        let kind = all.removeValue(forKey: "kind").map { "\($0)" } ?? source
        let who = all.removeValue(forKey: "node").map { "\($0)" } ?? node
        guard let held = sink.admit("\(level)/\(kind)") else { return }
        var text = "[\(who)] \(kind): \(message)"
        if !all.isEmpty { text += " (" + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") + ")" }
        if held > 0 { text += " [\(held) more '\(kind)' messages suppressed]" }
        sink.emit(text)
    }
}

extension Logger {
    /// A service's logger: its node id and the given sink (stderr, rate-limited).
    public static func service(_ node: String, sink: LogSink = LogSink(), level: Logger.Level = .info) -> Logger {
        var l = Logger(label: node) { _ in ServiceLogHandler(node: node, sink: sink) }
        l.logLevel = level
        return l
    }
}
