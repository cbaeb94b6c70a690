import Bus
import ClusterManager
import Federation
import Foundation
import Messages
import Reports

// An aggregator's place in a hierarchical run (HierFAVG as real tiers; see ClusterManager/Hierarchy.swift).
//
// cloud tier: its participants are the edge aggregators (role edgeAggregator in the cluster map); a round sends
//   the global to the edges (tier CLOUD) and takes one UpdateUpload per edge (tier EDGE, samples = the edge's
//   summed device samples, delta = edge model − the cloud model it started from, compute_s = the edge's sim time
//   for its κ2 rounds), FedAvg-weighted by samples. Evaluation asks the edges, which relay to their devices.
// edge tier: its participants are the devices of its edge; it runs κ2 edge rounds (each κ1·local_steps) per
//   cloud round, then uploads to the cloud over a DEALER (UpstreamLink.swift) and waits for the next global.
// Flat FedAvg has no HierarchyState and every hook below returns the flat behaviour.

struct HierarchyState {
    let plan: HierarchyPlan
    let tier: Messages.Tier
    /// Edge tier: this edge's ordinal (from the id "edge-<k>").
    let edge: Int
    var upstream: Socket?
    /// Cloud tier: live devices, the evaluation population.
    var aliveDevices: [String] = []
    /// Cloud tier: every device in the map → its edge ordinal.
    var deviceEdges: [String: Int] = [:]
    // Edge tier: the cloud round being worked on and the cloud model it started from.
    var cloudRound: UInt64 = 0
    var pendingAnnouncement: RoundAnnouncement?
    var cloudVersion: UInt64?
    var cloudBase: [Float] = []
    var edgeRoundsDone = 0
    var samples = 0
    var losses: [Double] = []
    var simAtCloudModel = 0.0
    /// Unacknowledged upload to the cloud (resent on heartbeats; the cloud answers a retry as duplicate).
    var upload: (round: UInt64, envelope: Envelope, sentAt: Double)?
    var lastModelRequest = 0.0
    // Edge tier: evaluation relayed for the cloud (cloud round → this edge's round numbering for its devices).
    var evalCloudRound: UInt64?
    var evalEdgeRound: UInt64 = 0
    var evalAnswered: Set<String> = []
    var evalDone = false
}

extension AggregatorService {
    var isEdge: Bool { hierarchy?.tier == .edge }
    var isHierarchicalCloud: Bool { hierarchy?.tier == .cloud }

    static func checkTier(_ o: Options) throws {
        guard o.tier == .edge else { return }
        guard o.experiment.isHierarchical else { throw HierarchyError.edgeNeedsHierarchicalParadigm(paradigm: o.experiment.federation.paradigm) }
        guard let up = o.upstream, !up.isEmpty else { throw HierarchyError.edgeNeedsUpstream(id: o.id) }
    }

    /// Device ↔ edge hops for an edge, the backhaul for a hierarchical cloud, cloud ↔ device otherwise.
    static func tierCost(_ o: Options) throws -> any EdgeCostModel {
        let base = try EdgeNetworkCost(scenario: o.experiment.scenario, devices: o.experiment.data.devices)
        guard o.experiment.isHierarchical else { return base }
        return o.tier == .edge ? EdgeTierCost(base) : CloudTierCost(base)
    }

    /// A restarted edge skips the round it was in: its devices may have trained that round number on the old
    /// edge model, and a fresh number makes them train again on the cloud model the edge resumes from.
    static func resumeRound(_ o: Options, _ completed: UInt64) -> UInt64 {
        o.tier == .edge && o.experiment.isHierarchical && completed > 0 ? completed + 1 : completed
    }

    static func tierQuorum(_ o: Options) -> Int {
        guard o.experiment.isHierarchical else { return o.experiment.federation.quorum }
        let plan = HierarchyPlan(o.experiment)
        return o.tier == .edge ? plan.edgeQuorum(deviceOrdinal(o.id)) : plan.edges
    }

    /// FedAvg at both tiers (sample-weighted = hierarchicalCombine of models that share a base); the cloud takes every edge.
    /// Exact LoRA modes combine at both tiers (LoRAFedAvg): each tier's model is the exact combine of what it received.
    static func tierStrategy(_ o: Options) throws -> (any AggregationStrategy)? {
        guard o.experiment.isHierarchical else { return nil }
        var spec = StrategySpec(name: o.experiment.loraMode == .naive ? "fedavg" : "lora_fedavg")
        spec.loraMode = o.experiment.loraMode.rawValue
        spec.fraction = o.tier == .edge ? o.experiment.federation.fraction : 1
        spec.quorum = tierQuorum(o)
        spec.minDevices = 1
        spec.seed = o.experiment.seed
        return try makeAggregationStrategy(spec)
    }

