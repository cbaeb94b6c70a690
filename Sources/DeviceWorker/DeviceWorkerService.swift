import EdgeEnvironment
import Bus
import Experiments
import Wire
import Federation
import Foundation
import Messages

/// One device: registers with the manager, follows its aggregator's rounds, trains and evaluates on a worker queue
/// (never on the loop thread), uploads with retries (idempotent per (device, round)) and heartbeats with its load.
public final class DeviceWorkerService: @unchecked Sendable {  // safe: state only touched on `loop`; the trainer only on `work`
    public struct Options: Sendable {
        public var manager: String
        public var model: String
        public var data: String
        /// Fixed node id; empty asks the manager for one.
        public var id = ""
        public var telemetry: String?
        public var heartbeatMs = 1000
        public var retryMs = 2000
        public var echo = false
        public var experiment: Experiment
        public var quiet = false
        public init(manager: String, model: String, data: String, experiment: Experiment) {
            self.manager = manager; self.model = model; self.data = data; self.experiment = experiment
        }
    }

    public let loop: ServiceLoop
    let options: Options
    let context: BusContext
    let managerSocket: Socket
    var aggregator: Socket?
    var aggregatorEndpoint = ""
    var telemetry: TelemetryOut
    let work: DispatchQueue
    let gate: TrainingGate
    let cost: any EdgeCostModel
    /// Made on `work` after the assignment names the partition.
    nonisolated(unsafe) var trainer: LocalTrainer?

    var nodeId: String
    var assignment: Assignment?
    var seq: UInt64 = 0
    var busy = false
    /// The newest models, by cluster (an IFCA task or an edge's relayed evaluation sends several of one round).
    var models: [UInt32: ModelBroadcast] = [:]
    var announcement: RoundAnnouncement?
    var trainedRound: UInt64 = 0
    var pendingEval: EvalRequest?
    var evaluatingRound: UInt64?
    /// The last evaluation sent, repeated when the same round is asked again (a restarted aggregator).
    var lastEval: EvalResult?
    var upload: (round: UInt64, envelope: Envelope, sentAt: Double)?
    /// The last upload, kept after its ack: an aggregator that restarted from a checkpoint asks again for the round.
    var lastUpload: (round: UInt64, envelope: Envelope)?
    var lastModelRequest = 0.0
    public private(set) var uploadsSent = 0
    let started = DeviceWorkerService.now()

    public init(_ options: Options, gate: TrainingGate = .shared, cost: (any EdgeCostModel)? = nil, context: BusContext = .shared) throws {
        self.options = options
        self.context = context
        self.gate = gate
        self.cost = try cost ?? EdgeNetworkCost(scenario: options.experiment.scenario, devices: options.experiment.data.devices)
        nodeId = options.id
        loop = ServiceLoop(name: options.id.isEmpty ? "device" : options.id)
        work = DispatchQueue(label: "device-work-\(options.id)")
        managerSocket = try Socket(.dealer, context: context)
        if !options.id.isEmpty { try managerSocket.set(.routingId(Array(options.id.utf8))) }
        try managerSocket.connect(options.manager)
        telemetry = try TelemetryOut(endpoint: options.telemetry, sender: options.id.isEmpty ? "device" : options.id, context: context)
        telemetry.quiet = options.quiet
        loop.add(managerSocket) { [unowned self] _, frames in handleManager(frames) }
        loop.every(.milliseconds(max(1, options.heartbeatMs))) { [unowned self] in heartbeat() }
        loop.every(.milliseconds(max(1, options.retryMs))) { [unowned self] in retry() }
    }

    public func start() {
        loop.post { [self] in register() }
        loop.start()
    }

    public func stop() {
        loop.post { [self] in
            sendToManager(.leave(Leave(reason: "stopped")))
            telemetry.close()
        }
        loop.stop()
        // Let a running training/evaluation job finish: the process may exit right after (and free BLAS buffers).
        work.sync {}
    }

    public var assignedId: String { get async { (try? await loop.perform { self.nodeId }) ?? "" } }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    // MARK: manager

    func register() {
        sendToManager(.register(Register(role: .device, nodeId: nodeId, domainHint: "")))
    }

