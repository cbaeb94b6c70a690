import ClusterManager
import Federation
import Foundation
import Messages
import Reports

/// A paradigm's round logic inside the AggregatorService (clustered, asynchronous). Plain FedAvg keeps the
/// service's own sync state machine; a driver replaces it, using the service's sockets, metrics and telemetry.
/// Everything runs on the service's loop thread.
protocol RoundDriver: AnyObject {
    func drive(now: Double)
    func upload(_ u: UpdateUpload, from device: String, bytes: Int) -> RoundCoordinator.Decision
    func evalResult(_ r: EvalResult, from device: String)
    /// Replays what was last sent to this device (announcement, model, eval request): a late joiner's snapshot.
    func modelRequest(from device: String)
    var summaryARI: Double? { get }
    var summaryNotes: [String: String] { get }
    var completedRounds: Int { get }
}

/// A driver of an edge aggregator: it also takes what the cloud sends over the upstream DEALER.
protocol UpstreamDriver: RoundDriver {
    func upstream(_ env: Envelope)
}

/// What every driver shares: per-device delivery with replay, evaluation collection, metric records.
/// Wire ids: every dispatch and evaluation takes the next `wire` number as its round and model version, so a
/// device's view (round > trained, model version ≥ held) stays monotonic whatever cluster or version it gets.
enum Decoded { case ok([Float]), bad(RoundCoordinator.Decision) }

class DriverBase {
    unowned let service: AggregatorService
    /// Exact LoRA modes: each aggregated cluster's naive-vs-exact product gap, per round.
    var gaps: [Double] = []
    var wire: UInt64 = 0
    /// Device -> messages (encoded frames) last sent to it, replayed on ModelRequest; the resend timer replays
    /// only the small ones (announcement, eval request): a device missing the model asks for it.
    var lastSent: [String: [(frames: [[UInt8]], isModel: Bool)]] = [:]
    var evalResults: [String: EvalResult] = [:]
    var evalExpected: Set<String> = []
    var evalWire: UInt64 = 0
    var evalDeadline = 0.0
    var lastResend = 0.0
    /// Device -> the domain it reports in evaluations (the manifest's true domain).
    var domains: [String: String] = [:]
    var bytesUp = 0, bytesDown = 0
    var toldManager: [String: Int] = [:]

    init(base service: AggregatorService) { self.service = service }

    var experiment: Experiment { service.options.experiment }
    var layout: Federation.ParameterLayout { service.coordinator.global.layout }

    func nextWire() -> UInt64 { wire += 1; return wire }

    func envelopeFrames(_ body: Body) -> [[UInt8]] {
        service.seq += 1
        return Envelope(sender: service.options.id, seq: service.seq, body: body).encodeFrames()
    }

    func modelFrames(_ params: [Float], wire: UInt64, cluster: Int, tier: Messages.Tier = .device) -> [[UInt8]] {
        envelopeFrames(.model(ModelBroadcast(round: wire, cluster: UInt32(max(0, cluster)), tier: tier, modelVersion: wire,
                                             tensors: AdapterWire.tensors(params, layout: layout))))
    }

    /// Sends messages to one device over the ROUTER (routing id = node id), remembering them for replay.
    func deliver(_ messages: [(frames: [[UInt8]], isModel: Bool)], to device: String) {
        lastSent[device] = messages
        replay(to: device)
    }

    func replay(to device: String, models: Bool = true) {
        for (frames, isModel) in lastSent[device] ?? [] where models || !isModel {
            do {
                try service.router.send([Array(device.utf8)] + frames, dontWait: true)
                bytesDown += frames.reduce(0) { $0 + $1.count }
            } catch {
                // Not connected yet: the resend timer or the device's ModelRequest covers it.
            }
        }
    }

    func modelRequest(from device: String) { replay(to: device) }

    /// Every heartbeat interval, replays to the devices that still owe something.
    func resendDue(_ now: Double, to devices: some Sequence<String>) {
        guard now - lastResend > Double(service.options.heartbeatMs) / 1000 else { return }
        lastResend = now
        for d in devices { replay(to: d, models: false) }
    }

    /// Asks every device to evaluate the model `model(device)` gives it.
    func startEval(devices: [String], now: Double, model: (String) -> (params: [Float], cluster: Int)) {
        evalResults = [:]
        evalExpected = Set(devices)
        evalWire = nextWire()
        var cache: [Int: [[UInt8]]] = [:]
        for d in devices.sorted() {
            let m = model(d)
            let frames = cache[m.cluster] ?? modelFrames(m.params, wire: evalWire, cluster: m.cluster)
            cache[m.cluster] = frames
            deliver([(frames, true), (envelopeFrames(.evalRequest(EvalRequest(round: evalWire))), false)], to: d)
        }
        lastResend = now
        evalDeadline = now + experiment.federation.deadlineS
    }

    func evalResult(_ r: EvalResult, from device: String) {
        guard r.round == evalWire, evalExpected.contains(device) else { return }
        evalResults[device] = r
        if !r.domain.isEmpty { domains[device] = r.domain }
    }

