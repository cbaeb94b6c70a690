import Messages
import Stage

/// The router's live picture of the deployment, built only from what nodes report (pure: reports and times in,
/// a NetworkView out).
///
/// - A node's compute speed is what it measured (`NodeLoad.flops_measured`), its claimed FLOP/s until then; its load
///   is the busy fraction it reported, except that work of sessions the router has since released no longer counts
///   (the report predates their end).
/// - A link a → b is what a measured with probes (latency = RTT/2, throughput); without a measurement, a device's
///   radio report gives the rate of its access link (both directions); otherwise the default link. Reports older than
///   `staleAfter` seconds are dropped.
/// - Links set by hand (`manualLinks`, benchmarks with emulated links) override everything.
public struct LiveView: Sendable {
    public struct NodeRecord: Sendable {
        public var state: NodeState
        /// FLOP/s the node claims at registration.
        public var claimedFlops: Double
        public var live: NodeLoad?
        public var reportedAt: Double?
        public var lastReleaseAt: Double = -.infinity
    }

    struct LinkRecord: Sendable {
        var report: LinkReport
        var at: Double
    }

    public var defaultLink: LinkProfile
    public var staleAfter: Double
    public var manualLinks: [String: LinkProfile] = [:]
    public private(set) var nodes: [String: NodeRecord] = [:]
    /// Probe estimates and radio reports, keyed NetworkView.key(sender, peer).
    private var links: [String: LinkRecord] = [:]
    private var radioLinks: [String: LinkRecord] = [:]

    public init(defaultLink: LinkProfile, staleAfter: Double) { self.defaultLink = defaultLink; self.staleAfter = staleAfter }

    public mutating func register(_ id: String, role: NodeRole, flops: Double, maxLayers: Int) {
        if var r = nodes[id] {
            r.claimedFlops = flops
            r.state.maxLayers = maxLayers
            if r.live?.flopsMeasured ?? 0 <= 0 { r.state.flops = flops }
            nodes[id] = r
        } else {
            nodes[id] = NodeRecord(state: NodeState(id: id, role: role, flops: flops, maxLayers: maxLayers), claimedFlops: flops)
        }
    }

    public mutating func remove(_ id: String) {
        nodes.removeValue(forKey: id)
        links = links.filter { !$0.key.hasPrefix(id + "->") }
        radioLinks = radioLinks.filter { !$0.key.hasPrefix(id + "->") }
    }

    /// A heartbeat from a registered node at `now` (seconds).
    public mutating func heartbeat(from id: String, _ h: Heartbeat, now: Double) {
        guard var r = nodes[id] else { return }
        if let live = h.live {
            r.live = live
            if live.flopsMeasured > 0 { r.state.flops = live.flopsMeasured }
            r.state.maxSessions = Int(live.maxSessions)
        }
        r.state.load = min(max(h.live?.busy ?? h.load, 0), 1)
        r.reportedAt = now
        nodes[id] = r
        for l in h.links where !l.peer.isEmpty && l.peer != id {
            if l.radio { radioLinks[NetworkView.key(id, l.peer)] = LinkRecord(report: l, at: now) } else { links[NetworkView.key(id, l.peer)] = LinkRecord(report: l, at: now) }
        }
    }

    /// The router released a session that ran on `id` at `now`.
    public mutating func released(on id: String, now: Double) { nodes[id]?.lastReleaseAt = now }

    /// The planner's view at `now`; `active` counts the router's open sessions per node (admission and load).
    public func view(now: Double, active: [String: Int] = [:]) -> NetworkView {
        let states = nodes.values.map { r -> NodeState in
            var s = r.state
            s.activeSessions = active[s.id] ?? 0
            // The busy fraction came from sessions that have all ended since.
            if s.activeSessions == 0, let at = r.reportedAt, r.lastReleaseAt >= at { s.load = 0 }
            return s
        }.sorted { $0.id < $1.id }
        var table: [String: LinkProfile] = [:]
        for (key, rec) in links where now - rec.at <= staleAfter && (rec.report.rttS > 0 || rec.report.rateBps > 0) {
            table[key] = LinkProfile(rateBps: rec.report.rateBps > 0 ? rec.report.rateBps : .nan,
                                     latencySeconds: rec.report.rttS > 0 ? rec.report.rttS / 2 : defaultLink.latencySeconds)
        }
        var radio: [String: Double] = [:]
        for (key, rec) in radioLinks where now - rec.at <= staleAfter {
            let ends = key.components(separatedBy: "->")
            if rec.report.rateBps > 0 { radio[key] = rec.report.rateBps }
            if rec.report.reverseRateBps > 0, ends.count == 2 { radio[NetworkView.key(ends[1], ends[0])] = rec.report.reverseRateBps }
        }
        // Rates nobody measured: the radio model's, else the default.
        for (key, rate) in radio where table[key]?.rateBps.isNaN ?? true {
            table[key] = LinkProfile(rateBps: rate, latencySeconds: table[key]?.latencySeconds ?? defaultLink.latencySeconds)
        }
        for (key, l) in table where l.rateBps.isNaN { table[key]?.rateBps = defaultLink.rateBps }
        for (key, l) in manualLinks { table[key] = l }
        return NetworkView(nodes: states, links: table, defaultLink: defaultLink)
    }
}
