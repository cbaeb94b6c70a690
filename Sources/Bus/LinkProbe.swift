import Messages

/// A link's round-trip time and throughput, estimated from timed echoes (pure: samples in, estimate out).
///
/// Every sample is (bytes sent, seconds until the echo came back); the echo itself is small. Small samples
/// estimate the base RTT; a larger one's excess over the base RTT is its serialisation time, so
/// throughput = 8·bytes / excess. An excess too small to measure (a fast link) only bounds the rate from below:
/// such a sample can raise the estimate, never lower it, and only for a transfer of at least `minBoundBytes` (a
/// shaped link lets a small message through in its token bucket's burst, which says nothing of its rate). Both are
/// smoothed with weight `alpha` on the newest sample, except that two rate samples in a row more than 2× off the
/// estimate on the same side (the link changed, not one sample delayed by a busy host) replace it.
public struct LinkEstimate: Sendable, Equatable {
    /// Smoothed base round-trip time, seconds (nil until a small sample arrived).
    public private(set) var rttSeconds: Double?
    /// Smoothed throughput, bit/s (nil until a large sample arrived).
    public private(set) var rateBitsPerSecond: Double?
    public private(set) var samples = 0
    /// Whether the newest sample of a large transfer was timed (not just a lower bound).
    public private(set) var lastTimed = false
    /// The previous rate sample when it was more than 2× off the estimate (waiting for a second to confirm).
    private var outlier: Double?
    public var alpha: Double
    /// Samples of at most this many bytes measure the base RTT.
    public var smallBytes: Int
    /// The shortest excess taken as a throughput measurement, seconds (timer and scheduling noise below it).
    public var noiseFloorSeconds: Double
    /// The smallest transfer whose quick echo raises the estimate.
    public var minBoundBytes = 8 << 10

    public init(alpha: Double = 0.5, smallBytes: Int = 256, noiseFloorSeconds: Double = 0.0005) {
        self.alpha = alpha; self.smallBytes = smallBytes; self.noiseFloorSeconds = noiseFloorSeconds
    }

    public mutating func add(bytes: Int, rttSeconds rtt: Double) {
        guard rtt.isFinite, rtt >= 0, bytes >= 0 else { return }
        samples += 1
        if bytes <= smallBytes {
            rttSeconds = rttSeconds.map { (1 - alpha) * $0 + alpha * rtt } ?? rtt
            return
        }
        guard let base = rttSeconds else { return }  // no base yet: the excess is unknown
        let floor = max(noiseFloorSeconds, 0.1 * base)
        let excess = rtt - base
        lastTimed = excess > floor
        if excess > floor {
            let sample = Double(bytes) * 8 / excess
            guard let r = rateBitsPerSecond else { rateBitsPerSecond = sample; return }
            if sample < 2 * r, sample > r / 2 {
                rateBitsPerSecond = (1 - alpha) * r + alpha * sample
                outlier = nil
            } else if let o = outlier, (o < r) == (sample < r) {
                rateBitsPerSecond = sample  // confirmed: the link changed
                outlier = nil
            } else {
                outlier = sample
            }
        } else if bytes >= minBoundBytes {
            let bound = Double(bytes) * 8 / floor
            if bound > rateBitsPerSecond ?? 0 { rateBitsPerSecond = bound }
        }
    }

    /// A transfer of `bytes` has taken `seconds` and still no echo: the rate is at most 8·bytes / (seconds − base RTT).
    /// A bound under half the estimate (the link slowed down, or a queue built up) becomes the estimate at once,
    /// without waiting for the echo. (The prober asks only after a whole round, with the echoes received so far
    /// processed, so a host that was merely busy does not look like a cut link.)
    public mutating func cap(bytes: Int, outstandingSeconds seconds: Double) {
        guard let rate = rateBitsPerSecond else { return }
        let excess = seconds - (rttSeconds ?? 0)
        guard excess > noiseFloorSeconds else { return }
        let bound = Double(bytes) * 8 / excess
        if bound < rate / 2 { rateBitsPerSecond = bound }
    }

    /// The estimate as a heartbeat reports it (0 = not measured yet).
    public func report(peer: String) -> LinkReport {
        LinkReport(peer: peer, rttS: rttSeconds ?? 0, rateBps: rateBitsPerSecond ?? 0, samples: UInt32(min(samples, Int(UInt32.max))))
    }
}

/// Link probes to a set of peers (pure: the caller sends what `probes(now:)` returns and feeds echoes back).
///
/// Each round (one heartbeat) sends every peer a small probe (base RTT) and, unless an activation timed the link's
/// throughput since the last round (one too small to time does not count), a throughput probe padded to about `targetSeconds` of the current rate estimate;
/// throughput probes to one peer are spaced so they take at most `budget` of the link.
/// Activations carry their own send time and are echoed too (`sentActivation` / `echo`), so a busy link is
/// measured by its real traffic instead of extra load. Each round also looks at transfers still unanswered: one
/// that has taken far longer than the estimate allows lowers the estimate at once (`LinkEstimate.cap`), so a link
/// that was cut is seen within a round even while a large transfer is stuck in its queue.
public struct LinkProber: Sendable {
    public struct Outgoing: Sendable, Equatable {
        public var peer: String
        public var probe: Probe
    }

    private struct Pending: Sendable { var peer: String; var sentUs: UInt64; var bytes: Int }

