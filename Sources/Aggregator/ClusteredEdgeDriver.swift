import Bus
import ClusterManager
import Federation
import Foundation
import Messages

/// Edge tier of a clustered hierarchical run. A cloud round arrives as the edge's device map (ClusterMap, map_seq
/// = the cloud's wire w), an announcement with model_version w, and the cloud models of its clusters. The edge then
/// runs κ2 edge rounds: each device gets its cluster's model (announcement and model carry the cluster), uploads
/// are FedAvg'd per cluster (ClusteredFederation with the cloud's map as oracle clusters). Then it uploads one
/// UpdateUpload per cluster (tier EDGE, delta = edge cluster model − cloud cluster model, samples) and, in cloud
/// rounds that (re)cluster, first one sketch per device of its summed deltas (tier DEVICE, sender = the device).
/// Evaluation: each device evaluates its cluster's cloud model; results go up with the device as sender.
final class ClusteredEdgeDriver: DriverBase, UpstreamDriver {
    let plan: HierarchyPlan
    let edge: Int
    /// auto mode: the cloud re-clusters on its schedule, so the edge relays sketches in those cloud rounds.
    let automatic: Bool
    let clusterConfig: ClusteredFederationConfig
    var finished = false
    // What the cloud sent: the newest map and model per cluster (each tagged with its dispatch wire).
    var cloudMap: (wire: UInt64, clusters: [String: Int]) = (0, [:])
    var cloudModels: [Int: (wire: UInt64, params: [Float])] = [:]
    var pendingAnnouncement: RoundAnnouncement?
    var pendingEval: UInt64?
    var lastModelRequest = 0.0
    // The cloud round being worked on.
    var cloudRound: UInt64 = 0
    var baseWire: UInt64 = 0
    var fed: ClusteredFederation?
    var bases: [Int: [Float]] = [:]
    var sketchesDue = false
    var edgeRoundsDone = 0
    var samples: [Int: Int] = [:]
    var losses: [Int: [Double]] = [:]
    /// Device -> the sum of its deltas in this cloud round (sketched at upload when the cloud re-clusters).
    var drift: [String: [Float]] = [:]
    var simAtCloudRound = 0.0
    var simTime = 0.0
    // The open edge round.
    var isOpen = false
    var edgeRound = 0
    var roundWire: UInt64 = 0
    var participants: [String] = []
    var delivered: [String: Delivered] = [:]
    var deadline = 0.0
    // Uploads to the cloud until every one is acknowledged.
    var pendingUploads: [Envelope] = []
    var uploadRound: UInt64 = 0
    var acks = 0
    var uploadSentAt = 0.0
    // Evaluation relayed for the cloud.
    var relayingEval: UInt64?
    var relayed: Set<String> = []

    init(service: AggregatorService) throws {
        let e = service.options.experiment
        plan = HierarchyPlan(e)
        edge = deviceOrdinal(service.options.id)
        automatic = e.clustered.mode == "auto"
        clusterConfig = try e.clustered.settings.config(seed: e.seed)
        super.init(base: service)
        beginIncarnation(resumes: false)
    }

    var completedRounds: Int { edgeRound }
    var summaryARI: Double? { nil }
    var summaryNotes: [String: String] { gapNotes }
    var heartbeatS: Double { Double(service.options.heartbeatMs) / 1000 }

    /// Holds the map and every model of dispatch `wire`.
    func holds(_ wire: UInt64) -> Bool {
        cloudMap.wire == wire && Set(cloudMap.clusters.values).allSatisfy { cloudModels[$0]?.wire == wire }
    }

    // MARK: the cloud (upstream DEALER)

    func upstream(_ env: Envelope) {
        switch env.body {
        case .clusterMap(let m):
            if m.mapSeq > cloudMap.wire {
                cloudMap = (m.mapSeq, Dictionary(m.members.map { ($0.nodeId, Int($0.cluster)) }, uniquingKeysWith: { $1 }))
            }
        case .model(let m):
            let c = Int(m.cluster)
            guard m.modelVersion > (cloudModels[c]?.wire ?? 0) else { return }
            guard AdapterWire.mismatch(m.tensors, layout: layout) == nil, let flat = try? AdapterWire.flat(m.tensors) else {
                service.telemetry.event(.warn, "bad_model", "cloud model of cluster \(c) does not fit the adapter layout")
                return
            }
            cloudModels[c] = (m.modelVersion, flat)
        case .round(let ann):
            // A later cloud round, or the same round dispatched again under a newer wire (a restarted cloud).
            let newer = ann.round > cloudRound || (ann.round == cloudRound && ann.modelVersion > baseWire)
            guard newer, ann.round > (pendingAnnouncement?.round ?? 0) || ann.modelVersion > (pendingAnnouncement?.modelVersion ?? 0),
                  ann.participants.isEmpty || ann.participants.contains(service.options.id) else { return }
            pendingAnnouncement = ann
        case .evalRequest(let e):
            if e.round > (relayingEval ?? 0) && e.round > (pendingEval ?? 0) { pendingEval = e.round }
        case .ack(let a):
            guard a.round == uploadRound, !pendingUploads.isEmpty else { return }
            acks += 1
            if !a.accepted { service.telemetry.event(.warn, "rejected", "cloud rejected an upload of cloud round \(a.round): \(a.reason)") }
            if acks >= pendingUploads.count { pendingUploads = [] }
        default:
            service.telemetry.event(.warn, "unexpected", "\(env.body.name) from the cloud ignored")
        }
    }