    func setUpHierarchy(context: BusContext) throws {
        guard options.experiment.isHierarchical else { return }
        var h = HierarchyState(plan: HierarchyPlan(options.experiment), tier: options.tier, edge: deviceOrdinal(options.id))
        if options.tier == .edge, let up = options.upstream {
            let s = try Socket(.dealer, context: context)
            try s.set(.routingId(Array(options.id.utf8)))
            try s.connect(up)
            h.upstream = s
            loop.add(s) { [unowned self] _, frames in handleUpstream(frames) }
            phase = .idle
        }
        hierarchy = h
    }

    /// Whom this aggregator serves in the map: devices (flat), its edge's devices (edge), the edge aggregators (cloud).
    func participants(in map: ClusterMap) -> [ClusterMember] {
        guard let h = hierarchy else { return map.members.filter { $0.role == .device } }
        switch h.tier {
        case .edge: return map.members.filter { $0.role == .device && Int($0.edge) == h.edge }
        default:
            hierarchy?.aliveDevices = map.members.filter { $0.role == .device && $0.alive }.map(\.nodeId)
            hierarchy?.deviceEdges = Dictionary(map.members.filter { $0.role == .device }.map { ($0.nodeId, Int($0.edge)) }, uniquingKeysWith: { $1 })
            return map.members.filter { $0.role == .edgeAggregator }
        }
    }

    /// Scenario index for the cost model: "device-N" → N, "edge-K" → K (flat keeps map order).
    func participantIndex(_ id: String, position: Int) -> Int { hierarchy == nil ? position : deviceOrdinal(id) }

    /// Cloud: the round-0 evaluation also waits for the device quorum (devices sit behind the edges).
    var readyToStart: Bool {
        guard isHierarchicalCloud else { return true }
        return (hierarchy?.aliveDevices.count ?? 0) >= options.experiment.federation.quorum
    }

    /// Rounds this aggregator runs before it finishes; nil: the edge finishes after relaying the last evaluation.
    var totalRounds: UInt64? {
        guard let h = hierarchy else { return UInt64(options.experiment.federation.rounds) }
        return h.tier == .edge ? nil : UInt64(h.plan.cloudRounds)
    }

    /// Edge: opens a round only inside a cloud round, at most κ2 per cloud round, and not while an upload waits.
    var mayOpenRound: Bool {
        guard let h = hierarchy, h.tier == .edge else { return true }
        return h.cloudRound > 0 && h.edgeRoundsDone < h.plan.kappa2 && h.upload == nil
    }

    var roundTier: Messages.Tier { hierarchy == nil ? .device : options.tier }
    var roundLocalSteps: Int {
        let steps = options.experiment.federation.localSteps
        guard let h = hierarchy, h.tier == .edge else { return steps }
        return steps * h.plan.kappa1
    }

    /// Who must report an evaluation (devices) and whom to ask (the devices, or the edges in a hierarchical cloud).
    var evalPopulation: [String] { isHierarchicalCloud ? (hierarchy?.aliveDevices ?? []) : alive }
    var evalTargets: [String] { alive }
    /// Unanswered eval requests to resend: devices (flat) or every edge (they ignore a request they relay already).
    var evalResendTargets: [String] { isHierarchicalCloud ? alive : evalExpected.subtracting(evalResults.keys).sorted() }

    /// Edge: after each edge round count it; after κ2, upload the edge model to the cloud.
    func afterTierRound(_ closed: RoundCoordinator.Closed) {
        guard var h = hierarchy, h.tier == .edge else { return }
        h.edgeRoundsDone += 1
        h.samples += closed.samples
        if let l = closed.trainLoss { h.losses.append(l) }
        hierarchy = h
        if h.edgeRoundsDone >= h.plan.kappa2 { uploadToCloud() }
    }

    /// Edge: a device's evaluation of the cloud model goes up with the device as sender and the cloud's round.
    func relayEvalResult(_ r: EvalResult, from device: String) -> Bool {
        guard var h = hierarchy, h.tier == .edge else { return false }
        guard let c = h.evalCloudRound, r.round == h.evalEdgeRound else { return true }
        if !h.evalAnswered.contains(device) {
            h.evalAnswered.insert(device)
            sendUpstream(.evalResult(EvalResult(round: c, domain: r.domain, valLoss: r.valLoss, tokens: r.tokens)), as: device)
        }
        hierarchy = h
        if !h.evalDone, Set(alive).isSubset(of: h.evalAnswered) {
            hierarchy?.evalDone = true
            if c >= UInt64(h.plan.cloudRounds) { finish() }
        }
        return true
    }

    var writesSummary: Bool { !isEdge }
}

extension AggregatorService {
    /// The tier of this aggregator's metric records.
    var recordTier: Reports.Tier { options.tier == .edge ? .edge : .cloud }
}