    public private(set) var estimates: [String: LinkEstimate] = [:]
    private var pending: [UInt64: Pending] = [:]
    /// Activations sent with a probe stamp and not echoed yet: bytes by send time, per peer.
    private var activations: [String: [UInt64: Int]] = [:]
    private var lastActivationSample: [String: UInt64] = [:]
    private var nextThroughputProbe: [String: UInt64] = [:]
    private var nextId: UInt64 = 0
    /// A throughput probe takes about this long at the estimated rate.
    public var targetSeconds = 0.01
    public var minProbeBytes = 8 << 10
    public var maxProbeBytes = 256 << 10
    /// Largest share of a link's estimated rate that throughput probes may use.
    public var budget = 0.05
    /// Yet a link is probed again after at most this many rounds, so a link that has recovered is seen.
    public var maxRoundsBetweenProbes: UInt64 = 10
    /// Echoes later than this are dropped (and forgotten), microseconds.
    public var timeoutUs: UInt64 = 10_000_000

    public init() {}

    /// Probes for one round to `peers` at monotonic time `nowUs`.
    public mutating func probes(to peers: [String], nowUs: UInt64, roundUs: UInt64) -> [Outgoing] {
        pending = pending.filter { nowUs &- $0.value.sentUs < timeoutUs }
        for (peer, sent) in activations { activations[peer] = sent.filter { nowUs &- $0.key < timeoutUs } }
        capOverdue(nowUs: nowUs, roundUs: roundUs)
        var out: [Outgoing] = []
        for peer in peers {
            out.append(outgoing(peer, nowUs: nowUs, padding: 0))
            let recent = lastActivationSample[peer].map { nowUs &- $0 < roundUs } ?? false
            let probing = pending.values.contains { $0.peer == peer && $0.bytes > LinkEstimate().smallBytes }
            if !recent, !probing, nowUs >= nextThroughputProbe[peer] ?? 0 {
                let rate = estimates[peer]?.rateBitsPerSecond ?? 0
                let size = min(max(rate > 0 ? Int(rate * targetSeconds / 8) : minProbeBytes * 2, minProbeBytes), maxProbeBytes)
                out.append(outgoing(peer, nowUs: nowUs, padding: size))
                if rate > 0 {
                    let spacing = min(Double(size) * 8 / (rate * budget) * 1e6, Double(maxRoundsBetweenProbes * roundUs))
                    nextThroughputProbe[peer] = nowUs + UInt64(spacing)
                }
            }
        }
        return out
    }

    /// Unanswered transfers, older than a round, that bound their link's rate below half its estimate lower it.
    private mutating func capOverdue(nowUs: UInt64, roundUs: UInt64) {
        var oldest: [String: (bytes: Int, seconds: Double)] = [:]
        func consider(_ peer: String, _ sentUs: UInt64, _ bytes: Int) {
            guard nowUs &- sentUs >= roundUs else { return }
            let seconds = Double(nowUs &- sentUs) / 1e6
            let bound = Double(bytes) * 8 / seconds
            if bound < oldest[peer].map({ Double($0.bytes) * 8 / $0.seconds }) ?? .infinity { oldest[peer] = (bytes, seconds) }
        }
        for p in pending.values where p.bytes > LinkEstimate().smallBytes { consider(p.peer, p.sentUs, p.bytes) }
        for (peer, sent) in activations { for (sentUs, bytes) in sent { consider(peer, sentUs, bytes) } }
        for (peer, o) in oldest { estimates[peer]?.cap(bytes: o.bytes, outstandingSeconds: o.seconds) }
    }

    /// An activation carrying a probe stamp went to `peer` (its echo comes back with id 0).
    public mutating func sentActivation(to peer: String, sentUs: UInt64, bytes: Int) {
        activations[peer, default: [:]][sentUs] = bytes
    }

    private mutating func outgoing(_ peer: String, nowUs: UInt64, padding: Int) -> Outgoing {
        nextId += 1
        let bytes = padding + 64  // envelope header and probe fields
        pending[nextId] = Pending(peer: peer, sentUs: nowUs, bytes: bytes)
        return Outgoing(peer: peer, probe: Probe(id: nextId, sentUs: nowUs, size: UInt32(bytes), padding: [UInt8](repeating: 0, count: padding)))
    }

    /// An echo came back at `nowUs`. Probe echoes must match one we sent; an activation's echo (id 0) carries its
    /// own send time and size and counts for `peer`.
    public mutating func echo(_ probe: Probe, from peer: String, nowUs: UInt64) {
        let sentUs: UInt64, bytes: Int
        if probe.id == 0 {
            guard probe.sentUs > 0, probe.sentUs <= nowUs else { return }
            sentUs = probe.sentUs
            bytes = Int(probe.size)
            activations[peer]?.removeValue(forKey: sentUs)
        } else {
            guard let p = pending[probe.id], p.peer == peer else { return }
            pending.removeValue(forKey: probe.id)
            sentUs = p.sentUs
            bytes = p.bytes
        }
        estimates[peer, default: LinkEstimate()].add(bytes: bytes, rttSeconds: Double(nowUs - sentUs) / 1e6)
        if probe.id == 0, estimates[peer]?.lastTimed == true { lastActivationSample[peer] = nowUs }
    }

    /// Stops probing a peer that left.
    public mutating func forget(_ peer: String) {
        estimates.removeValue(forKey: peer)
        lastActivationSample.removeValue(forKey: peer)
        nextThroughputProbe.removeValue(forKey: peer)
        activations.removeValue(forKey: peer)
        pending = pending.filter { $0.value.peer != peer }
    }

    /// One report per measured peer, sorted by peer id.
    public func reports() -> [LinkReport] {
        estimates.keys.sorted().compactMap { k in
            let e = estimates[k]!
            return e.samples > 0 ? e.report(peer: k) : nil
        }
    }
}
