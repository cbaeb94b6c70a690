import DeviceWorker
import EdgeEnvironment
import Engine
import Experiments
import Federation
import Foundation
import Messages
import Reports
import Wire

/// `simulation: true`: the round engine driven on EdgeEnvironment's virtual clock instead of by the services. The
/// engine, the devices' local work (VirtualDevice on a TrainerPool over one shared base) and the update encoding
/// are the code the services run; only the clock and the transport differ. Time is accounted, not slept: a task's
/// upload reaches the engine at start + download + compute + upload from the scenario's cost model (heterogeneous
/// devices, fading, stragglers), devices go offline and come back (`devices.availability`), the engine's deadline
/// is virtual, and the training is real. Every task of a round trains at once on the pool; their uploads are then
/// handed to the engine in arrival order.
public final class SimulatedRun {
    public struct Options {
        public var experiment: Experiment
        public var out: String
        public var dataDir: String
        /// Trainers in the pool (nil: one per core).
        public var trainers: Int?
        public var showProgress = true
        public var quiet = false
        /// The engine's id (its checkpoint folder `<out>/checkpoints/<id>/`).
        public var id = "aggregator"
        /// Tests: a cost model instead of the scenario's, trainers and data instead of the model's and the partition's,
        /// and availability timelines instead of the scenario's churn.
        public var cost: (any EdgeCostModel)?
        public var makeTrainers: (() throws -> [any LocalTrainer])?
        public var loadData: (@Sendable (Int) throws -> DeviceData)?
        public var availability: ((Int) -> AvailabilityTimeline)?
        public init(experiment: Experiment, out: String, dataDir: String) {
            self.experiment = experiment; self.out = out; self.dataDir = dataDir
        }
    }

    public enum SimulationError: Error, CustomStringConvertible {
        case unsupported(String)
        case stalled(simTime: Double, phase: String)
        public var description: String {
            switch self {
            case .unsupported(let s): return s
            case let .stalled(t, p): return "the simulation stalled at sim time \(String(format: "%.1f", t)) s in phase \(p): no device can "
                + "take part any more (all offline for good, or fewer than the quorum)"
            }
        }
    }

    /// One task of one device on the virtual clock (a line of `arrivals.jsonl`).
    public typealias TaskTrace = TaskRecord

    public struct Outcome: Sendable {
        public var summary: RunSummary
        /// The final model of every cluster.
        public var models: [Int: [Float]]
        /// Every task, in the order the tasks started (`arrivals.jsonl`).
        public var trace: [TaskTrace]
        /// Wall seconds the driver spent outside the trainers (engine, scheduling, accounting, writing) and in total.
        public var driverSeconds: Double
        public var wallSeconds: Double
    }

    enum Event {
        case upload(device: Int, epoch: Int, trace: Int, upload: UpdateUpload, bytes: Int)
        case evaluation(device: Int, EvalResult)
        /// The engine's heartbeat: resends; every `livenessBeats`-th also tells it who is online.
        case heartbeat
        /// A deadline passes.
        case tick
        case availability(device: Int)
    }

    struct SimDevice {
        var device: VirtualDevice
        var timeline: AvailabilityTimeline
        /// Bumped when the device goes offline: uploads of an earlier epoch are lost.
        var epoch = 0
        /// Busy (training and uploading) until this virtual time.
        var busyUntil = 0.0
        /// The last task it started (a resend of it is a no-op).
        var startedWire: UInt64 = 0
        var answeredEval: UInt64 = 0
    }

    let o: Options
    let e: Experiment
    var engine: RoundEngine
    let cost: any EdgeCostModel
    let pool: TrainerPool
    let layout: Federation.ParameterLayout
    let template: LoRAAdapter
    let loadData: @Sendable (Int) throws -> DeviceData
    var devices: [SimDevice]
    var index: [String: Int] = [:]
    var clock = VirtualClock<Event>(start: 0)
    let writer: MetricsWriter
    var trace: [TaskTrace] = []
    var summary: RunSummary?
    var pendingTrainings: [(device: Int, task: LocalTask)] = []
    var pendingEvaluations: [(device: Int, wire: UInt64, parameters: [Float])] = []
    var membersChanged = true
    var beats = 0
    let livenessBeats = 4
    let bar: ProgressBar?
    let wallStart = SimulatedRun.wall()
    var waitingSeconds = 0.0
    var lastDeadline = -Double.infinity
    /// Virtual time of the last record: a run that makes no progress for long is stalled.
    var lastRecord = 0.0

    /// One line per task: start, download, compute, upload, arrival and what became of it.
    public static let arrivalsFile = RunFiles.arrivals

