import Bus
import ClusterManager
import Engine
import Federation
import Foundation
import Messages
import Reports

/// One aggregator (tier cloud in flat FedAvg): registers with the manager, runs synchronous rounds over PUB
/// (announcement, model, eval requests) and ROUTER (uploads, model requests, eval results), checkpoints after
/// every round and writes one MetricRecord per round. Round logic lives in `RoundCoordinator`.
public final class AggregatorService: @unchecked Sendable {  // safe: state only touched on `loop`
    public struct Options: Sendable {
        public var id = "aggregator"
        public var tier: Messages.Tier = .cloud
        public var manager: String
        public var router: String
        public var pub: String
        public var advertise: String?
        public var checkpoint: String?
        public var telemetry: String?
        /// Writes metrics.jsonl + summary.json here when set.
        public var metrics: String?
        public var heartbeatMs = 1000
        public var experiment: Experiment
        /// Ask devices for validation loss before the first and after every round.
        public var evaluate = true
        public var quiet = false
        /// Overrides the strategy the experiment's paradigm names (Federation registry).
        public var strategy: (any AggregationStrategy)?
        /// Edge tier: the cloud aggregator's ROUTER.
        public var upstream: String?
        public init(manager: String, router: String, pub: String, experiment: Experiment) {
            self.manager = manager; self.router = router; self.pub = pub; self.experiment = experiment
        }
    }

    public struct Status: Sendable {
        public var completedRound: UInt64
        public var version: UInt64
        public var rejections: [String: Int]
        public var global: [Float]
        public var finished: Bool
        public var records: [MetricRecord]
        /// The open training round and its participants that have not delivered yet.
        public var openRound: UInt64?
        public var waitingFor: [String]
    }

    enum Phase { case starting, idle, training, evaluating(round: UInt64, deadline: Double), finished }

    public let loop: ServiceLoop
    public let routerEndpoint: String
    public let pubEndpoint: String
    let options: Options
    let router: Socket, pub: Socket, manager: Socket
    let telemetry: TelemetryOut
    var coordinator: RoundCoordinator
    var template: LoRAAdapter
    let checkpoints: CheckpointStore?
    /// The checkpoint this aggregator resumed from (a round driver restores its own state from it).
    var resumed: CheckpointStore.State?
    let writer: MetricsWriter?
    let cost: any EdgeCostModel
    var phase: Phase = .starting
    var seq: UInt64 = 0
    var mapSeq: UInt64 = 0
    var alive: [String] = []
    var deviceIndex: [String: Int] = [:]
    var evalResults: [String: EvalResult] = [:]
    var evalExpected: Set<String> = []
    var lastRepublish = 0.0
    var roundStartWall = 0.0
    let startWall = AggregatorService.now()
    var bytesUp = 0, bytesDown = 0, roundBytesUp = 0, roundBytesDown = 0
    var simTime = 0.0
    var lastClosed: RoundCoordinator.Closed?
    var records: [MetricRecord] = []
    var finishHandlers: [@Sendable () -> Void] = []
    var registered = false
    /// Hierarchical runs: this aggregator's tier state (EdgeTier.swift); nil in flat runs.
    var hierarchy: HierarchyState?
    /// The paradigm's round logic (clustered, async); nil = the synchronous FedAvg state machine below.
    var driver: RoundDriver?