    func sendUpstream(_ env: Envelope) { try? service.hierarchy?.upstream?.send(env, dontWait: true) }

    // MARK: the loop

    func drive(now: Double) {
        guard !finished else { return }
        if !isOpen, let w = pendingEval, holds(w) { startRelay(w, now: now) }
        if !isOpen, pendingUploads.isEmpty, let ann = pendingAnnouncement, holds(ann.modelVersion) { beginCloudRound(ann, now: now) }
        if isOpen {
            if Set(delivered.keys) == Set(participants) || now >= deadline { closeEdgeRound(now: now) }
            else { resendDue(now, to: participants.filter { delivered[$0] == nil }) }
        } else if cloudRound > 0, edgeRoundsDone < plan.kappa2 {
            openEdgeRound(now: now)
        } else if relayingEval != nil {
            resendDue(now, to: evalExpected.subtracting(relayed).sorted())
        }
        // Upstream: resend unacknowledged uploads; ask for what a pending dispatch lacks (the cloud replays it).
        if !pendingUploads.isEmpty, now - uploadSentAt >= 2 * heartbeatS {
            uploadSentAt = now
            pendingUploads.forEach(sendUpstream)
        }
        let lacking = (pendingAnnouncement.map { !holds($0.modelVersion) } ?? false) || (pendingEval.map { !holds($0) } ?? false)
        if lacking, now - lastModelRequest > heartbeatS {
            lastModelRequest = now
            service.sendUpstream(.modelRequest(ModelRequest(cluster: 0, tier: .edge)))
        }
    }

    func beginCloudRound(_ ann: RoundAnnouncement, now: Double) {
        pendingAnnouncement = nil
        let map = cloudMap.clusters
        let ids = Set(map.values).sorted()
        guard let first = ids.first, let initial = cloudModels[first]?.params else { return }
        var f: ClusteredFederation
        var edgeConfig = ClusteredFederationConfig(validator: UpdateValidator(maxStaleness: 0))
        edgeConfig.loraMode = experiment.loraMode
        do {
            f = try ClusteredFederation(devices: Array(map.keys), initial: GlobalModel(layout: layout, parameters: initial),
                                        mode: .oracle(map), config: edgeConfig)
        } catch {
            service.telemetry.event(.error, "cloud_round", "cannot start cloud round \(ann.round): \(error)")
            return
        }
        bases = [:]
        for c in ids { if let p = cloudModels[c]?.params { bases[c] = p; f.replaceParameters(cluster: c, with: p) } }
        fed = f
        cloudRound = ann.round
        baseWire = ann.modelVersion
        sketchesDue = automatic && ClusteredFederation.reclusterDue(afterRound: Int(ann.round), mode: .automatic, config: clusterConfig)
        edgeRoundsDone = 0; samples = [:]; losses = [:]; drift = [:]
        simAtCloudRound = simTime
        service.telemetry.event(.info, "cloud_round", "edge \(service.options.id) starts cloud round \(ann.round): clusters \(ids)\(sketchesDue ? ", relays sketches" : "")")
    }

    func openEdgeRound(now: Double) {
        guard let fed else { return }
        let available = service.alive.filter { fed.cluster(of: $0) != nil }.sorted()
        guard !available.isEmpty, available.count >= min(service.coordinator.quorum, fed.devices.count) else { return }
        let f = experiment.federation
        edgeRound += 1
        roundWire = nextWire()
        participants = available
        delivered = [:]
        deadline = now + f.deadlineS
        var cache: [Int: [[UInt8]]] = [:]
        for d in participants {
            let c = fed.cluster(of: d) ?? 0
            let model = cache[c] ?? modelFrames(fed.models[c]?.parameters ?? [], wire: roundWire, cluster: c, tier: .edge)
            cache[c] = model
            let ann = RoundAnnouncement(round: roundWire, paradigm: .hierarchical, tier: .edge, cluster: UInt32(c),
                                        localSteps: UInt32(f.localSteps * plan.kappa1), learningRate: Float(f.lr), participants: [d],
                                        deadlineS: f.deadlineS, modelVersion: roundWire)
            deliver([(envelopeFrames(.round(ann)), false), (model, true)], to: d)
        }
        lastResend = now
        isOpen = true
    }