    static func wall() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// Runs the experiment to its end and writes `<out>/metrics.jsonl`, `summary.json`, `arrivals.jsonl` and the final
    /// adapters (`<out>/checkpoints/<id>/clusters/cluster-<c>/`).
    public static func run(_ o: Options) throws -> Outcome {
        let run = try SimulatedRun(o)
        return try run.run()
    }

    init(_ o: Options) throws {
        self.o = o
        e = o.experiment
        guard !e.isHierarchical else {
            throw SimulationError.unsupported("simulation runs flat federations (fedavg, clustered); run hierarchical experiments without `simulation: true`")
        }
        guard e.federation.paradigm != "async" else {
            throw SimulationError.unsupported("simulation runs synchronous rounds; run async experiments without `simulation: true`")
        }
        let n = e.data.devices
        cost = try o.cost ?? EdgeNetworkCost(scenario: e.scenario, devices: n)
        template = try e.initialAdapter()
        layout = try AdapterWire.layout(of: template)
        let global = GlobalModel(layout: layout, parameters: template.flatten())
        let bytes = AdapterWire.modelMessageBytes(global.parameters, layout: layout, sender: o.id)
        let setup = try e.engine(id: o.id, role: .flat, initial: global, modelBytes: bytes, evaluate: true, persistent: false, heartbeatS: 1)
        var config = setup.config
        config.virtualTime = true
        engine = RoundEngine(config: config, algorithm: setup.algorithm, cost: cost)

        let trainers: [any LocalTrainer]
        if let make = o.makeTrainers {
            trainers = try make()
            loadData = o.loadData ?? { _ in DeviceData(domain: "none", train: [0], validation: []) }
        } else {
            let base = try SharedBase(modelDir: e.model, experiment: e)
            let count = o.trainers ?? max(1, ProcessInfo.processInfo.activeProcessorCount)
            trainers = try (0..<max(1, count)).map { _ in try base.makeTrainer() }
            let data = try PartitionData(directory: o.dataDir, tokenizer: base.tokenizer, evalTokens: e.federation.evalTokens,
                                         keep: 4 * trainers.count)
            loadData = o.loadData ?? { try data.load(partition: $0) }
        }
        if trainers.count > 1 { singleThreadedBLAS() }
        pool = TrainerPool(trainers, name: "sim-trainer")

        let c = e.compression
        let encoder = try UpdateEncoder(codec: c.codec, topkFraction: c.topkFraction, errorFeedback: c.errorFeedback)
        let scenario = e.scenario
        devices = (0..<n).map { i in
            let timeline = o.availability?(i)
                ?? scenario.devices.availability.map { AvailabilityTimeline(spec: $0, seed: scenario.seed, device: i) } ?? .always
            return SimDevice(device: VirtualDevice(id: "device-\(i)", partition: i, encoder: encoder), timeline: timeline)
        }
        for (i, d) in devices.enumerated() { index[d.device.id] = i }
        try FileManager.default.createDirectory(atPath: o.out, withIntermediateDirectories: true)
        writer = try MetricsWriter(directory: URL(fileURLWithPath: o.out))
        bar = o.showProgress ? ProgressBar(total: e.federation.rounds + 1, label: "simulated rounds") : nil
    }

    deinit { pool.stop() }

    func run() throws -> Outcome {
        for (i, d) in devices.enumerated() where d.timeline.nextChange.isFinite {
            clock.schedule(at: d.timeline.nextChange, .availability(device: i))
        }
        clock.schedule(at: engine.config.heartbeatS, .heartbeat)
        deliver(.members(members()), at: 0)
        settle(at: 0)
        while summary == nil {
            guard let (t, event) = clock.next() else {
                throw SimulationError.stalled(simTime: engine.simTime, phase: engine.phase.rawValue)
            }
            handle(event, at: t)
            settle(at: t)
            // Nothing recorded for many deadlines (and churn periods): too few devices will ever be there.
            let patience = 20 * max(engine.config.deadlineS, e.scenario.devices.availability?.meanOfflineSeconds ?? 0)
            if summary == nil, t - lastRecord > patience {
                throw SimulationError.stalled(simTime: t, phase: engine.phase.rawValue)
            }
        }
        let wall = Self.wall() - wallStart
        var s = summary!
        s.wallSeconds = wall
        s.notes["simulation"] = "virtual clock"
        s.notes["trainers"] = "\(pool.count)"
        s.notes["driver_seconds"] = String(format: "%.3f", wall - waitingSeconds)
        // The engine, scheduling and bookkeeping as a share of the wall time (the rest is the devices' training).
        s.notes["driver_share"] = String(format: "%.4f", wall > 0 ? (wall - waitingSeconds) / wall : 0)
        if let peak = ProcessMemory.resident()?.peak { s.notes["peak_rss_bytes"] = "\(peak)" }
        try writer.writeSummary(s)
        for t in trace { try writer.appendLine(t, to: SimulatedRun.arrivalsFile) }
        let models = engine.models.mapValues(\.parameters)
        let dir = URL(fileURLWithPath: o.out).appendingPathComponent("checkpoints").appendingPathComponent(o.id).path
        for (c, why) in AdapterWire.writeClusters(models, template: template, directory: dir).sorted(by: { $0.key < $1.key }) {
            log(.error, "checkpoint", "cannot write the adapter of cluster \(c): \(why)")
        }
        bar?.finish()
        return Outcome(summary: s, models: models, trace: trace, driverSeconds: wall - waitingSeconds, wallSeconds: wall)
    }