    /// `initial`: the adapter round 1 starts from (AdapterWire.initialAdapter); a checkpoint in `options.checkpoint` wins.
    public init(_ options: Options, initial: LoRAAdapter, cost: (any EdgeCostModel)? = nil, context: BusContext = .shared) throws {
        try Self.checkTier(options)
        self.options = options
        self.cost = try cost ?? Self.tierCost(options)
        loop = ServiceLoop(name: options.id)
        (router, routerEndpoint) = try Socket.serviceRouter(bind: options.router, context: context)
        pub = try Socket(.pub, context: context)
        try pub.set(.sendHighWaterMark(10_000))
        pubEndpoint = try pub.bind(options.pub)
        manager = try Socket(.dealer, context: context)
        try manager.set(.routingId(Array(options.id.utf8)))
        try manager.connect(options.manager)
        telemetry = try TelemetryOut(endpoint: options.telemetry, sender: options.id, context: context)
        telemetry.quiet = options.quiet
        template = initial
        let strategy = try options.strategy ?? Self.tierStrategy(options) ?? Self.strategy(for: options.experiment)
        var global = GlobalModel(layout: try AdapterWire.layout(of: initial), parameters: initial.flatten())
        var completed: UInt64 = 0
        checkpoints = options.checkpoint.map { CheckpointStore(directory: URL(fileURLWithPath: $0)) }
        if let store = checkpoints,
           let (state, adapter) = try store.load(like: initial) {
            global.parameters = adapter.flatten()
            global.version = state.version
            completed = state.round
            resumed = state
            bytesUp = state.bytesUp; bytesDown = state.bytesDown; simTime = state.simTimeS
            phase = .idle
        }
        coordinator = RoundCoordinator(strategy: strategy, global: global, completedRound: Self.resumeRound(options, completed), quorum: Self.tierQuorum(options))
        writer = try options.metrics.map { try MetricsWriter(directory: URL(fileURLWithPath: $0)) }
        if !options.evaluate, case .starting = phase { phase = .idle }
        if completed > 0 { telemetry.event(.info, "resume", "resuming after round \(completed) at version \(global.version)") }

        loop.add(router) { [unowned self] _, frames in handleRouter(frames) }
        loop.add(manager) { [unowned self] _, frames in handleManager(frames) }
        loop.add(pub) { _, _ in }
        loop.every(.milliseconds(max(1, options.heartbeatMs))) { [unowned self] in heartbeat() }
        loop.every(.milliseconds(20)) { [unowned self] in drive() }
        try setUpHierarchy(context: context)
        driver = try makeDriver()
    }

    /// The experiment's paradigm as a Federation strategy: fedavg → FedAvg (sample-weighted, sync, staleness 0).
    /// FedAsync/FedBuff/hierarchical plug in here by name once their round drivers exist.
    public static func strategy(for e: Experiment) throws -> any AggregationStrategy {
        // Clustered and async run in their RoundDriver; the coordinator's FedAvg then only counts rejections.
        var spec = StrategySpec(name: ["clustered", "async"].contains(e.federation.paradigm) ? "fedavg" : e.federation.paradigm)
        spec.fraction = e.federation.fraction
        spec.quorum = e.federation.quorum
        spec.minDevices = 1
        spec.seed = e.seed
        return try makeAggregationStrategy(spec)
    }

    public func start() {
        loop.post { [self] in register() }
        loop.start()
    }

    public func stop() {
        loop.post { [self] in telemetry.close() }
        loop.stop()
    }

    /// After `stop()`, from another thread (an executable before it exits): closes the sockets so the context's
    /// termination can flush what they still queue.
    public func closeSockets() {
        for s in [router, pub, manager] + [hierarchy?.upstream].compactMap({ $0 }) { s.close() }
    }

    /// Runs `body` (on the loop thread) once the last round has been recorded.
    public func onFinish(_ body: @escaping @Sendable () -> Void) {
        loop.post { [self] in
            if case .finished = phase { body() } else { finishHandlers.append(body) }
        }
    }

    public func status() async throws -> Status {
        try await loop.perform {
            var done = false
            if case .finished = self.phase { done = true }
            return Status(completedRound: self.coordinator.completedRound, version: self.coordinator.global.version,
                          rejections: self.coordinator.rejections, global: self.coordinator.global.parameters,
                          finished: done, records: self.records, openRound: self.coordinator.current?.round,
                          waitingFor: self.coordinator.current.map { r in r.participants.filter { !r.accepted.contains($0) } } ?? [])
        }
    }

    // MARK: manager

    func register() {
        let endpoint = options.advertise ?? routerEndpoint
        sendToManager(.register(Register(role: options.tier == .edge ? .edgeAggregator : .cloudAggregator, nodeId: options.id, endpoint: endpoint)))
    }

    func heartbeat() {
        if !registered { register() }
        sendToManager(.heartbeat(Heartbeat(round: coordinator.completedRound, load: 0)))
        // Also on the telemetry bus, so a tap that joined late still sees the aggregator between rounds.
        telemetry.publish(.metric(Metric(name: "completed_round", value: Double(coordinator.completedRound))), kind: "metric")
        sendToManager(.snapshotRequest(SnapshotRequest(topic: "map")))
        hierarchyHeartbeat()
    }

    func sendToManager(_ body: Body) {
        seq += 1
        try? manager.send(Envelope(sender: options.id, seq: seq, body: body), dontWait: true)
    }

    func handleManager(_ frames: [[UInt8]]) {
        guard let env = try? Envelope.decode(frames: frames, limits: serviceDecodeLimits) else { return }
        switch env.body {
        case .assignment: registered = true
        case .clusterMap(let map) where map.mapSeq >= mapSeq:
            mapSeq = map.mapSeq
            let devices = participants(in: map)
            for (i, d) in devices.enumerated() where deviceIndex[d.nodeId] == nil { deviceIndex[d.nodeId] = participantIndex(d.nodeId, position: i) }
            alive = devices.filter(\.alive).map(\.nodeId)
            if !map.members.contains(where: { $0.nodeId == options.id }) { registered = false }
        default: break
        }
    }

