import EdgeEnvironment
import Reports

// Asynchronous rounds (FedAsync, FedBuff): every device always has one task; updates apply in sim-arrival order as
// the scheduler releases them. Every `evalEvery` applications dispatching pauses (released tasks are held, so no
// update is lost), the global is evaluated on every device, and one record is written.

struct AsyncState: Sendable, Codable {
    var started = false
    var evalDue = false
    var evalDueSince: Double?
    var stopAfterEval = false
    var windowLosses: [Double] = []
    var windowApplied = 0
    var held: [AsyncDispatch] = []
    var logged = 0
}

extension RoundEngine {
    var asyncAlgorithm: AsynchronousAlgorithm? {
        if case .asynchronous(let a) = algorithm { return a }
        return nil
    }

    mutating func withAsync(_ body: (inout AsynchronousAlgorithm) -> Void) {
        guard case .asynchronous(var a)? = held else { return }
        held = nil
        body(&a)
        algorithm = .asynchronous(a)
    }

    mutating func advanceAsync() {
        switch phase {
        case .starting:
            guard participants.count >= config.quorum else { return }
            async.started = true
            if config.evaluate { startEval(round: 0) } else { dispatch(startWith: participants); phase = .idle }
        case .evaluating:
            guard var e = eval else { phase = .idle; return }
            if e.deadline == nil { e.deadline = now + config.deadlineS; eval = e }
            if e.done || now >= e.deadline! { finishEval() } else { resendDue(to: owingEvaluation(e)) }
        case .idle, .training:
            guard let a = asyncAlgorithm else { return }
            // Evaluate once every sent task has reported: a device must not get the evaluation model while a task of
            // its own waits to start. A dead device is waited for at most deadline_s.
            if async.evalDue, async.evalDueSince == nil { async.evalDueSince = now }
            if async.evalDue, a.tasks.isEmpty || now - (async.evalDueSince ?? now) > config.deadlineS {
                async.evalDue = false
                async.evalDueSince = nil
                startEval(round: round + 1)
                return
            }
            if !async.evalDue, !a.scheduler.isFinished {
                for d in participants where a.scheduler.inFlight[d] == nil && a.tasks[d] == nil {
                    var next: AsyncDispatch?
                    withAsync { next = $0.join(d) }
                    if let next { send(next); needsCheckpoint = true }
                }
            }
            let awaiting = Set(a.scheduler.awaiting)
            resendDue(to: a.tasks.keys.filter { awaiting.contains($0) }.sorted())
        case .finished:
            return
        }
    }

    mutating func dispatch(startWith devices: [String]) {
        var ds: [AsyncDispatch] = []
        withAsync { ds = $0.start(devices: devices) }
        for d in ds { send(d) }
        needsCheckpoint = true
    }

    /// Sends a dispatch as a task under the next wire.
    mutating func send(_ d: AsyncDispatch) {
        let w = nextWire()
        var msg: (RoundTask, [Float])?
        withAsync { msg = $0.task(for: d, wire: w) }
        guard let (t, m) = msg else { return }
        countDown(config.modelBytes)
        send(.task(t, models: [0: m]), to: [d.device])
    }

    mutating func asyncUpload(_ u: Upload, from device: String) {
        countUp(u.bytes)
        guard let a = asyncAlgorithm else { return }
        guard let t = a.tasks[device], u.wire == t.wire else {
            if let w = a.reported[device], u.wire <= w { if !replaying { out.append(.acknowledge(.duplicate, wire: u.wire)) }; return }
            reject("wrong_round", "no open task \(u.wire) for \(device)", wire: u.wire)
            return
        }
        let delta: [Float]
        switch u.delta {
        case .success(let d): delta = d
        case .failure(let r): reject(r.kind, r.reason, wire: u.wire); return
        }
        let d = t.dispatch
        let i = deviceOrdinal(device)
        let down = cost.downloadSeconds(bytes: config.modelBytes, device: i, at: d.simTime)
        let compute = max(0, u.computeS)
        let up = cost.uploadSeconds(bytes: u.bytes, device: i, at: d.simTime + down + compute)
        let update = ModelUpdate(device: device, round: t.wire, samples: u.samples, baseVersion: d.version, delta: delta, loss: u.loss)
        var applications: [AsyncApplication] = []
        var failure: ParadigmError?
        withAsync { a in
            do throws(ParadigmError) {
                applications = try a.report(update, from: device, durations: TaskDurations(download: down, compute: compute, upload: up))
            } catch {
                failure = error
            }
        }
        if let failure { reject("async", failure.description, wire: u.wire); return }
        if config.persistent && !replaying { out.append(.journal(JournalEntry(from: device, upload: u, delta: delta))) }
        if !replaying { out.append(.acknowledge(.accepted, wire: u.wire)) }
        for x in applications { applied(x, loss: x.device == device ? u.loss : .nan) }
    }

    /// One update left the scheduler's queue: log it, count it in the window, hand out the device's next task.
    mutating func applied(_ x: AsyncApplication, loss: Float) {
        guard let a = asyncAlgorithm else { return }
        let outcome: String
        var version = a.scheduler.global.version
        switch x.outcome {
        case .applied(let r):
            outcome = "applied"; version = r.version
            if let e = a.scheduler.strategy.lastError { log(.error, "lora", "exact combine failed at version \(r.version): \(e); applied the naive step") }
        case .buffered: outcome = "buffered"
        case .rejected(let r):
            outcome = "rejected"
            rejections[r.kind, default: 0] += 1
        }
        if outcome != "rejected" {
            async.windowApplied += 1
            if loss.isFinite { async.windowLosses.append(Double(loss)) }
        }
        async.logged += 1
        if !replaying {
            out.append(.updateLog(AsyncUpdateRecord(index: async.logged, device: x.device, arrival: x.arrival, dispatchSimTime: x.dispatch.simTime,
                                                    dispatchVersion: x.dispatch.version, staleness: x.staleness, outcome: outcome, version: version)))
        }
        if outcome != "rejected" && async.windowApplied >= config.evalEvery { async.evalDue = true }
        // A privacy target stops the run while the final flush (one more release) still fits.
        let spent = a.privacy?.exhausted(more: 2) == true && !a.scheduler.isFinished
        if spent { log(.info, "privacy", "stopped after \(a.privacy?.releases ?? 0) releases: more would take ε past the target") }
        if a.scheduler.isFinished || spent {
            withAsync { _ = $0.finish() }
            async.evalDue = true
            async.stopAfterEval = true
        }
        if let next = x.next {
            if async.evalDue { async.held.append(next) } else { send(next) }
        }
    }

    mutating func asyncEvalDone(_ e: EvalRound, val: [String: Double]) {
        let losses = async.windowLosses
        window.trainLoss = losses.isEmpty ? nil : losses.reduce(0, +) / Double(losses.count)
        window.participants = async.windowApplied
        simTime = asyncAlgorithm?.scheduler.now ?? simTime
        round = e.round
        record(round: e.round, valLoss: val)
        async.windowLosses = []; async.windowApplied = 0
        phase = .idle
        if async.stopAfterEval || asyncAlgorithm?.scheduler.isFinished == true { finish(); return }
        if e.round == 0 {
            dispatch(startWith: participants)
        } else {
            let held = async.held
            async.held = []
            for d in held { send(d) }
        }
    }
}
