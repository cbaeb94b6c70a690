import CMessages

// Live state (issue 16): what stage nodes and devices measure and send with every heartbeat, and link probes.

/// A node's own compute over the last window.
public struct NodeLoad: Sendable, Equatable {
    /// Fraction of the window the node's compute was busy, 0...1.
    public var busy: Double
    /// Calls waiting for compute when reported.
    public var queue: UInt32
    /// FLOP/s the node's compute achieved (smoothed); 0 = not measured yet.
    public var flopsMeasured: Double
    /// Sessions holding KV caches.
    public var sessions: UInt32
    /// Admission limit; 0 = none.
    public var maxSessions: UInt32
    /// Length of the window `busy` covers, seconds.
    public var windowS: Double

    public init(busy: Double = 0, queue: UInt32 = 0, flopsMeasured: Double = 0, sessions: UInt32 = 0, maxSessions: UInt32 = 0,
                windowS: Double = 0) {
        self.busy = busy; self.queue = queue; self.flopsMeasured = flopsMeasured; self.sessions = sessions
        self.maxSessions = maxSessions; self.windowS = windowS
    }

    init(c: UnsafeMutablePointer<Fi__V1__NodeLoad>) {
        let m = c.pointee
        self.init(busy: m.busy, queue: m.queue, flopsMeasured: m.flops_measured, sessions: m.sessions, maxSessions: m.max_sessions,
                  windowS: m.window_s)
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__NodeLoad> {
        let p: UnsafeMutablePointer<Fi__V1__NodeLoad> = arena.message(fi__v1__node_load__init)
        p.pointee.busy = busy; p.pointee.queue = queue; p.pointee.flops_measured = flopsMeasured
        p.pointee.sessions = sessions; p.pointee.max_sessions = maxSessions; p.pointee.window_s = windowS
        return p
    }
}

/// One directed link as its sender sees it (sender → peer): a probe estimate, or the radio model's state.
public struct LinkReport: Sendable, Equatable {
    public var peer: String
    /// Smoothed round-trip time, seconds; 0 = not measured yet.
    public var rttS: Double
    /// Smoothed throughput sender → peer, bit/s; 0 = not measured yet.
    public var rateBps: Double
    /// Radio links: SNR of the scenario's channel model, dB.
    public var snrDb: Double
    /// True: the channel model at the current time, not a probe.
    public var radio: Bool
    public var samples: UInt32
    /// Radio: the channel model's rate peer → sender, bit/s.
    public var reverseRateBps: Double

    public init(peer: String, rttS: Double = 0, rateBps: Double = 0, snrDb: Double = 0, radio: Bool = false, samples: UInt32 = 0,
                reverseRateBps: Double = 0) {
        self.peer = peer; self.rttS = rttS; self.rateBps = rateBps; self.snrDb = snrDb; self.radio = radio; self.samples = samples
        self.reverseRateBps = reverseRateBps
    }

    init(c: UnsafeMutablePointer<Fi__V1__LinkReport>) {
        let m = c.pointee
        self.init(peer: readString(m.peer), rttS: m.rtt_s, rateBps: m.rate_bps, snrDb: m.snr_db, radio: m.radio != 0, samples: m.samples,
                  reverseRateBps: m.reverse_rate_bps)
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__LinkReport> {
        let p: UnsafeMutablePointer<Fi__V1__LinkReport> = arena.message(fi__v1__link_report__init)
        p.pointee.peer = arena.string(peer); p.pointee.rtt_s = rttS; p.pointee.rate_bps = rateBps
        p.pointee.snr_db = snrDb; p.pointee.radio = radio ? 1 : 0; p.pointee.samples = samples
        p.pointee.reverse_rate_bps = reverseRateBps
        return p
    }
}

/// A link probe; the receiver echoes it at once with `echo` set and the same id, sentUs and size.
public struct Probe: Sendable, Equatable {
    public var id: UInt64
    /// The sender's monotonic clock in microseconds; only the sender reads it.
    public var sentUs: UInt64
    /// Bytes of the probe message as sent (all frames).
    public var size: UInt32
    public var echo: Bool
    /// Filler bytes of a throughput probe.
    public var padding: [UInt8]

    public init(id: UInt64, sentUs: UInt64, size: UInt32 = 0, echo: Bool = false, padding: [UInt8] = []) {
        self.id = id; self.sentUs = sentUs; self.size = size; self.echo = echo; self.padding = padding
    }

    init(c: UnsafeMutablePointer<Fi__V1__Probe>) {
        let m = c.pointee
        self.init(id: m.id, sentUs: m.sent_us, size: m.size, echo: m.echo != 0, padding: readBytes(m.padding))
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__Probe> {
        let p: UnsafeMutablePointer<Fi__V1__Probe> = arena.message(fi__v1__probe__init)
        p.pointee.id = id; p.pointee.sent_us = sentUs; p.pointee.size = size; p.pointee.echo = echo ? 1 : 0
        p.pointee.padding = arena.bytes(padding)
        return p
    }
}
