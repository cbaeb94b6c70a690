/// What a stage node measures about its own compute (pure: times in, figures out).
///
/// - compute speed: FLOPs per second of compute time, smoothed over calls, so it includes whatever slows this
///   node (other processes, or the emulated background load of `--load`);
/// - busy fraction: how much of the last `window` seconds the compute ran for sessions that are still open. Work
///   of a session that has ended no longer counts: a router planning the next request must not see the load of
///   the one that just finished as if it were still there.
public struct LoadMeter: Sendable {
    public var window: Double
    public var alpha: Double
    private var intervals: [(start: Double, end: Double, sessions: Set<String>)] = []
    public private(set) var flopsPerSecond: Double?
    /// The previous speed sample when it was more than 2× off (waiting for a second to confirm).
    private var outlier: Double?

    public init(window: Double = 1, alpha: Double = 0.3) { self.window = window; self.alpha = alpha }

    /// One compute call for `sessions` that did `flops` between `start` and `end` (seconds, any monotonic clock).
    /// A call for no session (a speed probe) measures the speed but is not load.
    public mutating func record(start: Double, end: Double, flops: Double, sessions: Set<String>) {
        guard end >= start else { return }
        if end > start, flops > 0 {
            let sample = flops / (end - start)
            // Two samples in a row more than 2× off on the same side (a load change, not one call that waited for a
            // busy CPU) replace the estimate instead of creeping towards it.
            if let f = flopsPerSecond {
                if sample < 2 * f, sample > f / 2 {
                    flopsPerSecond = (1 - alpha) * f + alpha * sample
                    outlier = nil
                } else if let o = outlier, (o < f) == (sample < f) {
                    flopsPerSecond = sample
                    outlier = nil
                } else {
                    outlier = sample
                }
            } else {
                flopsPerSecond = sample
            }
        }
        if !sessions.isEmpty { intervals.append((start, end, sessions)) }
        prune(before: end - window)
    }

    /// A session ended: its work stops counting as load.
    public mutating func release(session: String) {
        for i in intervals.indices { intervals[i].sessions.remove(session) }
        intervals.removeAll { $0.sessions.isEmpty }
    }

    /// Fraction of (now − window, now] computing for open sessions; a call running since `runningSince` counts too.
    public mutating func busy(now: Double, runningSince: Double? = nil) -> Double {
        prune(before: now - window)
        let from = now - window
        var total = 0.0
        for i in intervals { total += max(0, min(i.end, now) - max(i.start, from)) }
        if let s = runningSince { total += max(0, now - max(s, from)) }
        return min(1, max(0, total / window))
    }

    private mutating func prune(before t: Double) {
        intervals.removeAll { $0.end <= t }
    }
}
