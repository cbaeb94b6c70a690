import EdgeEnvironment
import Bus
import Experiments
import Wire
import Federation
import Foundation
import Messages

/// A device host: K virtual devices in one process. Each is an ordinary participant on the bus (its own node id and
/// sockets to the cluster manager and its aggregator); they share one read-only frozen base and a pool of trainers
/// (one per core by default) that runs the tasks of whichever devices were sampled. A device keeps only its
/// partition, its node id and its encoder between tasks (VirtualDevice). Uploads are flow-controlled: at most
/// `trainers + uploadWindow` updates are in training or unacknowledged at once, so memory does not grow with K.
public final class DeviceWorkerService: @unchecked Sendable {  // safe: state only touched on `loop`; trainers only by the pool
    public struct Options: Sendable {
        public var manager: String
        public var model: String
        public var data: String
        /// Fixed node id (one device only); empty asks the manager for ids.
        public var id = ""
        /// Virtual devices in this host.
        public var devices = 1
        /// Trainers in the pool (nil: one per core, at most one per device).
        public var trainers: Int?
        /// Uploads waiting for their acknowledgement beyond the running tasks (nil: the trainer count, at least 2).
        public var uploadWindow: Int?
        public var telemetry: String?
        public var heartbeatMs = 1000
        public var retryMs = 2000
        public var echo = false
        public var experiment: Experiment
        public var quiet = false
        /// Called on the loop after a device sent its secure-aggregation shares for a round (wire); false: the device
        /// falls silent there (fault injection: `device-worker --exit-after-sharing`, a device dropping mid-round).
        public var afterSharing: (@Sendable (UInt64) -> Bool)?
        public init(manager: String, model: String, data: String, experiment: Experiment) {
            self.manager = manager; self.model = model; self.data = data; self.experiment = experiment
        }
    }

    public enum HostError: Error, CustomStringConvertible {
        case badOption(String)
        public var description: String {
            switch self { case .badOption(let s): return s }
        }
    }

    public let loop: ServiceLoop
    let options: Options
    let context: BusContext
    var telemetry: TelemetryOut
    let cost: any EdgeCostModel
    let sessions: [DeviceSession]
    let trainerCount: Int
    // Made on a background thread, handed to the loop when ready.
    var pool: TrainerPool?
    var base: SharedBase?
    var data: PartitionData?
    var recentModels: [HeldModel.Key: HeldModel] = [:]
    var inFlight = 0
    var admission: [DeviceSession] = []
    public private(set) var uploadsSent = 0
    let started = DeviceWorkerService.now()

    public init(_ options: Options, cost: (any EdgeCostModel)? = nil, context: BusContext = .shared) throws {
        guard options.devices >= 1 else { throw HostError.badOption("--devices must be at least 1, got \(options.devices)") }
        guard options.id.isEmpty || options.devices == 1 else {
            throw HostError.badOption("--id names one device; a host of \(options.devices) devices gets its ids from the cluster manager")
        }
        if let t = options.trainers, t < 1 { throw HostError.badOption("--trainers must be at least 1, got \(t)") }
        if let w = options.uploadWindow, w < 1 { throw HostError.badOption("--upload-window must be at least 1, got \(w)") }
        self.options = options
        self.context = context
        self.cost = try cost ?? EdgeNetworkCost(scenario: options.experiment.scenario, devices: options.experiment.data.devices)
        trainerCount = min(options.devices, options.trainers ?? max(1, ProcessInfo.processInfo.activeProcessorCount))
        let name = options.id.isEmpty ? (options.devices == 1 ? "device" : "device-host") : options.id
        loop = ServiceLoop(name: name)
        telemetry = try TelemetryOut(endpoint: options.telemetry, sender: name, context: context)
        telemetry.quiet = options.quiet
        let c = options.experiment.compression
        let encoder = try UpdateEncoder(codec: c.codec, topkFraction: c.topkFraction, errorFeedback: c.errorFeedback)
        var sessions: [DeviceSession] = []
        for k in 0..<options.devices {
            let socket = try Socket(.dealer, context: context)
            if !options.id.isEmpty { try socket.set(.routingId(Array(options.id.utf8))) }
            try socket.connect(options.manager)
            sessions.append(DeviceSession(slot: k, device: VirtualDevice(id: options.id, partition: 0, encoder: encoder), manager: socket))
        }
        self.sessions = sessions
        for s in sessions { loop.add(s.manager) { [unowned self] _, frames in handleManager(s, frames) } }
        loop.every(.milliseconds(max(1, options.heartbeatMs))) { [unowned self] in heartbeat() }
        loop.every(.milliseconds(max(1, options.retryMs))) { [unowned self] in retry() }
    }

