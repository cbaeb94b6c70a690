import Engine
import Messages
import Stage

/// The kinds of plan the router chooses between.
public enum PlanKind: String, Sendable, CaseIterable, Codable {
    case local, cloud, vertical, horizontal
    case multiAccess = "multi-access"
}

/// A way to run one request. Chain kinds: `stages` in order (the first embeds, the last runs the head).
/// Multi-access: `stages[0]` is the requester (embed, head, residual sums), the rest are head/column shares
/// of every block (share ranges in units of heads).
public struct InferencePlan: Sendable, Equatable {
    public var kind: PlanKind
    public var requester: String
    public var stages: [Messages.Stage]
    public var expectedSeconds: Double

    public init(kind: PlanKind, requester: String, stages: [Messages.Stage], expectedSeconds: Double = 0) {
        self.kind = kind; self.requester = requester; self.stages = stages; self.expectedSeconds = expectedSeconds
    }

    public var nodeIds: [String] { stages.map(\.nodeId) }

    /// e.g. "vertical d0[0,2)+e0[2,6)+c0[6,8)".
    public var summary: String {
        let parts = stages.map { s in
            s.shareEnd > s.shareBegin ? "\(s.nodeId){heads \(s.shareBegin)..<\(s.shareEnd)}" : "\(s.nodeId)[\(s.layerBegin),\(s.layerEnd))"
        }
        return "\(kind.rawValue) " + parts.joined(separator: "+")
    }
}

/// How many tokens a request feeds and produces: the planner's cost is the sum over the prefill and decode steps.
public struct PlanRequest: Sendable, Equatable {
    public var device: String
    public var promptTokens: Int
    public var newTokens: Int
    public init(device: String, promptTokens: Int, newTokens: Int) {
        self.device = device; self.promptTokens = promptTokens; self.newTokens = max(1, newTokens)
    }

    /// (new tokens T, keys Tk) of every forward pass: the prefill, then one per decoded token.
    var steps: [(T: Int, Tk: Int)] {
        [(promptTokens, promptTokens)] + (0..<(newTokens - 1)).map { (1, promptTokens + 1 + $0) }
    }
}

/// How activations travel between the stages of a chain plan.
public enum Forwarding: String, Sendable, CaseIterable, Codable {
    /// Stage to stage along the plan; the last stage draws the token and feeds it to the first.
    case direct
    /// Every hop through the router, which also draws the token (kept for comparison).
    case hub
}

/// Builds the candidate plans and their expected latency from the cost model. Pure: no sockets, no clocks.
public struct Planner: Sendable {
    public var cost: ComputeCost
    /// Fixed cost of one stage visit (messages through the bus and thread hand-offs).
    public var stageOverheadSeconds: Double
    public var forwarding: Forwarding

    public init(cost: ComputeCost, stageOverheadSeconds: Double = 0.0004, forwarding: Forwarding = .direct) {
        self.cost = cost; self.stageOverheadSeconds = stageOverheadSeconds; self.forwarding = forwarding
    }

    var L: Int { cost.config.layers }

    /// The best plan of each kind that is possible, cheapest first; nodes at their session limit take no part.
    public func candidates(_ view: NetworkView, _ req: PlanRequest) -> [InferencePlan] {
        var admitting = view
        admitting.nodes = view.nodes.filter(\.admits)
        return candidatesIgnoringAdmission(admitting, req)
    }

    /// The candidates as if every node took another session (tells "full" from "impossible").
    public func candidatesIgnoringAdmission(_ view: NetworkView, _ req: PlanRequest) -> [InferencePlan] {
        var out: [InferencePlan] = []
        let device = view.node(req.device).flatMap { $0.role == .device ? $0 : nil }
        if let d = device { out.append(chainPlan(.local, [(d.id, 0, L)], view, req)) }
        let clouds = view.nodes.filter { $0.role == .cloud }
        if let best = clouds.map({ chainPlan(.cloud, [($0.id, 0, L)], view, req) }).min(by: { $0.expectedSeconds < $1.expectedSeconds }) {
            out.append(best)
        }
        if let v = vertical(view, req, device: device) { out.append(v) }
        if let h = horizontal(view, req) { out.append(h) }
        if device != nil, let m = multiAccess(view, req) { out.append(m) }
        return out.filter { $0.expectedSeconds.isFinite }.sorted { $0.expectedSeconds < $1.expectedSeconds }
    }

    public func best(_ view: NetworkView, _ req: PlanRequest) -> InferencePlan? { candidates(view, req).first }

    // MARK: chains

    /// A chain over (node, begin, end) ranges covering 0..<L; empty ranges are dropped.
    public func chainPlan(_ kind: PlanKind, _ ranges: [(String, Int, Int)], _ view: NetworkView, _ req: PlanRequest) -> InferencePlan {
        let kept = ranges.filter { $0.2 > $0.1 }
        let stages = kept.enumerated().map { i, r in
            Messages.Stage(nodeId: r.0, layerBegin: UInt32(r.1), layerEnd: UInt32(r.2), embed: i == 0, head: i == kept.count - 1)
        }
        var plan = InferencePlan(kind: kind, requester: req.device, stages: stages)
        plan.expectedSeconds = expectedSeconds(plan, view, req)
        return plan
    }