    func upload(_ u: UpdateUpload, from device: String, bytes: Int) -> RoundCoordinator.Decision {
        bytesUp += bytes
        return acceptClusterUpload(u, from: device, bytes: bytes, open: isOpen, wire: roundWire, round: edgeRound,
                                   participants: participants, fed: fed, delivered: &delivered)
    }

    func closeEdgeRound(now: Double) {
        guard var fed else { return }
        let modelBytes = modelFrames(fed.models.values.first?.parameters ?? [], wire: 0, cluster: 0).reduce(0) { $0 + $1.count }
        let (result, updates) = closeClusterRound(&fed, participants: participants, delivered: delivered, modelBytes: modelBytes, simTime: &simTime)
        self.fed = fed
        let accepted = Set(updates.map(\.device)).subtracting(result.rejected.map(\.device))
        for u in updates where accepted.contains(u.device) {
            guard let c = fed.cluster(of: u.device) else { continue }
            samples[c, default: 0] += max(0, u.samples)
            if u.loss.isFinite { losses[c, default: []].append(Double(u.loss)) }
            if sketchesDue {
                var x = drift[u.device] ?? [Float](repeating: 0, count: u.delta.count)
                if x.count == u.delta.count { for i in x.indices { x[i] += u.delta[i] } }
                drift[u.device] = x
            }
        }
        let l = updates.map { Double($0.loss) }.filter(\.isFinite)
        write(round: edgeRound, trainLoss: l.isEmpty ? nil : l.reduce(0, +) / Double(l.count), participants: participants.count,
              dropped: participants.count - updates.count, simTime: simTime, clusters: nil, tier: .edge, edge: edge)
        isOpen = false
        edgeRoundsDone += 1
        if edgeRoundsDone >= plan.kappa2 { uploadToCloud(now: now) }
    }

    /// Sketches first (the cloud closes its round once every cluster upload is in, and one DEALER keeps order).
    func uploadToCloud(now: Double) {
        guard let fed else { return }
        var bodies: [(sender: String, body: UpdateUpload)] = []
        if sketchesDue {
            let sketches = ClusteredHierarchy.sketches(drift, dimension: clusterConfig.sketchDimension, seed: experiment.seed)
            for (d, s) in sketches.sorted(by: { $0.key < $1.key }) {
                bodies.append((d, UpdateUpload(round: cloudRound, cluster: UInt32(fed.cluster(of: d) ?? 0), baseVersion: baseWire, samples: 0,
                                               trainLoss: .nan, delta: [Messages.Tensor(name: "sketch", shape: [s.count], floats: s)],
                                               tier: .device, computeS: 0)))
            }
        }
        for (c, base) in bases.sorted(by: { $0.key < $1.key }) {
            let params = fed.models[c]?.parameters ?? base
            let delta = zip(params, base).map { $0 - $1 }
            let l = losses[c] ?? []
            bodies.append((service.options.id, UpdateUpload(
                round: cloudRound, cluster: UInt32(c), baseVersion: baseWire, samples: UInt64(samples[c] ?? 0),
                trainLoss: l.isEmpty ? .nan : Float(l.reduce(0, +) / Double(l.count)),
                delta: AdapterWire.tensors(delta, layout: layout), tier: .edge, computeS: max(0, simTime - simAtCloudRound))))
        }
        pendingUploads = bodies.map { b in
            service.seq += 1
            return Envelope(sender: b.sender, seq: service.seq, body: .update(b.body))
        }
        uploadRound = cloudRound
        acks = 0
        uploadSentAt = now
        pendingUploads.forEach(sendUpstream)
    }

    /// The cloud asks for an evaluation: each device evaluates its cluster's cloud model.
    func startRelay(_ wire: UInt64, now: Double) {
        pendingEval = nil
        relayingEval = wire
        relayed = []
        // Every device the cloud placed here (it counts them alive): this edge's own map may lag behind the manager's.
        let map = cloudMap.clusters
        startEval(devices: Array(map.keys), now: now) { d in
            let c = map[d] ?? 0
            return (cloudModels[c]?.params ?? [], c)
        }
    }

    override func evalResult(_ r: EvalResult, from device: String) {
        guard let w = relayingEval, r.round == evalWire, evalExpected.contains(device), !relayed.contains(device) else { return }
        relayed.insert(device)
        service.sendUpstream(.evalResult(EvalResult(round: w, domain: r.domain, valLoss: r.valLoss, tokens: r.tokens)), as: device)
        // By the cloud's round number, not a count: a cloud round dispatched again (restarted cloud) runs twice here,
        // and a restarted edge has not seen the early rounds.
        if evalExpected.isSubset(of: relayed), uploadRound >= UInt64(plan.cloudRounds) {
            finished = true
            service.finish()
        }
    }
}
