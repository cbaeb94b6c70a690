import Messages

/// A link's round-trip time and throughput, estimated from timed echoes (pure: samples in, estimate out).
///
/// Every sample is (bytes sent, seconds until the echo came back); the echo itself is small. Small samples
/// estimate the base RTT; a larger one's excess over the base RTT is its serialisation time, so
/// throughput = 8·bytes / excess. An excess too small to measure (a fast link) only bounds the rate from below:
/// such a sample can raise the estimate, never lower it. Both are smoothed with weight `alpha` on the newest sample,
/// except that a rate sample more than 2× off the estimate (the link changed) replaces it.
public struct LinkEstimate: Sendable, Equatable {
    /// Smoothed base round-trip time, seconds (nil until a small sample arrived).
    public private(set) var rttSeconds: Double?
    /// Smoothed throughput, bit/s (nil until a large sample arrived).
    public private(set) var rateBitsPerSecond: Double?
    public private(set) var samples = 0
    public var alpha: Double
    /// Samples of at most this many bytes measure the base RTT.
    public var smallBytes: Int
    /// The shortest excess taken as a throughput measurement, seconds (timer and scheduling noise below it).
    public var noiseFloorSeconds: Double

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
        if excess > floor {
            let sample = Double(bytes) * 8 / excess
            if let r = rateBitsPerSecond, sample < 2 * r, sample > r / 2 {
                rateBitsPerSecond = (1 - alpha) * r + alpha * sample
            } else {
                rateBitsPerSecond = sample
            }
        } else {
            let bound = Double(bytes) * 8 / floor
            if bound > rateBitsPerSecond ?? 0 { rateBitsPerSecond = bound }
        }
    }

    /// The estimate as a heartbeat reports it (0 = not measured yet).
    public func report(peer: String) -> LinkReport {
        LinkReport(peer: peer, rttS: rttSeconds ?? 0, rateBps: rateBitsPerSecond ?? 0, samples: UInt32(min(samples, Int(UInt32.max))))
    }
}

/// Link probes to a set of peers (pure: the caller sends what `probes(now:)` returns and feeds echoes back).
///
/// Each round (one heartbeat) sends every peer a small probe (base RTT) and, unless an activation measured the
/// link since the last round, a throughput probe padded to about `targetSeconds` of the current rate estimate;
/// throughput probes to one peer are spaced so they take at most `budget` of the link.
/// Activations carry their own send time and are echoed too (`sentActivation` / `echo`), so a busy link is
/// measured by its real traffic instead of extra load.
public struct LinkProber: Sendable {
    public struct Outgoing: Sendable, Equatable {
        public var peer: String
        public var probe: Probe
    }

    private struct Pending: Sendable { var peer: String; var sentUs: UInt64; var bytes: Int }

    public private(set) var estimates: [String: LinkEstimate] = [:]
    private var pending: [UInt64: Pending] = [:]
    private var lastActivationSample: [String: UInt64] = [:]
    private var nextThroughputProbe: [String: UInt64] = [:]
    private var nextId: UInt64 = 0
    /// A throughput probe takes about this long at the estimated rate.
    public var targetSeconds = 0.02
    public var minProbeBytes = 8 << 10
    public var maxProbeBytes = 256 << 10
    /// Largest share of a link's estimated rate that throughput probes may use.
    public var budget = 0.05
    /// Echoes later than this are dropped (and forgotten), microseconds.
    public var timeoutUs: UInt64 = 10_000_000

    public init() {}

    /// Probes for one round to `peers` at monotonic time `nowUs`.
    public mutating func probes(to peers: [String], nowUs: UInt64, roundUs: UInt64) -> [Outgoing] {
        pending = pending.filter { nowUs &- $0.value.sentUs < timeoutUs }
        var out: [Outgoing] = []
        for peer in peers {
            out.append(outgoing(peer, nowUs: nowUs, padding: 0))
            let recent = lastActivationSample[peer].map { nowUs &- $0 < roundUs } ?? false
            if !recent, nowUs >= nextThroughputProbe[peer] ?? 0 {
                let rate = estimates[peer]?.rateBitsPerSecond ?? 0
                let size = min(max(rate > 0 ? Int(rate * targetSeconds / 8) : minProbeBytes * 2, minProbeBytes), maxProbeBytes)
                out.append(outgoing(peer, nowUs: nowUs, padding: size))
                if rate > 0 { nextThroughputProbe[peer] = nowUs + UInt64(Double(size) * 8 / (rate * budget) * 1e6) }
            }
        }
        return out
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
            lastActivationSample[peer] = nowUs
        } else {
            guard let p = pending[probe.id], p.peer == peer else { return }
            pending.removeValue(forKey: probe.id)
            sentUs = p.sentUs
            bytes = p.bytes
        }
        estimates[peer, default: LinkEstimate()].add(bytes: bytes, rttSeconds: Double(nowUs - sentUs) / 1e6)
    }

    /// Stops probing a peer that left.
    public mutating func forget(_ peer: String) {
        estimates.removeValue(forKey: peer)
        lastActivationSample.removeValue(forKey: peer)
        nextThroughputProbe.removeValue(forKey: peer)
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
