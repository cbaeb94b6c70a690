import ClusterManager
import Engine
import Federation
import Foundation
import Messages

/// One applied (or buffered/rejected) update, a line of `<metrics>/updates.jsonl`: the async run's sim-time order.
public struct AsyncUpdateRecord: Codable, Sendable, Equatable {
    public var index: Int
    public var device: String
    public var arrival: Double
    public var dispatchSimTime: Double
    public var dispatchVersion: UInt64
    public var staleness: UInt64
    /// applied | buffered | rejected
    public var outcome: String
    public var version: UInt64
}

/// FedAsync / FedBuff over the services, in virtual time through `AsyncScheduler`: each device gets a task
/// (its own announcement + the global of the dispatch version), reports with its sim durations (download, compute_s
/// from the scenario, upload), and updates are applied in sim-arrival order as the scheduler releases them, so a
/// straggler in sim time only delays its own updates. Every `eval_every` applications the run pauses dispatching
/// (held tasks block the scheduler, so no update is lost), evaluates the global on every device and writes a record.
final class AsyncDriver: DriverBase, RoundDriver {
    var scheduler: AsyncScheduler
    let evalEvery: Int
    let budget: Int
    var started = false, evaluating = false, finished = false, evalDue = false, stopAfterEval = false
    var evalIndex = 0
    var evalDueSince: Double?
    /// Device -> (wire id, dispatch) of the task sent to it and not yet reported.
    var tasks: [String: (wire: UInt64, dispatch: AsyncDispatch)] = [:]
    var reportedWire: [String: UInt64] = [:]
    var held: [AsyncDispatch] = []
    var losses: [String: Float] = [:]
    var windowLosses: [Double] = []
    var windowApplied = 0
    var logged = 0
    let modelBytes: Int

    init(service: AggregatorService) throws {
        let e = service.options.experiment
        let devices = e.data.devices
        budget = e.federation.rounds * devices
        evalEvery = e.async.evalEvery > 0 ? e.async.evalEvery : devices
        // Lookahead = the shortest possible task (fastest device's compute): lets updates be released while others train.
        let strategy = try e.async.settings.strategy(loraMode: e.loraMode)
        let global = service.coordinator.global
        let bytes = Envelope(sender: service.options.id, body: .model(ModelBroadcast(round: 1, cluster: 0, tier: .device, modelVersion: 1,
                             tensors: AdapterWire.tensors(global.parameters, layout: global.layout)))).encodeFrames().reduce(0) { $0 + $1.count }
        modelBytes = bytes
        var lookahead = Double.infinity
        let modelURL = URL(fileURLWithPath: e.model)
        if let config = try? LanguageModel.loadConfig(modelURL), let p = try? LanguageModel(config: config, seed: 0).parameterCount {
            let taskFLOPs = loraTrainingFLOPs(parameters: p, tokens: e.federation.localSteps * e.federation.batch * e.federation.seq)
            for i in 0..<devices { lookahead = min(lookahead, service.cost.computeSeconds(flops: taskFLOPs, device: i)) }
        }
        scheduler = AsyncScheduler(strategy: strategy, global: global, stop: .appliedUpdates(budget),
                                   lookahead: lookahead.isFinite ? lookahead * 0.999 : 0)
        super.init(base: service)
        beginIncarnation(resumes: false)
    }

    var completedRounds: Int { evalIndex }
    var summaryARI: Double? { nil }
    var summaryNotes: [String: String] {
        ["async_mode": experiment.async.settings.mode, "lora_aggregation": experiment.loraAggregation, "applied": "\(scheduler.accepted)", "rejected_async": "\(scheduler.rejected)",
         "lookahead_s": String(format: "%.3f", scheduler.lookahead), "version": "\(scheduler.global.version)"]
    }

    func params(atVersion v: UInt64) -> [Float] {
        if v == scheduler.global.version { return scheduler.global.parameters }
        return (scheduler.strategy as? FedAsync)?.parameters(atVersion: v) ?? scheduler.global.parameters
    }

    func send(_ d: AsyncDispatch) {
        let f = experiment.federation
        let w = nextWire()
        tasks[d.device] = (w, d)
        let ann = RoundAnnouncement(round: w, paradigm: .async, tier: .device, cluster: 0, localSteps: UInt32(f.localSteps),
                                    learningRate: Float(f.lr), participants: [d.device], deadlineS: f.deadlineS, modelVersion: w)
        deliver([(envelopeFrames(.round(ann)), false), (modelFrames(params(atVersion: d.version), wire: w, cluster: 0), true)], to: d.device)
    }