    func evalDone(now: Double) -> Bool { evalExpected.isSubset(of: Set(evalResults.keys)) || now >= evalDeadline }

    /// val_loss per domain = mean over the devices of that domain (each evaluated the model it was given).
    func valLoss() -> [String: Double] {
        var byDomain: [String: [Double]] = [:]
        for r in evalResults.values where r.valLoss.isFinite { byDomain[r.domain, default: []].append(Double(r.valLoss)) }
        return byDomain.mapValues { $0.reduce(0, +) / Double($0.count) }
    }

    /// Writes one record with this interval's bytes, then resets them.
    func write(round: Int, trainLoss: Double?, participants: Int, dropped: Int, simTime: Double, clusters: [String: Int]?,
               tier: Reports.Tier = .cloud, edge: Int? = nil) {
        let val = valLoss()
        service.bytesUp += bytesUp; service.bytesDown += bytesDown
        service.simTime = simTime
        let record = MetricRecord(round: round, paradigm: experiment.federation.paradigm, tier: tier, cluster: nil,
                                  trainLoss: trainLoss, valLoss: val, bytesUp: bytesUp, bytesDown: bytesDown,
                                  participants: participants, dropped: dropped,
                                  wallSeconds: AggregatorService.now() - service.startWall, simTimeSeconds: simTime, clusters: clusters, edge: edge)
        bytesUp = 0; bytesDown = 0
        service.records.append(record)
        do { try service.writer?.append(record) } catch { service.telemetry.event(.error, "metrics", "\(error)") }
        service.telemetry.publish(.metric(Metric(name: "val_loss", value: val.values.reduce(0, +) / Double(max(1, val.count)),
                                                 labels: ["round": "\(round)"])), kind: "metric")
    }

    /// The ClusterManager publishes the cluster map (map_seq bumped on a change): sent as a ClusterMap of devices.
    func tellManager(_ map: [String: Int]) {
        guard map != toldManager else { return }
        toldManager = map
        let members = map.sorted { $0.key < $1.key }.map {
            ClusterMember(nodeId: $0.key, role: .device, cluster: UInt32(max(0, $0.value)), edge: 0, alive: true, endpoint: "")
        }
        service.sendToManager(.clusterMap(ClusterMap(mapSeq: 0, members: members, snapshot: false)))
    }

    /// Decodes an upload's delta in the global layout; a rejection is counted by the service.
    func decodeDelta(_ u: UpdateUpload) -> Decoded {
        if let problem = AdapterWire.mismatch(u.delta, layout: layout) {
            return .bad(service.coordinator.reject(kind: "wrong_shape", reason: problem))
        }
        do { return .ok(try AdapterWire.flat(u.delta)) } catch {
            return .bad(service.coordinator.reject(kind: "undecodable", reason: "\(error)"))
        }
    }

    /// An accepted upload of an open per-cluster round, with what the virtual clock needs.
    struct Delivered { var update: ModelUpdate; var computeS: Double; var bytes: Int }

    /// A device's upload to the open per-cluster round `wire` (flat clustered, clustered edge): retries and wrong
    /// rounds answered, the delta decoded and checked against the device's cluster model, then kept in `delivered`.
    func acceptClusterUpload(_ u: UpdateUpload, from device: String, bytes: Int, open: Bool, wire: UInt64, round: Int,
                             participants: [String], fed: ClusteredFederation?,
                             delivered: inout [String: Delivered]) -> RoundCoordinator.Decision {
        guard open, u.round == wire else {
            if delivered[device] != nil || u.round < wire { return .duplicate }
            return service.coordinator.reject(kind: "wrong_round", reason: "update for \(u.round), open round is \(wire)")
        }
        if delivered[device] != nil { return .duplicate }
        guard participants.contains(device), let fed, let model = fed.model(forDevice: device) else {
            return service.coordinator.reject(kind: "not_participant", reason: "\(device) was not sampled for round \(round)")
        }
        let delta: [Float]
        switch decodeDelta(u) {
        case .ok(let d): delta = d
        case .bad(let decision): return decision
        }
        let update = ModelUpdate(device: device, round: UInt64(round), samples: Int(clamping: u.samples),
                                 baseVersion: u.baseVersion == wire ? model.version : u.baseVersion &+ 1_000_000,
                                 delta: delta, loss: u.trainLoss)
        if let problem = fed.check(update) { return service.coordinator.reject(kind: problem.kind, reason: problem.reason) }
        delivered[device] = Delivered(update: update, computeS: u.computeS, bytes: bytes)
        return .accepted
    }

    /// The device's scenario index (registration order, as the sync path uses).
    func index(_ device: String) -> Int { service.deviceIndex[device] ?? deviceOrdinal(device) }

