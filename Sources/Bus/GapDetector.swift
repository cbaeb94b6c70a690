/// Per-sender sequence tracking for a subscriber: each sender numbers its messages 1, 2, 3, ...
/// (Envelope.seq), so a jump forward means lost messages, and a step back means a duplicate,
/// a late (reordered) message, or a restarted sender. Pure: the caller feeds (sender, seq).
public struct GapDetector: Sendable {
    public enum Observation: Sendable, Equatable {
        /// First message heard from this sender. Earlier ones (a late-joining tap) are not counted as lost.
        case first
        case inOrder
        /// The seqs in `missing` were skipped.
        case gap(missing: ClosedRange<UInt64>)
        /// Fills a hole reported earlier as a gap: it arrived out of order.
        case late
        /// This seq was already seen.
        case duplicate
        /// seq went back to 1 while 1 had been seen: the sender restarted; tracking starts over.
        case restart
        /// seq 0: the sender does not number its messages; not tracked.
        case unnumbered
    }

    public struct SenderStats: Sendable, Equatable {
        public var received = 0
        /// Jumps forward.
        public var gaps = 0
        /// Messages still missing (a late arrival takes one back).
        public var lost: UInt64 = 0
        public var late = 0
        public var duplicates = 0
        public var restarts = 0
        /// Highest seq seen.
        public var lastSeq: UInt64 = 0

        public init() {}
    }

    private struct State {
        var stats = SenderStats()
        /// Holes not yet filled, oldest first; bounded by `maxTrackedHoles`.
        var holes: [ClosedRange<UInt64>] = []
    }

    /// Holes remembered per sender, so a late arrival is told from a duplicate. Older holes are
    /// forgotten (a message filling one is then reported as a duplicate); memory stays bounded.
    public let maxTrackedHoles: Int
    private var senders: [String: State] = [:]

    public init(maxTrackedHoles: Int = 64) {
        self.maxTrackedHoles = max(1, maxTrackedHoles)
    }

    public mutating func observe(sender: String, seq: UInt64) -> Observation {
        guard seq != 0 else { return .unnumbered }
        guard var state = senders[sender] else {
            var s = State()
            s.stats.received = 1
            s.stats.lastSeq = seq
            senders[sender] = s
            return .first
        }
        defer { senders[sender] = state }
        state.stats.received += 1
        let last = state.stats.lastSeq
        if seq > last {
            state.stats.lastSeq = seq
            guard seq - last > 1 else { return .inOrder }
            let missing = (last + 1)...(seq - 1)
            state.stats.gaps += 1
            let (sum, overflow) = state.stats.lost.addingReportingOverflow(seq - last - 1)
            state.stats.lost = overflow ? .max : sum  // a hostile seq cannot trap
            state.holes.append(missing)
            if state.holes.count > maxTrackedHoles { state.holes.removeFirst(state.holes.count - maxTrackedHoles) }
            return .gap(missing: missing)
        }
        if let i = state.holes.firstIndex(where: { $0.contains(seq) }) {
            let hole = state.holes[i]
            var pieces: [ClosedRange<UInt64>] = []
            if hole.lowerBound < seq { pieces.append(hole.lowerBound...(seq - 1)) }
            if seq < hole.upperBound { pieces.append((seq + 1)...hole.upperBound) }
            state.holes.replaceSubrange(i...i, with: pieces)
            if state.stats.lost > 0 { state.stats.lost -= 1 }
            state.stats.late += 1
            return .late
        }
        if seq == 1 {
            let received = state.stats.received, restarts = state.stats.restarts + 1
            state = State()
            state.stats.received = received
            state.stats.restarts = restarts
            state.stats.lastSeq = 1
            return .restart
        }
        state.stats.duplicates += 1
        return .duplicate
    }

    public func stats(for sender: String) -> SenderStats? { senders[sender]?.stats }

    /// Every sender heard so far.
    public var allStats: [String: SenderStats] { senders.mapValues(\.stats) }

    /// Holes still open for `sender`, oldest first.
    public func holes(for sender: String) -> [ClosedRange<UInt64>] { senders[sender]?.holes ?? [] }
}