    func sendToManager(_ body: Body) {
        seq += 1
        try? managerSocket.send(Envelope(sender: nodeId, seq: seq, body: body), dontWait: true)
    }

    func heartbeat() {
        guard let a = assignment, !a.aggregatorEndpoint.isEmpty else { register(); return }
        sendToManager(.heartbeat(Heartbeat(round: trainedRound, load: busy ? 1 : 0)))
        telemetry.publish(.load(LoadReport(load: busy ? 1 : 0)), kind: "load")
        // Channel state from the edge environment at this wall instant (the virtual clock starts with the run).
        if let edge = cost as? EdgeNetworkCost, let ch = edge.uplinkState(device: deviceOrdinal(nodeId), at: Self.now() - started) {
            telemetry.publish(.channel(ChannelState(link: ch.link, rateBps: ch.rateBps, snrDb: ch.snrDb)), kind: "channel")
        }
    }

    func handleManager(_ frames: [[UInt8]]) {
        guard let env = try? Envelope.decode(frames: frames, limits: serviceDecodeLimits), case .assignment(let a) = env.body else { return }
        let first = assignment == nil
        assignment = a
        nodeId = a.nodeId
        telemetry.rename(a.nodeId)
        if first { prepareTrainer(partition: Int(a.partition)) }
        if !a.aggregatorEndpoint.isEmpty && a.aggregatorEndpoint != aggregatorEndpoint { connectAggregator(a.aggregatorEndpoint) }
    }

    func prepareTrainer(partition: Int) {
        busy = true
        let o = options
        work.async { [self] in
            do {
                trainer = o.echo ? EchoTrainer() : try ModelTrainer(modelDir: o.model, dataDir: o.data, partition: partition, experiment: o.experiment)
                loop.post { [self] in busy = false; maybeWork() }
            } catch {
                let text = "\(error)"
                loop.post { [self] in telemetry.event(.error, "load", "cannot load model/data: \(text)") }
            }
        }
    }

    func connectAggregator(_ endpoint: String) {
        if let old = aggregator { loop.remove(old) }
        do {
            let s = try Socket(.dealer, context: context)
            try s.set(.routingId(Array(nodeId.utf8)))
            try s.connect(endpoint)
            aggregator = s
            aggregatorEndpoint = endpoint
            loop.add(s) { [unowned self] _, frames in handleAggregator(frames) }
            sendToAggregator(.modelRequest(ModelRequest(cluster: 0, tier: .device)))
        } catch {
            telemetry.event(.error, "connect", "cannot connect to aggregator \(endpoint): \(error)")
        }
    }

    func sendToAggregator(_ body: Body) {
        seq += 1
        try? aggregator?.send(Envelope(sender: nodeId, seq: seq, body: body), dontWait: true)
    }

    // MARK: aggregator

    func handleAggregator(_ frames: [[UInt8]]) {
        guard let env = try? Envelope.decode(frames: frames, limits: serviceDecodeLimits) else {
            telemetry.event(.warn, "bad_message", "undecodable message from the aggregator")
            return
        }
        switch env.body {
        case .round(let r):
            if r.round > (announcement?.round ?? 0) || announcement == nil { announcement = r }
            if let u = upload, u.round < r.round { upload = nil }
            if upload == nil, let last = lastUpload, last.round == r.round, r.participants.contains(nodeId) {
                upload = (last.round, last.envelope, Self.now())
                try? aggregator?.send(last.envelope, dontWait: true)
            }
        case .model(let m):
            if m.modelVersion >= (models[m.cluster]?.modelVersion ?? 0) {
                // A newer round's models replace every older one.
                if let newest = models.values.map(\.modelVersion).max(), m.modelVersion > newest { models = [:] }
                models[m.cluster] = m
            }
        case .evalRequest(let e):
            // A resent request for a round being evaluated is a no-op; one already answered is answered again.
            if let last = lastEval, last.round == e.round {
                sendToAggregator(.evalResult(last))
            } else if evaluatingRound != e.round {
                pendingEval = e
            }
        case .ack(let a):
            if let u = upload, a.round == u.round {
                upload = nil
                if !a.accepted { telemetry.event(.warn, "rejected", "round \(a.round): \(a.reason)") }
            }
        default:
            break
        }
        maybeWork()
    }