    /// Expected wall time of the whole generation under this plan.
    /// Hub: every pass starts at the requester (tokens in) and ends there (logits back). Direct: the prompt comes from
    /// the requester, each later pass starts from the token the last stage feeds back to the first, and only the
    /// final token's trip to the requester adds (the others travel while the next pass runs).
    public func expectedSeconds(_ plan: InferencePlan, _ view: NetworkView, _ req: PlanRequest) -> Double {
        var total = 0.0
        guard plan.kind != .multiAccess else {
            for (T, Tk) in req.steps { total += multiAccessStep(plan, view, T: T, Tk: Tk) }
            return total
        }
        guard let last = plan.stages.last?.nodeId else { return .infinity }
        for (i, (T, Tk)) in req.steps.enumerated() {
            let from = forwarding == .direct && i > 0 ? last : plan.requester
            total += chainStep(plan, view, T: T, Tk: Tk, from: from)
            if forwarding == .hub { total += view.link(last, plan.requester).seconds(bytes: cost.logitBytes) }
        }
        if forwarding == .direct { total += view.link(last, plan.requester).seconds(bytes: cost.tokenBytes(tokens: 1)) }
        return total
    }

    /// One forward pass along the chain, its input starting at `from`.
    func chainStep(_ plan: InferencePlan, _ view: NetworkView, T: Int, Tk: Int, from: String) -> Double {
        var t = 0.0
        var holder = from
        for s in plan.stages {
            guard let n = view.node(s.nodeId), n.holds(Double(s.layerEnd - s.layerBegin)) else { return .infinity }
            let bytes = s.embed ? cost.tokenBytes(tokens: T) : cost.activationBytes(tokens: T)
            t += view.link(holder, n.id).seconds(bytes: bytes) + stageOverheadSeconds
            t += cost.stageFlops(layers: Int(s.layerEnd - s.layerBegin), embed: s.embed, head: s.head, tokens: T, keys: Tk) / n.effectiveFlops
            holder = n.id
        }
        return t
    }

    /// Device → edge → cloud with split points i ≤ j by exhaustive search (O(L²) per edge/cloud pair).
    /// Needs at least two tiers, or the edge alone (single device/cloud plans are the baselines).
    func vertical(_ view: NetworkView, _ req: PlanRequest, device: NodeState?) -> InferencePlan? {
        let edges = view.nodes.filter { $0.role == .edge }, clouds = view.nodes.filter { $0.role == .cloud }
        var best: InferencePlan?
        let maxI = device == nil ? 0 : L
        for e in [nil] + edges.map(Optional.some) {
            for c in [nil] + clouds.map(Optional.some) {
                for i in 0...maxI {
                    for j in i...L {
                        let ranges = [(req.device, 0, i), (e?.id ?? "", i, j), (c?.id ?? "", j, L)]
                        let used = ranges.filter { $0.2 > $0.1 }
                        guard used.allSatisfy({ !$0.0.isEmpty }) else { continue }
                        guard used.count >= 2 || (used.count == 1 && e != nil && used[0].0 == e!.id) else { continue }
                        let p = chainPlan(.vertical, ranges, view, req)
                        if p.expectedSeconds < best?.expectedSeconds ?? .infinity { best = p }
                    }
                }
            }
        }
        return best
    }

