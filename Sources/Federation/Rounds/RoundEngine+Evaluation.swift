import EdgeEnvironment

// Evaluation: every device in the population evaluates its cluster's model; a record per round holds the mean
// validation loss per domain. The cloud asks through the edges (each gets its devices' map and models).

extension RoundEngine {
    /// Who evaluates: live devices in the federation (every live device before the first round), or a seeded sample
    /// of them (`evalDevices`: the same devices while the population holds).
    var evalPopulation: [String] {
        let a = algorithm.base
        let alive = isCloud || isEdge ? aliveDevices : participants
        let all = alive.filter { round == 0 || a.cluster(of: $0) != nil }.sorted()
        guard config.evalDevices > 0, all.count > config.evalDevices else { return all }
        return sampleDevices(all, fraction: 0, minimum: config.evalDevices, seed: 0x4556_414C, round: 0)
    }

    /// The message that asks `id` to evaluate: a device its cluster's model; an edge (cloud) its devices' models.
    func evaluationMessage(for id: String, wire w: UInt64) -> Outbound? {
        let a = algorithm.base
        let models = a.models
        if isCloud {
            guard let e = eval else { return nil }
            let k = deviceOrdinal(id)
            let devs = e.expected.filter { deviceEdge[$0] == k }
            guard !devs.isEmpty else { return nil }
            let map = Dictionary(uniqueKeysWithValues: devs.map { ($0, a.cluster(of: $0) ?? 0) })
            let ms = Dictionary(uniqueKeysWithValues: Set(map.values).compactMap { c in models[c].map { (c, $0.parameters) } })
            return .evaluate(wire: w, cluster: 0, models: ms, clusterMap: map)
        }
        if let relay = edge?.relayModels, eval?.relayFor != nil {
            let c = edge?.relayMap[id] ?? 0
            return relay[c].map { .evaluate(wire: w, cluster: c, models: [c: $0], clusterMap: nil) }
        }
        let c = a.cluster(of: id) ?? 0
        return models[c].map { .evaluate(wire: w, cluster: c, models: [c: $0.parameters], clusterMap: nil) }
    }

    mutating func startEval(round r: Int) {
        let population = evalPopulation
        let w = nextWire()
        eval = EvalRound(round: r, wire: w, expected: population, deadline: now + config.deadlineS)
        phase = .evaluating
        needsCheckpoint = true
        lastResend = now
        guard config.evaluate else { return }
        let targets = isCloud ? participants : population
        for id in targets {
            guard let m = evaluationMessage(for: id, wire: w) else { continue }
            if case .evaluate(_, _, let ms, _) = m { countDown(config.modelBytes * ms.count) }
            send(m, to: [id])
        }
    }

    mutating func evaluation(_ e: Evaluation, from device: String) {
        guard var ev = eval, e.wire == ev.wire, ev.expected.contains(device), ev.results[device] == nil else { return }
        ev.results[device] = e
        eval = ev
        if !e.domain.isEmpty, domains[device] != e.domain {
            domains[device] = e.domain
            let labels = domains
            withSync { $0.label(labels) }
        }
        if config.persistent && !replaying { out.append(.journal(JournalEntry(from: device, evaluation: e))) }
        if let cloudWire = ev.relayFor, !replaying {
            var up = e
            up.wire = cloudWire
            out.append(.upstream(.evaluation(device: device, up)))
        }
    }

    /// The evaluation ended (all in, or the deadline): record it (edges only relayed theirs).
    mutating func finishEval() {
        guard let e = eval else { return }
        eval = nil
        if e.relayFor != nil { relayFinished(e); return }
        var byDomain: [String: [Double]] = [:]
        for r in e.results.values where r.loss.isFinite { byDomain[r.domain, default: []].append(Double(r.loss)) }
        let val = byDomain.mapValues { $0.reduce(0, +) / Double($0.count) }
        if case .asynchronous = algorithm { asyncEvalDone(e, val: val); return }
        record(round: e.round, valLoss: val)
        phase = .idle
    }
}
