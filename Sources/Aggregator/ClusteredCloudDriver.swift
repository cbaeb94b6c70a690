import ClusterManager
import Federation
import Foundation
import Messages

/// Cloud tier of a clustered hierarchical run (ClusteredHierarchy: one adapter per cluster). Its participants are
/// the edge aggregators. Each dispatch (a cloud round, or an evaluation) takes the next wire number w and sends
/// every edge: a ClusterMap of that edge's devices (map_seq = w: the exact map this dispatch uses, so an edge never
/// trains on a stale map), then the round announcement or EvalRequest, and the models of the clusters its devices
/// are in (ModelBroadcast tier CLOUD, cluster = c, version w). An edge answers a round with one UpdateUpload per
/// cluster (tier EDGE) and, in rounds that (re)cluster, one sketch per device (tier DEVICE, sender = the device).
/// The device → cluster map also goes to the ClusterManager, which publishes it (ClusterMember.cluster).
final class ClusteredCloudDriver: DriverBase, RoundDriver {
    enum Phase { case starting, idle, training, evaluating(round: Int), finished }

    struct EdgeUpload { var update: EdgeClusterUpdate; var computeS: Double }

    let plan: HierarchyPlan
    var phase: Phase = .starting
    var fed: ClusteredHierarchy?
    var round = 0
    var roundWire: UInt64 = 0
    /// Edge id -> the clusters it was sent this round (one upload expected per cluster).
    var expected: [String: [Int]] = [:]
    var uploads: [String: [Int: EdgeUpload]] = [:]
    var sketches: [String: [Float]] = [:]
    /// Per edge this round: model bytes sent down, bytes received (cluster updates + sketches).
    var edgeBytesDown: [String: Int] = [:], edgeBytesUp: [String: Int] = [:]
    var sketchBytes = 0
    var deadline = 0.0
    var simTime = 0.0
    var lastTrainLoss: Double?
    var lastDropped = 0
    /// The cluster state read from the checkpoint, made into `fed` at the first cloud round.
    var restored: ClusteredCheckpoint?

    init(service: AggregatorService) throws {
        plan = HierarchyPlan(service.options.experiment)
        super.init(base: service)
        beginIncarnation(resumes: true)
        if let (r, st) = try loadClusterCheckpoint() {
            restored = r
            round = Int(st.round)
            simTime = st.simTimeS
            sketchBytes = r.counters["sketch_bytes"] ?? 0
            phase = .idle
        }
    }

    var completedRounds: Int { round }
    /// Against the domains the devices reported in any evaluation (some may have answered only after round 0).
    var summaryARI: Double? {
        guard var f = fed else { return nil }
        if !domains.isEmpty { f.trueLabels = domains }
        return f.adjustedRandIndexAgainstTruth()
    }
    var summaryNotes: [String: String] {
        var n: [String: String] = ["clustered_mode": experiment.clustered.mode, "sketch_bytes": "\(sketchBytes)",
                                   "kappa1": "\(plan.kappa1)", "kappa2": "\(plan.kappa2)", "edges": "\(plan.edges)"]
        if let f = fed {
            n["clusters"] = f.clusterMap.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            n["k"] = "\(f.clusterIDs.count)"
            n["reclusterings"] = f.reclusterings.map { "r\($0.round):k=\($0.k),score=\(String(format: "%.3f", $0.score))" }.joined(separator: " ")
        }
        return n.merging(gapNotes) { $1 }
    }

    var knownDevices: [String] { (service.hierarchy?.deviceEdges.keys).map { Array($0).sorted() } ?? [] }

    /// Devices the manager places at this edge (by the edge ordinal in its id).
    func devices(ofEdge edge: String, among devices: some Sequence<String>) -> [String] {
        let k = deviceOrdinal(edge), edges = service.hierarchy?.deviceEdges ?? [:]
        return devices.filter { edges[$0] == k }.sorted()
    }

    func makeFederation(devices: [String]) throws -> ClusteredHierarchy {
        let mode: ClusterAssignmentMode
        let all = restored?.federation.devices ?? devices
        switch experiment.clustered.mode {
        case "oracle": mode = .oracle(labels: Dictionary(uniqueKeysWithValues: all.map { ($0, domains[$0] ?? "?") }))
        case "local": mode = .localOnly
        default: mode = .automatic
        }
        var config = try experiment.clustered.settings.config(seed: experiment.seed, loraMode: experiment.loraMode)
        config.validator = UpdateValidator(maxStaleness: 0)
        let labels = domains.isEmpty ? nil : domains
        if let r = restored {
            return try ClusteredHierarchy(restoring: r.federation, models: r.models, layout: layout, mode: mode, config: config, trueLabels: labels)
        }
        return try ClusteredHierarchy(devices: devices, initial: service.coordinator.global, mode: mode, config: config, trueLabels: labels)
    }

