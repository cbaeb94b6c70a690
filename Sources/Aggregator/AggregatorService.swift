import Bus
import Engine
import Experiments
import Federation
import Foundation
import Messages
import Reports
import Wire

/// One aggregator (flat, edge or cloud tier): a thin interpreter around the round engine. Frames in become engine
/// events, the engine's effects become frames, files and telemetry (AggregatorService+Wire.swift). It makes no
/// algorithm decision: which round, who trains what, what is accepted and when to finish are the engine's.
public final class AggregatorService: @unchecked Sendable {  // safe: state only touched on `loop`
    public struct Options: Sendable {
        public var id = "aggregator"
        public var tier: Messages.Tier = .cloud
        public var manager: String
        public var router: String
        public var pub: String
        public var advertise: String?
        /// Resumes from and persists to this folder (engine snapshot + journal, and the cluster adapters).
        public var checkpoint: String?
        public var telemetry: String?
        /// Writes metrics.jsonl + summary.json here when set.
        public var metrics: String?
        public var heartbeatMs = 1000
        public var experiment: Experiment
        /// Ask devices for validation loss before the first and after every round.
        public var evaluate = true
        public var quiet = false
        /// Edge tier: the cloud aggregator's ROUTER.
        public var upstream: String?
        public init(manager: String, router: String, pub: String, experiment: Experiment) {
            self.manager = manager; self.router = router; self.pub = pub; self.experiment = experiment
        }
    }

    public struct Status: Sendable {
        public var completedRound: Int
        public var version: UInt64
        public var rejections: [String: Int]
        public var global: [Float]
        public var models: [Int: [Float]]
        public var finished: Bool
        public var records: [MetricRecord]
        public var openRound: UInt64?
        public var waitingFor: [String]
    }

    public let loop: ServiceLoop
    public let routerEndpoint: String
    public let pubEndpoint: String
    let options: Options
    let router: Socket, pub: Socket, manager: Socket
    var upstream: Socket?
    let telemetry: TelemetryOut
    var engine: RoundEngine
    let template: LoRAAdapter
    let layout: Federation.ParameterLayout
    let store: EngineStore?
    let writer: MetricsWriter?
    let role: TierRole
    var seq: UInt64 = 0
    var mapSeq: UInt64 = 0
    var registered = false
    var records: [MetricRecord] = []
    var finishHandlers: [@Sendable () -> Void] = []
    var loggedRound = -1
    let wire: RoundWire
    let started = AggregatorService.now()