    /// Petals-style chain of peer devices: shortest path over (layer boundary, node holding the output),
    /// each hop weighted by its link transfer and the node's compute at its load, summed over the generation.
    func horizontal(_ view: NetworkView, _ req: PlanRequest) -> InferencePlan? {
        let peers = view.nodes.filter { $0.role == .device }
        guard peers.count >= 2 || (peers.count == 1 && peers[0].id != req.device) else { return nil }
        let steps = req.steps
        // dist[b][k]: cheapest way to have blocks 0..<b done with the output on peers[k] (b ≥ 1).
        var dist = [[Double]](repeating: [Double](repeating: .infinity, count: peers.count), count: L + 1)
        var from = [[(Int, Int)?]](repeating: [(Int, Int)?](repeating: nil, count: peers.count), count: L + 1)
        func hop(_ src: String, _ v: NodeState, _ b0: Int, _ b1: Int) -> Double {
            guard v.holds(Double(b1 - b0)) else { return .infinity }
            var t = 0.0
            for (T, Tk) in steps {
                let bytes = b0 == 0 ? cost.tokenBytes(tokens: T) : cost.activationBytes(tokens: T)
                t += view.link(src, v.id).seconds(bytes: bytes) + stageOverheadSeconds
                t += cost.stageFlops(layers: b1 - b0, embed: b0 == 0, head: b1 == L, tokens: T, keys: Tk) / v.effectiveFlops
                if b1 == L { t += view.link(v.id, req.device).seconds(bytes: cost.logitBytes) }
            }
            return t
        }
        for b1 in 1...L {
            for (k, v) in peers.enumerated() {
                let start = hop(req.device, v, 0, b1)
                if start < dist[b1][k] { dist[b1][k] = start; from[b1][k] = nil }
                for b0 in 1..<b1 {
                    for (u, un) in peers.enumerated() where u != k && dist[b0][u] < .infinity {
                        let c = dist[b0][u] + hop(un.id, v, b0, b1)
                        if c < dist[b1][k] { dist[b1][k] = c; from[b1][k] = (b0, u) }
                    }
                }
            }
        }
        guard let end = dist[L].indices.min(by: { dist[L][$0] < dist[L][$1] }), dist[L][end] < .infinity else { return nil }
        var ranges: [(String, Int, Int)] = []
        var b = L, k = end
        while true {
            if let (b0, u) = from[b][k] { ranges.insert((peers[k].id, b0, b), at: 0); b = b0; k = u } else { ranges.insert((peers[k].id, 0, b), at: 0); break }
        }
        if ranges.count == 1 && ranges[0].0 == req.device { return nil }  // that is the local plan
        return chainPlan(.horizontal, ranges, view, req)
    }

    // MARK: multi-access

    /// Heads (and their MLP columns) of every block split over the edge servers so that all finish together:
    /// each head goes to the server whose finish time (link both ways + compute at its load) grows least.
    func multiAccess(_ view: NetworkView, _ req: PlanRequest) -> InferencePlan? {
        let edges = view.nodes.filter { $0.role == .edge }
        guard edges.count >= 2 else { return nil }
        let steps = req.steps
        func shareTime(_ e: NodeState, _ units: Int) -> Double {
            guard units > 0 else { return 0 }
            let f = Double(units) / Double(cost.config.heads)
            guard e.holds(f * Double(L)) else { return .infinity }
            var t = 0.0
            for (T, Tk) in steps {
                let comm = view.link(req.device, e.id).seconds(bytes: cost.activationBytes(tokens: T))
                    + view.link(e.id, req.device).seconds(bytes: cost.activationBytes(tokens: T)) + stageOverheadSeconds
                t += 2 * comm + (cost.attentionShareFlops(tokens: T, keys: Tk, fraction: f) + cost.mlpShareFlops(tokens: T, fraction: f)) / e.effectiveFlops
            }
            return t
        }
        var units = [Int](repeating: 0, count: edges.count)
        for _ in 0..<cost.config.heads {
            var bestK = 0, bestMax = Double.infinity
            for k in edges.indices {
                var trial = units
                trial[k] += 1
                let m = edges.indices.map { shareTime(edges[$0], trial[$0]) }.max() ?? .infinity
                if m < bestMax { bestMax = m; bestK = k }
            }
            units[bestK] += 1
        }
        var stages = [Messages.Stage(nodeId: req.device, layerBegin: 0, layerEnd: 0, embed: true, head: true)]
        var at = 0
        for (k, e) in edges.enumerated() where units[k] > 0 {
            stages.append(Messages.Stage(nodeId: e.id, layerBegin: 0, layerEnd: UInt32(L), shareBegin: UInt32(at), shareEnd: UInt32(at + units[k])))
            at += units[k]
        }
        guard stages.count >= 3 else { return nil }  // one share is an edge-only plan with twice the round trips
        var plan = InferencePlan(kind: .multiAccess, requester: req.device, stages: stages)
        plan.expectedSeconds = expectedSeconds(plan, view, req)
        return plan
    }

    func multiAccessStep(_ plan: InferencePlan, _ view: NetworkView, T: Int, Tk: Int) -> Double {
        guard let d = view.node(plan.requester) else { return .infinity }
        let t = 2 * stageOverheadSeconds + (cost.embedFlops(tokens: T) + cost.headFlops) / d.effectiveFlops
        let bytes = cost.activationBytes(tokens: T)
        var attn = 0.0, mlp = 0.0
        for s in plan.stages.dropFirst() {
            let f = cost.shareFraction(Int(s.shareBegin)..<Int(s.shareEnd))
            guard let n = view.node(s.nodeId), n.holds(f * Double(L)) else { return .infinity }
            let comm = view.link(d.id, n.id).seconds(bytes: bytes) + view.link(n.id, d.id).seconds(bytes: bytes) + stageOverheadSeconds
            attn = max(attn, comm + cost.attentionShareFlops(tokens: T, keys: Tk, fraction: f) / n.effectiveFlops)
            mlp = max(mlp, comm + cost.mlpShareFlops(tokens: T, fraction: f) / n.effectiveFlops)
        }
        return t + Double(L) * (attn + mlp)
    }
}