    /// Sends each edge its devices' map, `body` (announcement or eval request) and the models of their clusters.
    func dispatch(wire: UInt64, map: [String: Int], models: [Int: [Float]], body: (String) -> Body) -> [String: [Int]] {
        var sent: [String: [Int]] = [:]
        var cache: [Int: [[UInt8]]] = [:]
        for edge in service.alive.sorted() {
            let devs = devices(ofEdge: edge, among: map.keys)
            guard !devs.isEmpty else { continue }
            let clusters = Set(devs.compactMap { map[$0] }).sorted()
            let members = devs.map { ClusterMember(nodeId: $0, role: .device, cluster: UInt32(max(0, map[$0] ?? 0)),
                                                   edge: UInt32(deviceOrdinal(edge)), alive: true, endpoint: "") }
            var messages: [(frames: [[UInt8]], isModel: Bool)] = [
                (envelopeFrames(.clusterMap(ClusterMap(mapSeq: wire, members: members, snapshot: false))), false),
                (envelopeFrames(body(edge)), false),
            ]
            for c in clusters {
                let frames = cache[c] ?? modelFrames(models[c] ?? [], wire: wire, cluster: c, tier: .cloud)
                cache[c] = frames
                messages.append((frames, true))
            }
            edgeBytesDown[edge] = messages.filter(\.isModel).reduce(0) { $0 + $1.frames.reduce(0) { $0 + $1.count } }
            deliver(messages, to: edge)
            sent[edge] = clusters
        }
        return sent
    }

    func drive(now: Double) {
        let f = experiment.federation
        switch phase {
        case .starting:
            guard service.alive.count >= service.coordinator.quorum, service.readyToStart else { return }
            // Round 0: every device in cluster 0 with the initial adapter (its domain comes back with the result).
            let devices = service.hierarchy?.aliveDevices ?? []
            startEval(now: now, map: Dictionary(uniqueKeysWithValues: devices.map { ($0, 0) }), models: [0: service.coordinator.global.parameters])
            phase = .evaluating(round: 0)
        case .evaluating(let r):
            if evalDone(now: now) {
                write(round: r, trainLoss: r == 0 ? nil : lastTrainLoss, participants: r == 0 ? 0 : expected.count,
                      dropped: r == 0 ? 0 : lastDropped, simTime: simTime, clusters: fed?.clusterMap)
                if r > 0, let fed { saveClusterCheckpoint(round: r, fed.snapshot(), simTime: simTime, counters: ["sketch_bytes": sketchBytes]) }
                phase = .idle
            } else {
                let owing = Set(evalExpected.subtracting(evalResults.keys))
                resendDue(now, to: service.alive.filter { !devices(ofEdge: $0, among: owing).isEmpty })
            }
        case .idle:
            if round >= plan.cloudRounds { finish(); return }
            // Resumed: wait for the edges and devices as a fresh start does.
            if fed == nil, restored != nil, !(service.alive.count >= service.coordinator.quorum && service.readyToStart) { return }
            if fed == nil {
                do { fed = try makeFederation(devices: knownDevices) } catch {
                    service.telemetry.event(.error, "clustered", "cannot start: \(error)")
                    finish(); return
                }
            }
            guard let fed else { return }
            tellManager(fed.clusterMap)
            round += 1
            roundWire = nextWire()
            uploads = [:]; sketches = [:]; edgeBytesUp = [:]
            let models = fed.models.mapValues(\.parameters)
            let ann: (String) -> Body = { edge in
                .round(RoundAnnouncement(round: UInt64(self.round), paradigm: .hierarchical, tier: .cloud, cluster: 0,
                                         localSteps: UInt32(f.localSteps * self.plan.kappa1), learningRate: Float(f.lr),
                                         participants: [edge], deadlineS: f.deadlineS, modelVersion: self.roundWire))
            }
            expected = dispatch(wire: roundWire, map: fed.clusterMap, models: models, body: ann)
            deadline = now + f.deadlineS * Double(plan.kappa2 + 1)
            lastResend = now
            phase = .training
        case .training:
            let missing = expected.filter { e, cs in cs.contains { uploads[e]?[$0] == nil } }.map(\.key)
            if missing.isEmpty || now >= deadline {
                close(now: now)
            } else {
                resendDue(now, to: missing)
            }
        case .finished:
            return
        }
    }