    /// With --checkpoint, counts this driver's starts in `<checkpoint>/incarnation`. After a restart (count > 0) the
    /// wire ids start at count << 32: devices only take rounds above the last one they trained, so a restarted driver
    /// must send higher ids, while a fresh run keeps the ids (and with them the training seeds) of an uninterrupted
    /// one. Drivers that do not resume (`resumes` false) say they start over.
    func beginIncarnation(resumes: Bool) {
        guard let store = service.checkpoints else { return }
        let file = store.directory.appendingPathComponent("incarnation")
        let before = (try? String(contentsOf: file, encoding: .utf8)).flatMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
        do {
            try FileManager.default.createDirectory(at: store.directory, withIntermediateDirectories: true)
            try Data("\(before + 1)\n".utf8).write(to: file, options: .atomic)
        } catch {
            service.telemetry.event(.error, "checkpoint", "cannot write \(file.path): \(error)")
        }
        guard before > 0 else { return }
        wire = max(wire, before << 32)
        if !resumes {
            service.telemetry.event(.warn, "restart", "restart \(before) of a \(experiment.federation.paradigm) run that does not resume: starting over (metrics records start again at round 0)")
        }
    }

    /// Writes a clustered checkpoint: the cluster state and models (ClusteredCheckpoint), the round, the wire and the
    /// clocks, in the same atomic checkpoint folder as FedAvg's.
    func saveClusterCheckpoint(round r: Int, _ snapshot: (state: ClusteredFederationSnapshot, models: [Int: [Float]]), simTime: Double,
                               counters: [String: Int] = [:]) {
        guard let store = service.checkpoints else { return }
        var adapter = service.template
        do {
            try adapter.load(flat: service.coordinator.global.parameters)
            let files = try ClusteredCheckpoint(federation: snapshot.state, domains: domains, models: snapshot.models, counters: counters).files()
            try store.save(state: .init(round: UInt64(r), version: wire, paradigm: experiment.federation.paradigm, bytesUp: service.bytesUp,
                                        bytesDown: service.bytesDown, simTimeS: simTime, wire: wire), adapter: adapter, files: files)
        } catch {
            service.telemetry.event(.error, "checkpoint", "cannot write checkpoint: \(error)")
        }
    }

    /// The clustered checkpoint the service resumed from (nil: a fresh start); restores the wire and the domains.
    func loadClusterCheckpoint() throws -> (checkpoint: ClusteredCheckpoint, state: CheckpointStore.State)? {
        guard let st = service.resumed, let store = service.checkpoints else { return nil }
        let r = try ClusteredCheckpoint(store: store, layout: layout)
        domains = r.domains
        wire = max(wire, st.wire ?? st.version)
        service.telemetry.event(.info, "resume", "\(experiment.federation.paradigm) run resumes after round \(st.round) with \(Set(r.federation.assignment.values).count) clusters")
        return (r, st)
    }

    /// Closes a per-cluster device round (flat clustered, clustered edge): aggregates what `participants` delivered,
    /// records the exact-LoRA gaps and advances `simTime` to the slowest simulated arrival (the deadline if none came).
    func closeClusterRound(_ fed: inout ClusteredFederation, participants: [String], delivered: [String: Delivered], modelBytes: Int,
                           simTime: inout Double) -> (round: ClusteredRound, updates: [ModelUpdate]) {
        let updates = participants.compactMap { delivered[$0]?.update }
        let result = fed.aggregate(updates)
        recordExactLoRA(result)
        let start = simTime
        let arrivals = delivered.values.map { d in
            simulatedArrival(device: d.update.device, index: index(d.update.device), modelBytes: modelBytes, updateBytes: d.bytes,
                             computeS: d.computeS, cost: service.cost, roundStart: start).seconds
        }
        simTime += arrivals.max() ?? experiment.federation.deadlineS
        return (result, updates)
    }

    /// Keeps a clustered round's exact-LoRA gaps and reports clusters whose exact combine failed.
    func recordExactLoRA(_ r: ClusteredRound) {
        gaps += r.naiveProductGaps.sorted { $0.key < $1.key }.map(\.value)
        for (c, e) in r.combineErrors.sorted(by: { $0.key < $1.key }) {
            service.telemetry.event(.error, "lora", "cluster \(c): \(e); kept the naive mean")
        }
    }

    /// Summary note `naive_product_gap_mean` (exact LoRA modes only).
    var gapNotes: [String: String] {
        gaps.isEmpty ? [:] : ["naive_product_gap_mean": String(format: "%.6f", gaps.reduce(0, +) / Double(gaps.count))]
    }
}

extension AggregatorService {
    /// The driver of the experiment's paradigm; nil = the built-in synchronous FedAvg state machine.
    func makeDriver() throws -> RoundDriver? {
        let e = options.experiment
        switch e.federation.paradigm {
        case "clustered": return try ClusteredDriver(service: self)
        case "hierarchical" where e.isClusteredHierarchical:
            return options.tier == .edge ? try ClusteredEdgeDriver(service: self) : try ClusteredCloudDriver(service: self)
        case "async": return try AsyncDriver(service: self)
        case "fedavg" where e.loraAggregation != "naive":
            // FedAvg = one oracle cluster holding every device; the clustered driver does the exact LoRA modes.
            return try ClusteredDriver(service: self, singleCluster: true)
        default: return nil
        }
    }
}
