import Foundation

/// The telemetry proxy (`fi proxy`): publishers connect to the XSUB frontend, subscribers to the XPUB
/// backend; messages flow down, subscriptions flow up. It owns one ServiceLoop; `stop()` closes both
/// sockets within their LINGER, so shutdown never hangs.
public final class TelemetryProxy: @unchecked Sendable {  // safe: sockets are loop-confined, counters behind `lock`
    /// A subscriber joined (`subscribe`) or left a topic prefix, as the XPUB reports it.
    public struct SubscriptionChange: Sendable, Equatable {
        public var subscribe: Bool
        public var prefix: String
    }

    public struct Stats: Sendable, Equatable {
        /// Messages passed from publishers to subscribers.
        public var forwarded = 0
        /// Messages dropped because a subscriber queue was full.
        public var dropped = 0
        public var subscriptions = 0
    }

    /// The bound endpoints (for `tcp://host:0`, with the port the OS chose).
    public let xsubEndpoint: String
    public let xpubEndpoint: String

    private let loop = ServiceLoop(name: "telemetry-proxy")
    private let lock = NSLock()
    private var counters = Stats()

    /// Binds both sockets; call `start()` to begin forwarding. `onSubscription` runs on the proxy's thread
    /// for every subscribe/unsubscribe (XPUB_VERBOSE: repeated subscriptions are reported and passed up too).
    public init(xsub: String, xpub: String, context: BusContext = .shared,
                onSubscription: (@Sendable (SubscriptionChange) -> Void)? = nil) throws {
        let front = try Socket(.xsub, context: context)
        let back = try Socket(.xpub, context: context)
        try back.set(.xpubVerbose(true))
        xsubEndpoint = try front.bind(xsub)
        xpubEndpoint = try back.bind(xpub)
        loop.add(front) { [weak self] _, frames in
            do {
                try back.send(frames, dontWait: true)
                self?.count { $0.forwarded += 1 }
            } catch BusError.wouldBlock {
                self?.count { $0.dropped += 1 }
            }
        }
        loop.add(back) { [weak self] _, frames in
            // Subscription messages: byte 1 = subscribe / 0 = unsubscribe, then the prefix.
            try front.send(frames, dontWait: true)
            if let f = frames.first, let flag = f.first, flag <= 1 {
                self?.count { $0.subscriptions += flag == 1 ? 1 : 0 }
                onSubscription?(SubscriptionChange(subscribe: flag == 1, prefix: String(decoding: f.dropFirst(), as: UTF8.self)))
            }
        }
    }

    deinit { loop.stop() }

    public func start() { loop.start() }

    /// Stops forwarding and closes both sockets (bounded by LINGER). Idempotent.
    public func stop() { loop.stop() }

    public var stats: Stats {
        lock.lock(); defer { lock.unlock() }
        return counters
    }

    private func count(_ update: (inout Stats) -> Void) {
        lock.lock(); defer { lock.unlock() }
        update(&counters)
    }
}

/// SIGINT/SIGTERM as a flag and a wait, for long-running commands (`fi proxy`, `fi tap`).
public final class ShutdownSignal: @unchecked Sendable {  // safe: state behind `lock`; sources only kept alive
    private let lock = NSLock()
    private var raised: Int32 = 0
    private let semaphore = DispatchSemaphore(value: 0)
    private var sources: [DispatchSourceSignal] = []

    /// A flag nothing raises but `raise(_:)` (tests).
    public init() {}

    /// Catches SIGINT and SIGTERM (their default action, exit, is replaced) for this process.
    public static func interruptOrTerminate() -> ShutdownSignal {
        let s = ShutdownSignal()
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { s.raise(sig) }
            source.resume()
            s.sources.append(source)
        }
        return s
    }

    public func raise(_ sig: Int32 = SIGTERM) {
        lock.lock()
        let first = raised == 0
        if first { raised = sig }
        lock.unlock()
        if first { semaphore.signal() }
    }

    /// The signal caught, or nil.
    public var caught: Int32? {
        lock.lock(); defer { lock.unlock() }
        return raised == 0 ? nil : raised
    }

    public var isRaised: Bool { caught != nil }

    /// Blocks until raised.
    public func wait() {
        semaphore.wait()
        semaphore.signal()  // later waiters pass too
    }
}
