import Bus
import ClusterManager
import Federation
import Foundation
import Messages

// The edge aggregator's conversation with the cloud aggregator, over a DEALER (routing id = edge id) to the
// cloud's ROUTER, exactly like a device's with its aggregator: RoundAnnouncement + ModelBroadcast (tier CLOUD)
// down, UpdateUpload (tier EDGE) up with an UpdateAck back, EvalRequest down and EvalResult up (relayed).
extension AggregatorService {
    func sendUpstream(_ body: Body, as sender: String? = nil) {
        seq += 1
        try? hierarchy?.upstream?.send(Envelope(sender: sender ?? options.id, seq: seq, body: body), dontWait: true)
    }

    func handleUpstream(_ frames: [[UInt8]]) {
        guard hierarchy != nil else { return }
        let env: Envelope
        do { env = try Envelope.decode(frames: frames, limits: serviceDecodeLimits) } catch {
            telemetry.event(.warn, "bad_message", "undecodable message from the cloud aggregator: \(error)")
            return
        }
        if let d = driver as? UpstreamDriver { d.upstream(env); return }
        switch env.body {
        case .round(let ann):
            guard ann.round > hierarchy!.cloudRound, ann.participants.isEmpty || ann.participants.contains(options.id) else { return }
            hierarchy!.pendingAnnouncement = ann
            startCloudRoundIfReady()
        case .model(let m):
            adoptCloudModel(m)
            startCloudRoundIfReady()
        case .evalRequest(let e):
            relayEvalRequest(cloudRound: e.round)
        case .ack(let a):
            guard let u = hierarchy!.upload, a.round == u.round else { return }
            hierarchy!.upload = nil
            if !a.accepted { telemetry.event(.warn, "rejected", "cloud rejected the edge update of round \(a.round): \(a.reason)") }
        default:
            telemetry.event(.warn, "unexpected", "\(env.body.name) from the cloud ignored")
        }
    }

    /// Push-down: a newer cloud model replaces the edge model (never while an edge round is open).
    func adoptCloudModel(_ m: ModelBroadcast) {
        guard let h = hierarchy, coordinator.current == nil else { return }
        if let v = h.cloudVersion, m.modelVersion <= v { return }
        guard AdapterWire.mismatch(m.tensors, layout: coordinator.global.layout) == nil, let flat = try? AdapterWire.flat(m.tensors) else {
            telemetry.event(.warn, "bad_model", "cloud model does not fit the adapter layout")
            return
        }
        coordinator.global.parameters = flat
        coordinator.global.version += 1
        hierarchy!.cloudVersion = m.modelVersion
        hierarchy!.cloudBase = flat
        hierarchy!.simAtCloudModel = simTime
    }

    /// Starts working on the announced cloud round once the model it names is held; asks for it otherwise.
    func startCloudRoundIfReady() {
        guard let h = hierarchy, let ann = h.pendingAnnouncement else { return }
        guard h.cloudVersion == ann.modelVersion else { requestCloudModel(); return }
        hierarchy!.pendingAnnouncement = nil
        hierarchy!.cloudRound = ann.round
        hierarchy!.edgeRoundsDone = 0
        hierarchy!.samples = 0
        hierarchy!.losses = []
        hierarchy!.upload = nil
        telemetry.event(.info, "cloud_round", "edge \(options.id) starts cloud round \(ann.round) at model version \(ann.modelVersion)")
    }

    func requestCloudModel() {
        let now = Self.now()
        guard now - (hierarchy?.lastModelRequest ?? 0) > Double(options.heartbeatMs) / 1000 else { return }
        hierarchy?.lastModelRequest = now
        sendUpstream(.modelRequest(ModelRequest(cluster: 0, tier: .edge)))
    }

    /// After κ2 edge rounds: edge model − the cloud model it started from, with the samples behind it and the
    /// sim time those rounds took (the cloud adds the backhaul on its clock).
    func uploadToCloud() {
        guard let h = hierarchy, h.cloudRound > 0 else { return }
        let params = coordinator.global.parameters
        let delta = zip(params, h.cloudBase).map { $0 - $1 }
        let loss = h.losses.isEmpty ? Float.nan : Float(h.losses.reduce(0, +) / Double(h.losses.count))
        let body = UpdateUpload(round: h.cloudRound, cluster: 0, baseVersion: h.cloudVersion ?? 0, samples: UInt64(max(0, h.samples)),
                                trainLoss: loss, delta: AdapterWire.tensors(delta, layout: coordinator.global.layout), tier: .edge,
                                computeS: max(0, simTime - h.simAtCloudModel))
        seq += 1
        let env = Envelope(sender: options.id, seq: seq, body: .update(body))
        hierarchy!.upload = (h.cloudRound, env, Self.now())
        try? hierarchy!.upstream?.send(env, dontWait: true)
    }

    /// The cloud asks for an evaluation of its model: the edge pushes it to its devices under its own round number.
    func relayEvalRequest(cloudRound c: UInt64) {
        guard let h = hierarchy, h.evalCloudRound != c else { return }
        hierarchy!.evalCloudRound = c
        hierarchy!.evalEdgeRound = coordinator.completedRound
        hierarchy!.evalAnswered = []
        hierarchy!.evalDone = false
        sendModel(round: coordinator.completedRound, to: alive, after: .evalRequest(EvalRequest(round: coordinator.completedRound)))
    }

    /// Heartbeat work of the tiers: the edge resends an unacknowledged upload and unanswered eval requests,
    /// and asks for the model when it has none; the cloud repeats an eval request to edges that have not relayed.
    func hierarchyHeartbeat() {
        guard let h = hierarchy, h.tier == .edge, driver == nil else { return }
        let now = Self.now()
        if let u = h.upload, now - u.sentAt >= 2 * Double(options.heartbeatMs) / 1000 {
            hierarchy!.upload!.sentAt = now
            try? h.upstream?.send(u.envelope, dontWait: true)
        }
        if h.cloudVersion == nil || h.pendingAnnouncement != nil { requestCloudModel() }
        if h.evalCloudRound != nil, !h.evalDone {
            // The request only: a device without the model asks for it (ModelRequest), so bytes are not resent.
            for d in alive where !h.evalAnswered.contains(d) { send(.evalRequest(EvalRequest(round: h.evalEdgeRound)), to: d) }
        }
    }
}