    public func start() {
        loop.post { [self] in for s in sessions { register(s) } }
        loop.start()
        let o = options, n = trainerCount
        Thread.detachNewThread { [self] in
            do {
                let (trainers, base, data) = try Self.loadTrainers(o, count: n)
                if n > 1 { singleThreadedBLAS() }
                let pool = TrainerPool(trainers, name: "\(loop.name)-trainer")
                let ready = loop.post { [self] in
                    self.base = base; self.data = data; self.pool = pool
                    for s in sessions { maybeWork(s) }
                }
                if !ready { pool.stop() }
            } catch {
                let text = "\(error)"
                loop.post { [self] in telemetry.event(.error, "load", "cannot load model/data: \(text)") }
            }
        }
    }

    /// The pool's trainers over one shared base, and the partition data (echo hosts: neither).
    static func loadTrainers(_ o: Options, count n: Int) throws -> ([any LocalTrainer], SharedBase?, PartitionData?) {
        if o.echo { return ((0..<n).map { _ in EchoTrainer() }, nil, nil) }
        let base = try SharedBase(modelDir: o.model, experiment: o.experiment)
        let data = try PartitionData(directory: o.data, tokenizer: base.tokenizer, evalTokens: o.experiment.federation.evalTokens)
        return (try (0..<n).map { _ in try base.makeTrainer() }, base, data)
    }

    public func stop() {
        loop.post { [self] in
            for s in sessions where s.assignment != nil { s.sendToManager(.leave(Leave(reason: "stopped"))) }
            telemetry.close()
        }
        loop.stop()
        // Let running jobs finish: the process may exit right after (and free BLAS buffers).
        pool?.stop()
    }

    /// The first device's node id (empty until assigned).
    public var assignedId: String { get async { (try? await loop.perform { self.sessions[0].nodeId }) ?? "" } }

    /// Every device's node id (empty until assigned).
    public var deviceIds: [String] { get async { (try? await loop.perform { self.sessions.map(\.nodeId) }) ?? [] } }