    func upload(_ u: UpdateUpload, from sender: String, bytes: Int) -> RoundCoordinator.Decision {
        bytesUp += bytes
        guard case .training = phase, u.round == UInt64(round) else {
            if u.round <= UInt64(round) { return .duplicate }
            return service.coordinator.reject(kind: "wrong_round", reason: "update for cloud round \(u.round), open round is \(round)")
        }
        guard let fed else { return service.coordinator.reject(kind: "not_started", reason: "no cloud round is open") }
        if u.tier == .device {
            // A device's sketch relayed by its edge (sender = the device).
            guard fed.cluster(of: sender) != nil else {
                return service.coordinator.reject(kind: "unknown_device", reason: "\(sender) is not in this federation")
            }
            if sketches[sender] != nil { return .duplicate }
            guard u.delta.count == 1, let v = try? u.delta[0].floats(), !v.isEmpty, v.count <= layout.count, v.allSatisfy(\.isFinite) else {
                return service.coordinator.reject(kind: "bad_sketch", reason: "a sketch is one finite tensor of at most \(layout.count) values")
            }
            sketches[sender] = v
            sketchBytes += bytes
            if let k = service.hierarchy?.deviceEdges[sender], let edge = service.alive.first(where: { deviceOrdinal($0) == k }) {
                edgeBytesUp[edge, default: 0] += bytes
            }
            return .accepted
        }
        let c = Int(u.cluster)
        guard expected[sender]?.contains(c) == true else {
            return service.coordinator.reject(kind: "not_participant", reason: "\(sender) was not sent cluster \(c) in cloud round \(round)")
        }
        if uploads[sender]?[c] != nil { return .duplicate }
        let delta: [Float]
        switch decodeDelta(u) {
        case .ok(let d): delta = d
        case .bad(let decision): return decision
        }
        let base = u.baseVersion == roundWire ? (fed.models[c]?.version ?? 0) : u.baseVersion &+ 1_000_000
        let update = EdgeClusterUpdate(edge: sender, cluster: c, samples: Int(clamping: u.samples), delta: delta, baseVersion: base, loss: u.trainLoss)
        if let problem = fed.check(update) { return service.coordinator.reject(kind: problem.kind, reason: problem.reason) }
        uploads[sender, default: [:]][c] = EdgeUpload(update: update, computeS: u.computeS)
        edgeBytesUp[sender, default: 0] += bytes
        return .accepted
    }

    func close(now: Double) {
        guard var fed else { return }
        let delivered = uploads.keys.sorted().flatMap { e in (uploads[e] ?? [:]).keys.sorted().compactMap { uploads[e]?[$0] } }
        // An edge whose devices of a cluster all dropped reports 0 samples: present, but no weight.
        let result = fed.aggregate(edgeUpdates: delivered.map(\.update).filter { $0.samples > 0 }, deviceSketches: sketches)
        recordExactLoRA(result)
        self.fed = fed
        // Virtual clock: the cloud round lasts until the slowest edge's models are back over the backhaul.
        let arrivals = uploads.map { e, byCluster in
            simulatedArrival(device: e, index: deviceOrdinal(e), modelBytes: edgeBytesDown[e] ?? 0, updateBytes: edgeBytesUp[e] ?? 0,
                             computeS: byCluster.values.map(\.computeS).max() ?? 0, cost: service.cost, roundStart: simTime).seconds
        }
        simTime += arrivals.max() ?? experiment.federation.deadlineS
        let weighted = delivered.filter { $0.update.samples > 0 && $0.update.loss.isFinite }
        let total = Double(weighted.reduce(0) { $0 + $1.update.samples })
        lastTrainLoss = total > 0 ? weighted.reduce(0.0) { $0 + Double($1.update.loss) * Double($1.update.samples) } / total : nil
        lastDropped = expected.reduce(0) { $0 + $1.value.count } - delivered.count
        for r in result.rejected { service.telemetry.event(.warn, "rejected", "cloud round \(round): \(r.device): \(r.kind): \(r.reason)") }
        if let e = result.recluster {
            service.telemetry.event(.info, "recluster", "cloud round \(round): k=\(e.k) score \(String(format: "%.3f", e.score)) ari \(e.ari.map { String(format: "%.3f", $0) } ?? "-") from \(sketches.count) sketches")
        }
        tellManager(fed.clusterMap)
        startEval(now: now, map: fed.clusterMap, models: fed.models.mapValues(\.parameters))
        phase = .evaluating(round: round)
    }

    /// Every device evaluates its cluster's model; the edges relay the request and the results.
    func startEval(now: Double, map: [String: Int], models: [Int: [Float]]) {
        evalResults = [:]
        let alive = Set(service.hierarchy?.aliveDevices ?? [])
        evalExpected = Set(map.keys.filter { alive.contains($0) })
        evalWire = nextWire()
        let wire = evalWire
        _ = dispatch(wire: wire, map: map, models: models) { _ in .evalRequest(EvalRequest(round: wire)) }
        lastResend = now
        evalDeadline = now + experiment.federation.deadlineS
    }

    /// Also leaves each cluster's final adapter (PEFT) in `<checkpoint>/clusters/cluster-<c>/`, for serving.
    func finish() {
        phase = .finished
        if let dir = service.options.checkpoint, let fed {
            for (c, m) in fed.models {
                var adapter = service.template
                do {
                    try adapter.load(flat: m.parameters)
                    try adapter.save(directory: URL(fileURLWithPath: dir).appendingPathComponent("clusters/cluster-\(c)"))
                } catch {
                    service.telemetry.event(.error, "checkpoint", "cannot write the adapter of cluster \(c): \(error)")
                }
            }
        }
        service.finish()
    }
}