    // MARK: events

    func handle(_ event: Event, at t: Double) {
        switch event {
        case .availability(let i):
            devices[i].timeline.advance()
            if !devices[i].timeline.online { devices[i].epoch += 1 }
            if devices[i].timeline.nextChange.isFinite { clock.schedule(at: devices[i].timeline.nextChange, .availability(device: i)) }
            membersChanged = true
        case .heartbeat:
            beats += 1
            if membersChanged && beats % livenessBeats == 0 {
                membersChanged = false
                deliver(.members(members()), at: t)
            }
            deliver(.tick, at: t)
            if summary == nil { clock.schedule(at: t + engine.config.heartbeatS, .heartbeat) }
        case .tick:
            deliver(.tick, at: t)
        case let .upload(i, epoch, k, upload, bytes):
            guard devices[i].epoch == epoch else { trace[k].outcome = .offline; return }
            trace[k].outcome = engine.openRoundStatus?.wire == upload.round ? .delivered : .late
            deliver(.upload(from: devices[i].device.id, UpdateWire.upload(upload, bytes: bytes, layout: layout, sketch: false)), at: t)
        case let .evaluation(i, r):
            guard devices[i].timeline.online else { return }
            deliver(.evaluation(from: devices[i].device.id, UpdateWire.evaluation(r)), at: t)
        }
    }

    /// Every device, alive when online (what the cluster manager's map says, a few heartbeats late).
    func members() -> [Member] {
        devices.map { Member(id: $0.device.id, role: .device, alive: $0.timeline.online) }
    }

    /// Lets the engine move on at `t` (open the next round, finish an evaluation) until it has nothing more to do.
    func settle(at t: Double) {
        for _ in 0..<8 where summary == nil {
            if !deliver(.tick, at: t) { break }
        }
    }

    /// Hands one event to the engine and carries out its effects (training and evaluation jobs run before this
    /// returns); true when there were effects.
    @discardableResult
    func deliver(_ event: EngineEvent, at t: Double) -> Bool {
        let effects = engine.handle(event, now: t)
        for effect in effects { perform(effect, at: t) }
        launch(at: t)
        return !effects.isEmpty
    }

    func perform(_ effect: EngineEffect, at t: Double) {
        switch effect {
        case .send(let m, let ids), .resend(let m, let ids):
            for id in ids { if let i = index[id] { receive(m, device: i, at: t) } }
        case .record(var r):
            r.wallSeconds = Self.wall() - wallStart
            lastRecord = engine.simTime
            do { try writer.append(r) } catch { log(.error, "metrics", "\(error)") }
            bar?.set(completed: min(e.federation.rounds + 1, r.round + 1), status: ProgressBar.roundStatus(r, rounds: e.federation.rounds))
        case .finished(let s):
            summary = s
        case .log(let level, let kind, let text):
            log(level, kind, text)
        case .acknowledge(.rejected(let kind, let reason), let wire):
            log(.warn, "rejected", "upload for \(wire): \(kind): \(reason)")
        case .acknowledge, .clusterMap, .journal, .checkpoint, .upstream, .updateLog:
            break
        }
    }

    /// A message reaches device `i` at `t`: an offline device misses it (the engine resends what is owed).
    func receive(_ m: Outbound, device i: Int, at t: Double) {
        guard devices[i].timeline.online else { return }
        switch m {
        case let .task(task, models):
            guard devices[i].startedWire < task.wire else { return }
            devices[i].startedWire = task.wire
            let candidates = task.models.compactMap { c in models[c].map { (cluster: c, version: task.wire, parameters: $0) } }
            guard !candidates.isEmpty else { return }
            pendingTrainings.append((i, LocalTask(round: task.wire, models: candidates, settings: task.settings)))
            deadlineTick(t + engine.config.deadlineS)
        case let .evaluate(wire, cluster, models, _):
            guard devices[i].answeredEval < wire, let p = models[cluster] else { return }
            devices[i].answeredEval = wire
            pendingEvaluations.append((i, wire, p))
            deadlineTick(t + engine.config.deadlineS)
        case .secAgg:
            break  // a configuration conflict: simulated devices have no privacy stage (central DP runs in the engine)
        }
    }

