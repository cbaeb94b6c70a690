import Foundation
import Messages

/// `fi tap`: a SUB on the proxy's XPUB that prints every message (see `TapSession` for the output).
public struct TapOptions: Sendable {
    public var connect: String
    /// Subscription prefixes; empty = everything.
    public var topics: [String]
    public var json: Bool
    /// Stop after this many messages (decodable or not).
    public var count: Int?
    /// Stop after this many seconds without a message.
    public var timeout: Double?
    public var limits: DecodeLimits

    public init(connect: String, topics: [String] = [], json: Bool = true, count: Int? = nil, timeout: Double? = nil,
                limits: DecodeLimits = .default) {
        self.connect = connect; self.topics = topics; self.json = json; self.count = count; self.timeout = timeout
        self.limits = limits
    }
}

public enum Tap {
    /// Why `run` returned.
    public enum Exit: Sendable, Equatable {
        case count, timeout, signal
    }

    /// Subscribes and emits lines until `options.count` messages, `options.timeout` seconds of silence,
    /// or `shutdown`. Blocks the calling thread; the socket lives and dies inside this call.
    /// `emit` gets every line (the closing summary too) in order.
    @discardableResult
    public static func run(_ options: TapOptions, context: BusContext = .shared, shutdown: ShutdownSignal = ShutdownSignal(),
                           emit: (TapLine) -> Void) throws -> (exit: Exit, stats: TapStats) {
        let sub = try Socket(.sub, context: context, linger: 0)
        defer { sub.close() }
        try sub.set(.receiveHighWaterMark(100_000))
        for topic in options.topics.isEmpty ? [""] : options.topics { try sub.subscribe(topic) }
        try sub.connect(options.connect)

        var session = TapSession(json: options.json, trackSequence: coversWholeSenders(options.topics), limits: options.limits)
        var lastHeard = ContinuousClock.now
        let silence = options.timeout.map { Duration.milliseconds(Int64(max(0, $0) * 1000)) }
        var exit = Exit.signal
        while true {
            if shutdown.isRaised { exit = .signal; break }
            if let count = options.count, session.stats.messages >= count { exit = .count; break }
            let now = ContinuousClock.now
            if let silence, now - lastHeard >= silence { exit = .timeout; break }
            // Short slices so a signal or the silence deadline is noticed promptly.
            var wait: Duration = .milliseconds(100)
            if let silence { wait = min(wait, silence - (now - lastHeard)) }
            var poller = Poller()
            poller.add(sub)
            guard try poller.poll(timeoutMilliseconds: max(1, Int(wait.nanoseconds / 1_000_000))) > 0,
                  poller.isReadable(0) else { continue }
            while true {
                if let count = options.count, session.stats.messages >= count { break }
                let frames: [[UInt8]]
                do { frames = try sub.receive(dontWait: true) } catch BusError.wouldBlock { break }
                lastHeard = .now
                for line in session.consume(frames) { emit(line) }
            }
        }
        emit(session.summary())
        return (exit, session.stats)
    }

    /// True when the prefixes pass every telemetry kind ("" or "telemetry/"), so seq gaps mean lost messages.
    public static func coversWholeSenders(_ topics: [String]) -> Bool {
        topics.isEmpty || topics.contains { TelemetryTopic.prefix.hasPrefix($0) }
    }
}