    // MARK: the round state machine driver

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    func drive() {
        let now = Self.now()
        if let driver { driver.drive(now: now); return }
        let f = options.experiment.federation
        switch phase {
        case .starting:
            guard alive.count >= coordinator.quorum, readyToStart else { return }
            roundStartWall = now
            startEval(round: 0, now: now)
        case .idle:
            if let total = totalRounds, coordinator.completedRound >= total { finish(); return }
            guard mayOpenRound else { return }
            guard let participants = coordinator.open(available: alive, now: now, deadlineS: f.deadlineS) else { return }
            roundStartWall = now
            roundBytesUp = 0; roundBytesDown = 0
            publishRound(to: participants)
            phase = .training
            lastRepublish = now
        case .training:
            if coordinator.shouldClose(now: now) {
                closeRound(now: now)
            } else if now - lastRepublish > Double(options.heartbeatMs) / 1000 {
                lastRepublish = now
                if let r = coordinator.current {
                    for d in r.participants where !r.accepted.contains(d) { send(.round(announcement(r)), to: d) }
                }
            }
        case .evaluating(let round, let deadline):
            if evalExpected.isSubset(of: Set(evalResults.keys)) || now >= deadline {
                recordRound(round)
            } else if now - lastRepublish > Double(options.heartbeatMs) / 1000 {
                lastRepublish = now
                for d in evalResendTargets { send(.evalRequest(EvalRequest(round: round)), to: d) }
            }
        case .finished:
            return
        }
    }

    var cachedModelBytes: Int?
    /// Encoded size of one model message (the layout is fixed, so it is computed once).
    var modelBytes: Int {
        if let b = cachedModelBytes { return b }
        let b = modelEnvelope(round: 0).encodeFrames().reduce(0) { $0 + $1.count }
        cachedModelBytes = b
        return b
    }

    func announcement(_ r: RoundCoordinator.OpenRound) -> RoundAnnouncement {
        let f = options.experiment.federation
        return RoundAnnouncement(round: r.round, paradigm: .fedAvg, tier: roundTier, cluster: 0, localSteps: UInt32(roundLocalSteps),
                                 learningRate: Float(f.lr), participants: r.participants, deadlineS: f.deadlineS,
                                 modelVersion: coordinator.global.version)
    }

    func modelEnvelope(round: UInt64) -> Envelope {
        Envelope(sender: options.id, body: .model(ModelBroadcast(
            round: round, cluster: 0, tier: roundTier, modelVersion: coordinator.global.version,
            tensors: AdapterWire.tensors(coordinator.global.parameters, layout: coordinator.global.layout))))
    }

    /// Announcement and model go to each participant over the ROUTER (routing id = node id), so a device that
    /// connects late still gets them on the next resend; the PUB carries the announcement for observers.
    func publishRound(to participants: [String]) {
        guard let r = coordinator.current else { return }
        let ann = announcement(r)
        publish(.round(ann), topic: "round/0")
        sendModel(round: r.round, to: participants, before: .round(ann))
    }

    /// Encodes the model once and sends the same frames (zero-copy) to every device.
    func sendModel(round: UInt64, to devices: [String], before: Body? = nil, after: Body? = nil) {
        seq += 1
        var env = modelEnvelope(round: round)
        env.seq = seq
        let frames = env.encodeFrames()
        let size = frames.reduce(0) { $0 + $1.count }
        for d in devices {
            if let before { send(before, to: d) }
            do {
                try router.send([Array(d.utf8)] + frames, dontWait: true)
                roundBytesDown += size
            } catch {
                // Not connected (yet): the resend timer or the device's ModelRequest covers it.
            }
            if let after { send(after, to: d) }
        }
    }

    func send(_ body: Body, to device: String) {
        seq += 1
        try? router.send(Envelope(sender: options.id, seq: seq, body: body), prefix: [Array(device.utf8)], dontWait: true)
    }

    func publish(_ body: Body, topic: String) {
        seq += 1
        try? pub.send(Envelope(sender: options.id, seq: seq, body: body), prefix: [Array(topic.utf8)], dontWait: true)
    }