    /// One tick when a deadline passes (the engine closes the round or evaluation there).
    func deadlineTick(_ at: Double) {
        guard at > lastDeadline else { return }
        lastDeadline = at
        clock.schedule(at: at + 1e-9, .tick)
    }

    /// Runs the pending jobs on the pool (all at once) and schedules what they deliver: uploads at their arrival
    /// times, evaluations now.
    func launch(at t: Double) {
        guard !pendingTrainings.isEmpty || !pendingEvaluations.isEmpty else { return }
        let trainings = pendingTrainings, evaluations = pendingEvaluations
        pendingTrainings = []; pendingEvaluations = []
        let group = DispatchGroup()
        let results = Results(trainings: trainings.count, evaluations: evaluations.count)
        let seed = e.seed, layout = self.layout, cost = self.cost, load = loadData
        for (k, job) in trainings.enumerated() {
            var device = devices[job.device].device
            group.enter()
            pool.submit { trainer in
                let r = Result { () throws -> (UpdateUpload, UpdateEncoder) in
                    let up = try device.train(job.task, trainer: trainer, data: try load(device.partition), cost: cost, experimentSeed: seed, layout: layout)
                    return (up, device.encoder)
                }
                results.setTraining(k, r)
                group.leave()
            }
        }
        for (k, job) in evaluations.enumerated() {
            let device = devices[job.device].device
            group.enter()
            pool.submit { trainer in
                results.setEvaluation(k, Result { try device.evaluate(round: job.wire, parameters: job.parameters, trainer: trainer, data: try load(device.partition)) })
                group.leave()
            }
        }
        let waitStart = Self.wall()
        group.wait()
        waitingSeconds += Self.wall() - waitStart
        for (k, job) in evaluations.enumerated() {
            switch results.evaluations[k]! {
            case .success(let r): clock.schedule(at: t, .evaluation(device: job.device, r))
            case .failure(let error): log(.error, "eval", "\(devices[job.device].device.id): \(error)")
            }
        }
        for (k, job) in trainings.enumerated() {
            let i = job.device
            switch results.trainings[k]! {
            case .success(let (upload, encoder)):
                devices[i].device.encoder = encoder
                let bytes = Envelope(sender: devices[i].device.id, seq: 1, body: .update(upload)).encodeFrames().reduce(0) { $0 + $1.count }
                let start = max(t, devices[i].busyUntil)
                let modelBytes = engine.config.modelBytes * job.task.models.count
                let down = cost.downloadSeconds(bytes: modelBytes, device: deviceOrdinal(devices[i].device.id), at: start)
                let a = simulatedArrival(device: devices[i].device.id, index: deviceOrdinal(devices[i].device.id), modelBytes: modelBytes,
                                         updateBytes: bytes, computeS: upload.computeS, cost: cost, roundStart: start)
                let arrival = start + a.seconds
                devices[i].busyUntil = arrival
                trace.append(TaskTrace(wire: job.task.round, device: devices[i].device.id, start: start, downloadS: down, computeS: upload.computeS,
                                       uploadS: a.seconds - down - upload.computeS, arrival: arrival, outcome: .inFlight))
                clock.schedule(at: arrival, .upload(device: i, epoch: devices[i].epoch, trace: trace.count - 1, upload: upload, bytes: bytes))
            case .failure(let error):
                log(.error, "train", "\(devices[i].device.id) round \(job.task.round): \(error)")
                trace.append(TaskTrace(wire: job.task.round, device: devices[i].device.id, start: t, downloadS: 0, computeS: 0, uploadS: 0,
                                       arrival: t, outcome: .failed))
            }
        }
    }

    func log(_ level: EngineLogLevel, _ kind: String, _ text: String) {
        guard level != .info || !o.quiet else { return }
        FileHandle.standardError.write(Data("[\(o.id)] \(kind): \(text)\n".utf8))
    }

}

/// Results of one batch of pool jobs, each written once by its job.
final class Results: @unchecked Sendable {  // safe: each slot is written by one job before the group is left, read after the wait
    var trainings: [Result<(UpdateUpload, UpdateEncoder), Error>?]
    var evaluations: [Result<EvalResult, Error>?]
    let lock = NSLock()
    init(trainings: Int, evaluations: Int) {
        self.trainings = Array(repeating: nil, count: trainings)
        self.evaluations = Array(repeating: nil, count: evaluations)
    }
    func setTraining(_ k: Int, _ r: Result<(UpdateUpload, UpdateEncoder), Error>) { lock.lock(); trainings[k] = r; lock.unlock() }
    func setEvaluation(_ k: Int, _ r: Result<EvalResult, Error>) { lock.lock(); evaluations[k] = r; lock.unlock() }
}