    func drive(now: Double) {
        if finished { return }
        if !started {
            guard service.alive.count >= service.coordinator.quorum else { return }
            started = true
            evaluating = true
            let p = scheduler.global.parameters
            startEval(devices: service.alive, now: now) { _ in (p, 0) }
            return
        }
        if evaluating {
            guard evalDone(now: now) else { resendDue(now, to: evalExpected.subtracting(evalResults.keys)); return }
            evaluating = false
            write(round: evalIndex, trainLoss: windowLosses.isEmpty ? nil : windowLosses.reduce(0, +) / Double(windowLosses.count),
                  participants: windowApplied, dropped: 0, simTime: scheduler.now, clusters: nil)
            windowLosses = []; windowApplied = 0
            if stopAfterEval || scheduler.isFinished { finished = true; service.finish(); return }
            if evalIndex == 0 {
                for d in scheduler.start(devices: service.alive) { send(d) }
            } else {
                let h = held
                held = []
                for d in h { send(d) }
            }
            return
        }
        // Evaluate once every sent task has reported: a device must not get the eval model while a task of its own
        // waits to start (it would ask for its task's model and get the eval one). A dead device is waited for
        // at most deadline_s.
        if evalDue, evalDueSince == nil { evalDueSince = now }
        if evalDue && (tasks.isEmpty || now - (evalDueSince ?? now) > experiment.federation.deadlineS) {
            evalDueSince = nil
            evalDue = false
            evaluating = true
            evalIndex += 1
            let p = scheduler.global.parameters
            startEval(devices: service.alive, now: now) { _ in (p, 0) }
            return
        }
        // Late joiners get a task now; tasks not yet reported are resent every heartbeat.
        if !evalDue, !scheduler.isFinished {
            for d in service.alive where scheduler.inFlight[d] == nil && tasks[d] == nil { if let x = scheduler.join(d) { send(x) } }
        }
        resendDue(now, to: tasks.keys.filter { scheduler.awaiting.contains($0) })
    }

    func upload(_ u: UpdateUpload, from device: String, bytes: Int) -> RoundCoordinator.Decision {
        bytesUp += bytes
        guard let t = tasks[device], u.round == t.wire else {
            if let w = reportedWire[device], u.round <= w { return .duplicate }
            return service.coordinator.reject(kind: "wrong_round", reason: "no open task \(u.round) for \(device)")
        }
        let delta: [Float]
        switch decodeDelta(u) {
        case .ok(let d): delta = d
        case .bad(let decision): return decision
        }
        let d = t.dispatch
        let i = index(device)
        let down = service.cost.downloadSeconds(bytes: modelBytes, device: i, at: d.simTime)
        let compute = max(0, u.computeS)
        let up = service.cost.uploadSeconds(bytes: bytes, device: i, at: d.simTime + down + compute)
        let update = ModelUpdate(device: device, round: t.wire, samples: Int(clamping: u.samples), baseVersion: d.version,
                                 delta: delta, loss: u.trainLoss)
        let applications: [AsyncApplication]
        do { applications = try scheduler.report(update, durations: TaskDurations(download: down, compute: compute, upload: up)) } catch {
            return service.coordinator.reject(kind: "async", reason: "\(error)")
        }
        tasks[device] = nil
        reportedWire[device] = t.wire
        losses[device] = u.trainLoss
        for a in applications { handle(a) }
        return .accepted
    }

    func handle(_ a: AsyncApplication) {
        let outcome: String
        var version = scheduler.global.version
        switch a.outcome {
        case .applied(let r):
            outcome = "applied"; version = r.version
            if let e = (scheduler.strategy as? FedBuff)?.lastError {
                service.telemetry.event(.error, "lora", "exact combine failed at version \(r.version): \(e); applied the naive step")
            }
        case .buffered: outcome = "buffered"
        case .rejected(let r):
            outcome = "rejected"
            _ = service.coordinator.reject(kind: r.kind, reason: r.description)
        }
        if outcome != "rejected" {
            windowApplied += 1
            if let l = losses[a.device], l.isFinite { windowLosses.append(Double(l)) }
        }
        logged += 1
        let line = AsyncUpdateRecord(index: logged, device: a.device, arrival: a.arrival, dispatchSimTime: a.dispatch.simTime,
                                     dispatchVersion: a.dispatch.version, staleness: a.staleness, outcome: outcome,
                                     version: version)
        do { try service.writer?.appendLine(line, to: "updates.jsonl") } catch { service.telemetry.event(.error, "metrics", "\(error)") }
        if outcome != "rejected" && windowApplied >= evalEvery { evalDue = true }
        if scheduler.isFinished {
            if scheduler.strategy is FedBuff { _ = scheduler.finish() }
            evalDue = true
            stopAfterEval = true
        }
        if let next = a.next {
            if evalDue { held.append(next) } else { send(next) }
        }
    }
}