    func closeRound(now: Double) {
        guard let open = coordinator.current, let closed = coordinator.close() else { return }
        let f = options.experiment.federation
        // Virtual clock: the sync round lasts until its slowest accepted participant arrives.
        let arrivals = closed.accepted.map { d in
            simulatedArrival(device: d, index: deviceIndex[d] ?? 0, modelBytes: modelBytes, updateBytes: open.updateBytes[d] ?? 0,
                             computeS: open.computeS[d] ?? 0, cost: cost, roundStart: simTime)
        }
        simTime += arrivals.map(\.seconds).max() ?? f.deadlineS
        lastClosed = closed
        switch closed.outcome {
        case .applied(let result):
            telemetry.event(.info, "round", "round \(closed.round): \(closed.accepted.count)/\(closed.participants.count) updates, version \(result.version), dropped \(closed.dropped.count)")
        default:
            telemetry.event(.warn, "round", "round \(closed.round) closed without aggregation (\(closed.outcome)); dropped \(closed.dropped.count)")
        }
        if let store = checkpoints {
            var adapter = template
            do {
                try adapter.load(flat: coordinator.global.parameters)
                try store.save(state: .init(round: closed.round, version: coordinator.global.version, paradigm: f.paradigm,
                                            bytesUp: bytesUp, bytesDown: bytesDown, simTimeS: simTime), adapter: adapter)
            } catch {
                telemetry.event(.error, "checkpoint", "cannot write checkpoint: \(error)")
            }
        }
        afterTierRound(closed)
        if options.evaluate && !isEdge {
            startEval(round: closed.round, now: now)
        } else {
            recordRound(closed.round)
        }
    }

    func startEval(round: UInt64, now: Double) {
        evalResults = [:]
        evalExpected = Set(evalPopulation)
        sendModel(round: round, to: evalTargets.sorted(), after: .evalRequest(EvalRequest(round: round)))
        lastRepublish = now
        phase = .evaluating(round: round, deadline: now + options.experiment.federation.deadlineS)
    }

    func recordRound(_ round: UInt64) {
        var byDomain: [String: [Double]] = [:]
        for r in evalResults.values where r.round == round && r.valLoss.isFinite { byDomain[r.domain, default: []].append(Double(r.valLoss)) }
        let val = byDomain.mapValues { $0.reduce(0, +) / Double($0.count) }
        bytesUp += roundBytesUp; bytesDown += roundBytesDown
        let closed = round == 0 ? nil : lastClosed
        let record = MetricRecord(round: Int(round), paradigm: options.experiment.federation.paradigm, tier: recordTier, cluster: 0,
                                  trainLoss: closed?.trainLoss, valLoss: val, bytesUp: roundBytesUp, bytesDown: roundBytesDown,
                                  participants: closed?.participants.count ?? 0, dropped: closed?.dropped.count ?? 0,
                                  wallSeconds: Self.now() - startWall, simTimeSeconds: simTime, edge: isEdge ? hierarchy?.edge : nil)
        roundBytesUp = 0; roundBytesDown = 0
        records.append(record)
        do { try writer?.append(record) } catch { telemetry.event(.error, "metrics", "\(error)") }
        telemetry.publish(.metric(Metric(name: "val_loss", value: val.values.reduce(0, +) / Double(max(1, val.count)),
                                         labels: ["round": "\(round)"])), kind: "metric")
        phase = .idle
    }

    func finish() {
        phase = .finished
        if let writer, writesSummary {
            let final = records.last(where: { !$0.valLoss.isEmpty })?.valLoss ?? [:]
            let summary = RunSummary(paradigm: options.experiment.federation.paradigm, rounds: driver?.completedRounds ?? Int(coordinator.completedRound),
                                     devices: isHierarchicalCloud ? (hierarchy?.plan.devices ?? 0) : deviceIndex.count, finalValLoss: final, bytesUp: bytesUp, bytesDown: bytesDown,
                                     wallSeconds: Self.now() - startWall, simTimeSeconds: simTime, ari: driver?.summaryARI,
                                     notes: (driver?.summaryNotes ?? [:]).merging(["name": options.experiment.name, "seed": "\(options.experiment.seed)",
                                             "model": options.experiment.model, "scenario": options.experiment.scenarioName,
                                             "rejected": "\(coordinator.rejections.values.reduce(0, +))",
                                             "initial_val_loss": records.first(where: { $0.round == 0 })
                                                .map { $0.valLoss.sorted { $0.key < $1.key }.map { "\($0.key)=\(String(format: "%.4f", $0.value))" }.joined(separator: " ") } ?? ""]) { $1 })
            do { try writer.writeSummary(summary) } catch { telemetry.event(.error, "summary", "\(error)") }
        }
        let handlers = finishHandlers
        finishHandlers = []
        for h in handlers { h() }
    }
}
