import EdgeEnvironment

// Synchronous rounds (flat devices, an edge's inner rounds, the cloud's rounds over edges): open, take uploads,
// close at all-delivered or the deadline, combine, then evaluate or record.

extension RoundEngine {
    var syncAlgorithm: SynchronousAlgorithm? {
        if case .synchronous(let a) = algorithm { return a }
        return nil
    }

    mutating func withSync(_ body: (inout SynchronousAlgorithm) -> Void) {
        guard case .synchronous(var a)? = held else { return }
        held = nil
        body(&a)
        algorithm = .synchronous(a)
    }

    /// Has `participant` delivered everything its task asks for (one update; an edge one per cluster)?
    func complete(_ o: OpenRound, _ participant: String) -> Bool {
        guard let t = o.tasks[participant], let got = o.delivered[participant] else { return false }
        return isCloud ? Set(t.models).isSubset(of: Set(got)) : !got.isEmpty
    }

    /// Opens the next round with the available participants; false when too few are there.
    @discardableResult
    mutating func openRound() -> Bool {
        guard var a = syncAlgorithm else { return false }
        let quorum = isEdge ? min(config.quorum, max(1, a.federation?.devices.count ?? 1)) : config.quorum
        guard participants.count >= quorum else { return false }
        if !a.started {
            let devices = isCloud ? deviceEdge.keys.sorted() : participants
            do { try a.start(devices: devices, labels: domains) } catch {
                log(.error, "start", "cannot start the federation: \(error)")
                algorithm = .synchronous(a)
                finish()
                return false
            }
        } else if !isEdge {
            a.admit(isCloud ? aliveDevices : participants, labels: domains)
        }
        algorithm = .synchronous(a)
        tellManager()
        let r = (isEdge ? (edge?.innerRounds ?? 0) : round) + 1
        let w = wire + 1
        var tasks = a.plan(round: r, wire: w, available: participants, devicesOf: isCloud ? devicesOfEdges : nil)
        if let e = edge, isEdge, let s = e.task?.settings { for k in tasks.keys { tasks[k]?.settings = s } }
        if isCloud { for k in tasks.keys { tasks[k]?.settings.steps *= config.kappa1 } }
        guard !tasks.isEmpty else { return false }
        wire = w
        let available = participants
        withSync { $0.beginRound(wire: w, tasks: tasks, available: available) }
        openSecure(wire: w, tasks: tasks)
        var o = OpenRound(round: r, wire: w, tasks: tasks, deadline: now + config.deadlineS, simStart: simTime)
        // Encoded once per model, sent to every participant that trains it.
        var byModels: [[Int]: [String]] = [:]
        for (p, t) in tasks { byModels[t.models, default: []].append(p) }
        for (ms, ps) in byModels.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            for p in ps.sorted() {
                o.bytesDown[p] = config.modelBytes * ms.count
                countDown(config.modelBytes * ms.count)
                send(.task(tasks[p]!, models: taskModels(tasks[p]!)), to: [p])
            }
        }
        open = o
        phase = .training
        lastResend = now
        needsCheckpoint = true
        return true
    }

    /// An upload to the open synchronous round.
    mutating func syncUpload(_ u: Upload, from sender: String) {
        countUp(u.bytes)
        // A sketch arrives through the device's edge with the device as sender.
        let participant: String
        if u.kind == .sketch, isCloud, let k = deviceEdge[sender], let e = participants.first(where: { deviceOrdinal($0) == k }) {
            participant = e
        } else {
            participant = sender
        }
        guard phase == .training, var o = open, u.wire == o.wire else {
            if u.wire <= wire { if !replaying { out.append(.acknowledge(.duplicate, wire: u.wire)) }; return }
            reject("wrong_round", "upload for \(u.wire), the open round is \(open?.wire ?? wire)", wire: u.wire)
            return
        }
        guard let task = o.tasks[participant] else {
            reject("not_participant", "\(sender) was not sampled for round \(o.round)", wire: u.wire)
            return
        }
        if u.kind == .update, o.delivered[participant]?.contains(u.cluster) == true {
            if !replaying { out.append(.acknowledge(.duplicate, wire: u.wire)) }
            return
        }
        guard u.baseWire == task.wire else {
            reject("stale", "trained from model \(u.baseWire), the round's model is \(task.wire)", wire: u.wire)
            return
        }
        let delta: [Float]
        switch u.delta {
        case .success(let d): delta = d
        case .failure(let r): reject(r.kind, r.reason, wire: u.wire); return
        }
        if u.kind == .sketch && !task.sketches {
            reject("unexpected_sketch", "round \(o.round) did not ask for sketches", wire: u.wire)
            return
        }
        var refusal: RejectedUpdate?
        let viaEdge = isCloud, who = u.kind == .sketch ? sender : participant
        if secure != nil, u.kind == .update {
            refusal = secureUpload(u, from: participant)
        } else {
            withSync { a in refusal = a.accept(u, delta: delta, from: who, task: task, viaEdge: viaEdge) }
        }
        if let r = refusal { reject(r.kind, r.reason, wire: u.wire); return }
        if config.persistent && !replaying && secure == nil {
            out.append(.journal(JournalEntry(from: sender, upload: u, delta: delta)))
        }
        if isCloud, let e = u.epsilon { edgeEpsilon[participant] = max(edgeEpsilon[participant] ?? 0, e) }
        o.bytesUp[participant, default: 0] += u.bytes
        if u.kind == .sketch { sketchBytes += u.bytes }
        if u.kind == .update {
            o.delivered[participant, default: []].append(u.cluster)
            o.computeS[participant] = max(o.computeS[participant] ?? 0, u.computeS)
            o.results[participant, default: []].append(.init(samples: u.samples, loss: u.loss))
            if isEdge, edge?.task?.sketches == true { edge?.addDrift(sender, delta) }
        }
        open = o
        if !replaying { out.append(.acknowledge(.accepted, wire: u.wire)) }
        if !replaying, membershipKnown, secure == nil, o.tasks.keys.allSatisfy({ complete(o, $0) }) { closeRound() }
    }

    /// Ends the open round: combines, advances the virtual clock to the slowest arrival, then evaluates (flat, cloud)
    /// or records (edge, or no evaluation).
    mutating func closeRound() {
        guard let o = open else { return }
        var closed: ClusteredRound?
        withSync { a in closed = a.close() }
        open = nil
        // Virtual clock: the round lasts until its slowest delivering participant is done (the deadline if none).
        let arrivals = o.delivered.keys.map { p in
            simulatedArrival(device: p, index: deviceOrdinal(p), modelBytes: o.bytesDown[p] ?? 0, updateBytes: o.bytesUp[p] ?? 0,
                             computeS: o.computeS[p] ?? 0, cost: cost, roundStart: o.simStart).seconds
        }
        simTime = config.virtualTime ? max(now, o.simStart) : o.simStart + (arrivals.max() ?? config.deadlineS)
        let contributions = o.delivered.keys.flatMap { o.results[$0] ?? [] }
        if isCloud {
            let weighted = contributions.filter { $0.samples > 0 && $0.loss.isFinite }
            let total = Double(weighted.reduce(0) { $0 + $1.samples })
            window.trainLoss = total > 0 ? weighted.reduce(0.0) { $0 + Double($1.loss) * Double($1.samples) } / total : nil
            window.dropped = o.tasks.values.reduce(0) { $0 + $1.models.count } - contributions.count
        } else {
            let losses = contributions.map { Double($0.loss) }.filter(\.isFinite)
            window.trainLoss = losses.isEmpty ? nil : losses.reduce(0, +) / Double(losses.count)
            window.dropped = o.tasks.count - o.delivered.count
        }
        window.participants = o.tasks.count
        if let c = closed {
            gaps += c.naiveProductGaps.sorted { $0.key < $1.key }.map(\.value)
            for (k, e) in c.combineErrors.sorted(by: { $0.key < $1.key }) { log(.error, "lora", "cluster \(k): \(e); kept the naive step") }
            for r in c.rejected { rejections[r.kind, default: 0] += 1 }
            if let e = c.recluster {
                log(.info, "recluster", "round \(o.round): k=\(e.k) score \(String(format: "%.3f", e.score)) ari \(e.ari.map { String(format: "%.3f", $0) } ?? "-")")
            }
            let applied = c.results.values.reduce(0) { $0 + $1.contributors.count }
            log(applied > 0 ? .info : .warn, "round", "round \(o.round): \(o.delivered.count) of \(o.tasks.count) participants delivered, \(applied) updates aggregated")
        }
        if isEdge { edgeRoundClosed(o); return }
        round = o.round
        if syncAlgorithm?.policy != .single { window.clusters = algorithm.base.clusterMap }
        tellManager()
        needsCheckpoint = true
        if config.evaluate { startEval(round: round) } else { record(round: round, valLoss: [:]); phase = .idle }
    }
}