    /// `initial`: the adapter the run starts from (Experiment.initialAdapter); a checkpoint in `options.checkpoint` wins.
    public init(_ options: Options, initial: LoRAAdapter, context: BusContext = .shared) throws {
        let e = options.experiment
        if options.tier == .edge {
            guard e.isHierarchical else { throw HierarchyError.edgeNeedsHierarchicalParadigm(paradigm: e.federation.paradigm) }
            guard let up = options.upstream, !up.isEmpty else { throw HierarchyError.edgeNeedsUpstream(id: options.id) }
        }
        self.options = options
        template = initial
        layout = try AdapterWire.layout(of: initial)
        role = e.role(tier: options.tier == .edge ? "edge" : "cloud", id: options.id)
        let global = GlobalModel(layout: layout, parameters: initial.flatten())
        let bytes = AdapterWire.modelMessageBytes(global.parameters, layout: layout, sender: options.id)
        let setup = try e.engine(id: options.id, role: role, initial: global, modelBytes: bytes, evaluate: options.evaluate,
                                 persistent: options.checkpoint != nil, heartbeatS: Double(options.heartbeatMs) / 1000)
        wire = RoundWire(sender: options.id, layout: layout, role: role, paradigm: e.federation.paradigm, deadlineS: setup.config.deadlineS)
        store = options.checkpoint.map { EngineStore(directory: URL(fileURLWithPath: $0)) }
        telemetry = try TelemetryOut(endpoint: options.telemetry, sender: options.id, context: context)
        telemetry.quiet = options.quiet
        if let (snapshot, journal, dropped) = try store?.load() {
            engine = try RoundEngine(restoring: snapshot, journal: journal, config: setup.config, algorithm: setup.algorithm, cost: setup.cost)
            telemetry.event(.info, "resume", "resuming in round \(engine.round) (\(engine.phase.rawValue)) with \(journal.count) journalled inputs"
                            + (dropped > 0 ? "; dropped a torn journal tail of \(dropped) bytes" : ""))
        } else {
            engine = RoundEngine(config: setup.config, algorithm: setup.algorithm, cost: setup.cost)
        }
        writer = try options.metrics.map { try MetricsWriter(directory: URL(fileURLWithPath: $0)) }
        loop = ServiceLoop(name: options.id)
        (router, routerEndpoint) = try Socket.serviceRouter(bind: options.router, context: context)
        pub = try Socket(.pub, context: context)
        try pub.set(.sendHighWaterMark(10_000))
        pubEndpoint = try pub.bind(options.pub)
        manager = try Socket(.dealer, context: context)
        try manager.set(.routingId(Array(options.id.utf8)))
        try manager.connect(options.manager)
        if options.tier == .edge, let up = options.upstream {
            let s = try Socket(.dealer, context: context)
            try s.set(.routingId(Array(options.id.utf8)))
            try s.connect(up)
            upstream = s
            loop.add(s) { [unowned self] _, frames in handleUpstream(frames) }
        }
        loop.add(router) { [unowned self] _, frames in handleRouter(frames) }
        loop.add(manager) { [unowned self] _, frames in handleManager(frames) }
        loop.add(pub) { _, _ in }
        loop.every(.milliseconds(max(1, options.heartbeatMs))) { [unowned self] in heartbeat() }
        loop.every(.milliseconds(20)) { [unowned self] in run(.tick) }
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    public func start() {
        loop.post { [self] in register() }
        loop.start()
    }

    public func stop() {
        loop.post { [self] in telemetry.close(); store?.close() }
        loop.stop()
    }

    /// After `stop()`, from another thread (an executable before it exits): closes the sockets so the context's
    /// termination can flush what they still queue.
    public func closeSockets() {
        for s in [router, pub, manager] + [upstream].compactMap({ $0 }) { s.close() }
    }

    /// Runs `body` (on the loop thread) once the run has finished.
    public func onFinish(_ body: @escaping @Sendable () -> Void) {
        loop.post { [self] in
            if engine.isFinished { body() } else { finishHandlers.append(body) }
        }
    }

    public func status() async throws -> Status {
        try await loop.perform {
            let e = self.engine
            let models = e.models
            return Status(completedRound: e.round, version: models[0]?.version ?? 0, rejections: e.rejections,
                          global: models[0]?.parameters ?? [], models: models.mapValues(\.parameters), finished: e.isFinished,
                          records: self.records, openRound: e.openRoundStatus?.wire, waitingFor: e.openRoundStatus?.waitingFor ?? [])
        }
    }

    /// Hands one event to the engine and carries out its effects; `reply` answers the message being handled.
    func run(_ event: EngineEvent, reply: (peer: [UInt8], seq: UInt64)? = nil) {
        let effects = engine.handle(event, now: Self.now())
        if engine.round != loggedRound { loggedRound = engine.round; telemetry.setRound(engine.round) }
        for effect in effects { perform(effect, reply: reply) }
    }

    // MARK: the cluster manager

    func register() {
        let endpoint = options.advertise ?? routerEndpoint
        sendToManager(.register(Register(role: options.tier == .edge ? .edgeAggregator : .cloudAggregator, nodeId: options.id, endpoint: endpoint)))
    }

    func heartbeat() {
        if !registered { register() }
        sendToManager(.heartbeat(Heartbeat(round: UInt64(engine.round), load: 0)))
        // Also on the telemetry bus, so a tap that joined late still sees the aggregator between rounds.
        telemetry.publish(.metric(Metric(name: "completed_round", value: Double(engine.round))), kind: "metric")
        sendToManager(.snapshotRequest(SnapshotRequest(topic: "map")))
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
            if !map.members.contains(where: { $0.nodeId == options.id }) { registered = false }
            run(.members(RoundWire.members(map)))
        default: break
        }
    }

    /// The run is over: the summary and the final adapters are written, then the finish handlers run.
    func finished(_ summary: RunSummary?) {
        telemetry.event(.info, "finished", "finished after round \(engine.round)"
                        + (summary.map { ", final val loss \($0.finalValLoss.sorted { $0.key < $1.key }.map { "\($0.key)=\(String(format: "%.4f", $0.value))" }.joined(separator: " "))" } ?? ""))
        if let summary, let writer {
            do { try writer.writeSummary(summary) } catch { telemetry.event(.error, "summary", "\(error)") }
        }
        writeAdapters()
        let handlers = finishHandlers
        finishHandlers = []
        for h in handlers { h() }
    }

    /// `<checkpoint>/clusters/cluster-<c>/`: every cluster's adapter (PEFT), for serving.
    func writeAdapters() {
        guard let dir = options.checkpoint else { return }
        if case .edge = role { return }
        for (c, why) in AdapterWire.writeClusters(engine.models.mapValues(\.parameters), template: template, directory: dir).sorted(by: { $0.key < $1.key }) {
            telemetry.event(.error, "checkpoint", "cannot write the adapter of cluster \(c): \(why)")
        }
    }
}