    /// Starts at most one job: training for an announced round this device is in, else a pending evaluation.
    func maybeWork() {
        guard !busy, trainer != nil || options.echo else { return }
        if let r = announcement, r.round > trainedRound, r.participants.isEmpty || r.participants.contains(nodeId) {
            let wanted = r.candidateClusters.isEmpty ? [r.cluster] : r.candidateClusters
            let held = wanted.compactMap { c in models[c].flatMap { $0.modelVersion == r.modelVersion ? $0 : nil } }
            guard held.count == wanted.count else { requestModel(); return }
            startTraining(r, held)
        } else if let e = pendingEval {
            guard let m = models[e.cluster], m.round >= e.round else { requestModel(); return }
            startEval(e.round, m)
        }
    }

    func requestModel() {
        let now = Self.now()
        guard now - lastModelRequest > Double(options.retryMs) / 1000 else { return }
        lastModelRequest = now
        sendToAggregator(.modelRequest(ModelRequest(cluster: 0, tier: .device)))
    }

    /// Trains the announced round: from the announced cluster's model, or (IFCA) from the candidate with the lowest
    /// loss on local data, reporting which cluster it chose.
    func startTraining(_ r: RoundAnnouncement, _ candidates: [ModelBroadcast]) {
        busy = true
        trainedRound = r.round
        let seed = options.experiment.seed ^ (r.round &* 0x9E37_79B9_7F4A_7C15) ^ UInt64(deviceOrdinal(nodeId))
        let index = deviceOrdinal(nodeId)
        let cost = self.cost
        let settings = LocalSettings(steps: Int(r.localSteps), learningRate: r.learningRate, proximalMu: r.proximalMu, freezeA: r.freezeA)
        work.async { [self] in
            let result = Result { () throws -> (ModelBroadcast, (delta: [Messages.Tensor], loss: Float, flops: Double)) in
                try gate.run {
                    var chosen = candidates[0]
                    if candidates.count > 1 {
                        let losses = try candidates.map { try trainer!.trainingLoss(global: $0.tensors, seed: seed) }
                        chosen = candidates[ifcaAssign(losses: losses) ?? 0]
                    }
                    return (chosen, try trainer!.train(global: chosen.tensors, settings: settings, seed: seed))
                }
            }
            let samples = trainer?.samples ?? 0
            loop.post { [self] in
                busy = false
                switch result {
                case .success(let (m, out)):
                    let body = UpdateUpload(round: r.round, cluster: m.cluster, baseVersion: m.modelVersion, samples: UInt64(samples),
                                            trainLoss: out.loss, delta: out.delta, tier: .device,
                                            computeS: cost.computeSeconds(flops: out.flops, device: index))
                    seq += 1
                    let env = Envelope(sender: nodeId, seq: seq, body: .update(body))
                    upload = (r.round, env, Self.now())
                    lastUpload = (r.round, env)
                    uploadsSent += 1
                    try? aggregator?.send(env, dontWait: true)
                case .failure(let error):
                    telemetry.event(.error, "train", "round \(r.round): \(error)")
                }
                maybeWork()
            }
        }
    }

    func startEval(_ round: UInt64, _ m: ModelBroadcast) {
        busy = true
        pendingEval = nil
        evaluatingRound = round
        work.async { [self] in
            let result = Result { try gate.run { try trainer!.evaluate(global: m.tensors) } }
            let domain = trainer?.domain ?? ""
            loop.post { [self] in
                busy = false
                evaluatingRound = nil
                if pendingEval?.round == round { pendingEval = nil }
                switch result {
                case .success(let out):
                    let r = EvalResult(round: round, domain: domain, valLoss: out.loss, tokens: UInt64(out.tokens))
                    lastEval = r
                    sendToAggregator(.evalResult(r))
                case .failure(let error):
                    telemetry.event(.error, "eval", "round \(round): \(error)")
                }
                maybeWork()
            }
        }
    }

    /// Resends an unacknowledged upload; the aggregator answers a duplicate without counting it twice.
    func retry() {
        guard var u = upload else { return }
        let now = Self.now()
        guard now - u.sentAt >= Double(options.retryMs) / 1000 else { return }
        u.sentAt = now
        upload = u
        try? aggregator?.send(u.envelope, dontWait: true)
    }
}