    /// The address of the base weights each trainer of the pool reads (one address for the whole host); empty before
    /// the pool is ready and for echo hosts.
    public var trainerBaseAddresses: [Int] {
        get async {
            (try? await loop.perform {
                (self.pool?.trainers ?? []).compactMap { ($0 as? ModelTrainer).map { Int(bitPattern: $0.model.baseStorage) } }
            }) ?? []
        }
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    func log(_ severity: Severity, _ kind: String, _ s: DeviceSession, _ text: String) {
        telemetry.event(severity, kind, options.devices == 1 ? text : "\(s.nodeId): \(text)")
    }

    // MARK: manager

    func register(_ s: DeviceSession) {
        s.sendToManager(.register(Register(role: .device, nodeId: s.nodeId, domainHint: "")))
    }

    func heartbeat() {
        for s in sessions {
            guard let a = s.assignment, !a.aggregatorEndpoint.isEmpty else { register(s); continue }
            s.sendToManager(.heartbeat(Heartbeat(round: s.trainedRound, load: s.busy ? 1 : 0)))
        }
        if options.devices == 1, let s = sessions.first, s.assignment != nil {
            telemetry.publish(.load(LoadReport(load: s.busy ? 1 : 0)), kind: "load")
            // Channel state from the edge environment at this wall instant (the virtual clock starts with the run).
            if let edge = cost as? EdgeNetworkCost, let ch = edge.uplinkState(device: deviceOrdinal(s.nodeId), at: Self.now() - started) {
                telemetry.publish(.channel(ChannelState(link: ch.link, rateBps: ch.rateBps, snrDb: ch.snrDb)), kind: "channel")
            }
        }
    }

    func handleManager(_ s: DeviceSession, _ frames: [[UInt8]]) {
        guard let env = try? Envelope.decode(frames: frames, limits: serviceDecodeLimits), case .assignment(let a) = env.body else { return }
        let first = s.assignment == nil
        s.assignment = a
        s.device.id = a.nodeId
        s.device.partition = Int(a.partition)
        if options.devices == 1 { telemetry.rename(a.nodeId) }
        if !a.aggregatorEndpoint.isEmpty && a.aggregatorEndpoint != s.aggregatorEndpoint { connectAggregator(s, a.aggregatorEndpoint) }
        if first { maybeWork(s) }
    }

    func connectAggregator(_ s: DeviceSession, _ endpoint: String) {
        if let old = s.aggregator { loop.remove(old) }
        do {
            let socket = try Socket(.dealer, context: context)
            try socket.set(.routingId(Array(s.nodeId.utf8)))
            try socket.connect(endpoint)
            s.aggregator = socket
            s.aggregatorEndpoint = endpoint
            loop.add(socket) { [unowned self] _, frames in handleAggregator(s, frames) }
            s.sendToAggregator(.modelRequest(ModelRequest(cluster: 0, tier: .device)))
        } catch {
            log(.error, "connect", s, "cannot connect to aggregator \(endpoint): \(error)")
        }
    }

    // MARK: aggregator

    func handleAggregator(_ s: DeviceSession, _ frames: [[UInt8]]) {
        guard let env = try? Envelope.decode(frames: frames, limits: serviceDecodeLimits) else {
            log(.warn, "bad_message", s, "undecodable message from the aggregator")
            return
        }
        switch env.body {
        case .round(let r):
            if r.round > (s.announcement?.round ?? 0) || s.announcement == nil { s.announcement = r }
            if let u = s.upload, u.round < r.round { s.upload = nil; release(s) }
            if let p = s.privacyStage, p.wire == r.modelVersion {
                // The task again: the aggregator is still waiting for this device's keys.
                if p.sharesMessage == nil, let k = p.keysMessage { s.sendToAggregator(k) }
            } else if let p = r.privacy, p.secure, r.candidateClusters.isEmpty, r.round > s.trainedRound,
                      r.participants.isEmpty || r.participants.contains(s.nodeId) {
                // Keys go out when the task arrives, not when a trainer is free: a device waiting for one of the host's
                // slots must still make the secure round's keys step.
                let stage = DevicePrivacyStage(wire: r.modelVersion, task: p, device: s.nodeId)
                s.privacyStage = stage
                if let k = stage.keys(cluster: r.cluster, samples: 0) { s.sendToAggregator(k) }
            }
        case .model(let m):
            let key = HeldModel.Key(sender: env.sender, version: m.modelVersion, cluster: m.cluster)
            if let held = recentModels[key] {
                s.hold(held)
            } else if let held = try? HeldModel(sender: env.sender, m) {
                if recentModels.count >= 16, let oldest = recentModels.keys.min(by: { $0.version < $1.version }) { recentModels[oldest] = nil }
                recentModels[key] = held
                s.hold(held)
            } else {
                log(.warn, "bad_model", s, "model \(m.modelVersion) of cluster \(m.cluster) is not a valid adapter")
            }
        case .evalRequest(let e):
            // A resent request for a round being evaluated is a no-op; one already answered is answered again.
            if let last = s.lastEval, last.round == e.round {
                s.sendToAggregator(.evalResult(last))
            } else if s.evaluatingRound != e.round {
                s.pendingEval = e
            }
        case .ack(let a):
            if let u = s.upload, a.round == u.round {
                s.upload = nil
                if !a.accepted { log(.warn, "rejected", s, "round \(a.round): \(a.reason)") }
                release(s)
            }
        case .secAggRoster(let m):
            secure(s, "roster") { try $0.roster(m) }
            if s.privacyStage?.sharesMessage != nil, options.afterSharing?(m.round) == false { s.silent = true }
        case .secAggShares(let m):
            secure(s, "shares") { try $0.shares(m); return nil }
            sendMaskedUpload(s)
        case .secAggUnmask(let m):
            secure(s, "unmask") { try $0.unmask(m) }
        default:
            break
        }
        maybeWork(s)
    }

    /// One secure-aggregation step of `s`'s current task; its reply (if any) goes to the aggregator.
    func secure(_ s: DeviceSession, _ step: String, _ body: (DevicePrivacyStage) throws -> Body?) {
        guard let p = s.privacyStage else { return }
        do { if let reply = try body(p) { s.sendToAggregator(reply) } } catch {
            log(.warn, "secagg", s, "round \(p.wire) \(step): \(error)")
        }
    }

    /// The masked input, once training is done and the shares are in.
    func sendMaskedUpload(_ s: DeviceSession) {
        guard let p = s.privacyStage else { return }
        do { if let body = try p.maskedUpload() { sendUpload(s, body) } } catch {
            log(.error, "secagg", s, "round \(p.wire): cannot mask the update: \(error)")
        }
    }

    /// An update to the aggregator, resent until it is acknowledged.
    func sendUpload(_ s: DeviceSession, _ body: UpdateUpload) {
        guard !s.silent else { return }
        s.seq += 1
        let env = Envelope(sender: s.nodeId, seq: s.seq, body: .update(body))
        s.upload = (body.round, env, Self.now())
        uploadsSent += 1
        try? s.aggregator?.send(env, dontWait: true)
    }

    /// Starts at most one job for `s`: training for an announced round it is in (when a slot is free), else a pending
    /// evaluation.
    func maybeWork(_ s: DeviceSession) {
        guard !s.busy, let pool, s.assignment != nil else { return }
        switch s.next() {
        case .train(let r, let held):
            guard s.holdsSlot || inFlight < pool.count + (options.uploadWindow ?? max(2, pool.count)) else {
                if !s.admitting { s.admitting = true; admission.append(s) }
                return
            }
            if !s.holdsSlot { s.holdsSlot = true; inFlight += 1 }
            startTraining(s, r, held, pool: pool)
        case .evaluate(let e, let m):
            startEval(s, e.round, m, pool: pool)
        case .needModel:
            requestModel(s)
        case .nothing:
            break
        }
    }

    /// Frees `s`'s slot (its update was acknowledged, superseded or failed) and admits the next waiting device.
    func release(_ s: DeviceSession) {
        guard s.holdsSlot else { return }
        s.holdsSlot = false
        inFlight -= 1
        while let next = admission.first, inFlight < (pool?.count ?? 1) + (options.uploadWindow ?? max(2, pool?.count ?? 1)) {
            admission.removeFirst()
            next.admitting = false
            maybeWork(next)
        }
    }

    func requestModel(_ s: DeviceSession) {
        let now = Self.now()
        guard now - s.lastModelRequest > Double(options.retryMs) / 1000 else { return }
        s.lastModelRequest = now
        s.sendToAggregator(.modelRequest(ModelRequest(cluster: 0, tier: .device)))
    }

    /// The device's data for a job (echo devices have none).
    func loadData(_ partition: Int) throws -> DeviceData {
        guard let data else { return DeviceData(domain: "echo", train: [0], validation: []) }
        return try data.load(partition: partition)
    }

    /// Trains the announced round on a pool trainer: from the announced cluster's model, or (IFCA) from the candidate
    /// with the lowest loss on local data, reporting which cluster it chose.
    func startTraining(_ s: DeviceSession, _ r: RoundAnnouncement, _ held: [HeldModel], pool: TrainerPool) {
        s.busy = true
        s.trainedRound = r.round
        let task = LocalTask(round: r.round, models: held.map { (Int($0.cluster), $0.version, $0.parameters) },
                             settings: LocalSettings(steps: Int(r.localSteps), learningRate: r.learningRate, proximalMu: r.proximalMu,
                                                     freezeA: r.freezeA))
        let start = s.device
        let layout = base?.layout ?? held[0].layout
        let cost = self.cost, seed = options.experiment.seed
        let stage = s.privacyStage.flatMap { $0.wire == r.modelVersion ? $0 : nil }
            ?? r.privacy.map { DevicePrivacyStage(wire: r.modelVersion, task: $0, device: s.nodeId) }
        s.privacyStage = stage
        let privacy = stage?.settings
        // Secure aggregation groups devices by the model they train: advertise now (unless the task's arrival did),
        // or (IFCA) once the choice is made.
        if held.count == 1, stage?.keysMessage == nil, let k = stage?.keys(cluster: r.cluster, samples: 0) { s.sendToAggregator(k) }
        pool.submit { [self] trainer in
            let result = Result { () throws -> (UpdateUpload, [Float]?, UpdateEncoder) in
                if let problem = mismatch(held, layout) { throw HostError.badOption("global adapter: \(problem)") }
                var device = start
                let out = try device.train(task, trainer: trainer, data: try loadData(device.partition), cost: cost, experimentSeed: seed,
                                           layout: layout, privacy: privacy)
                return (out.upload, out.secureInput, device.encoder)
            }
            loop.post { [self] in
                s.busy = false
                switch result {
                case .success(let (body, secureInput, encoder)):
                    s.device.encoder = encoder
                    if let p = s.privacyStage, p.wire == r.modelVersion, p.client != nil, let x = secureInput {
                        if held.count > 1, let k = p.keys(cluster: body.cluster, samples: 0) { s.sendToAggregator(k) }
                        p.pending = (x, body)
                        sendMaskedUpload(s)
                    } else {
                        sendUpload(s, body)
                    }
                case .failure(let error):
                    log(.error, "train", s, "round \(r.round): \(error)")
                    release(s)
                }
                maybeWork(s)
            }
        }
    }

    /// Why the models do not fit the adapter layout the host trains (names, sizes); nil when they do.
    func mismatch(_ held: [HeldModel], _ layout: ParameterLayout) -> String? {
        for m in held where m.layout != layout {
            return "model \(m.version) of cluster \(m.cluster) has \(m.layout.count) values in \(m.layout.entries.count) tensors, "
                + "the adapter \(layout.count) in \(layout.entries.count)"
        }
        return nil
    }

    func startEval(_ s: DeviceSession, _ round: UInt64, _ m: HeldModel, pool: TrainerPool) {
        s.busy = true
        s.pendingEval = nil
        s.evaluatingRound = round
        let device = s.device
        let layout = base?.layout ?? m.layout
        pool.submit { [self] trainer in
            let result = Result { () throws -> EvalResult in
                if let problem = mismatch([m], layout) { throw HostError.badOption("global adapter: \(problem)") }
                return try device.evaluate(round: round, parameters: m.parameters, trainer: trainer, data: try loadData(device.partition))
            }
            loop.post { [self] in
                s.busy = false
                s.evaluatingRound = nil
                if s.pendingEval?.round == round { s.pendingEval = nil }
                switch result {
                case .success(let r):
                    s.lastEval = r
                    s.sendToAggregator(.evalResult(r))
                case .failure(let error):
                    log(.error, "eval", s, "round \(round): \(error)")
                }
                maybeWork(s)
            }
        }
    }

    /// Resends unacknowledged uploads; the aggregator answers a duplicate without counting it twice.
    func retry() {
        let now = Self.now()
        for s in sessions {
            guard var u = s.upload, now - u.sentAt >= Double(options.retryMs) / 1000 else { continue }
            u.sentAt = now
            s.upload = u
            try? s.aggregator?.send(u.envelope, dontWait: true)
        }
    }
}
