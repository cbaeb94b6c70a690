import EdgeEnvironment

// The edge tier. The cloud sends a task (its wire, round and the settings for κ1 local rounds), the map of this edge's
// devices and their clusters' models. Once it holds all of them the edge runs κ2 inner rounds, each device training
// its cluster's model, combined per cluster; then it uploads one contribution per cluster (edge model − cloud model,
// with the samples behind it and the sim time its rounds took) and, when asked, a sketch per device of its summed
// deltas. A cloud evaluation is relayed: devices evaluate their clusters' cloud models and the results go up with
// the device as sender. To the cloud, the edge is one participant.

struct EdgeState: Sendable {
    // What the cloud sent, newest first seen; a task starts once its map and models (same wire) are all here.
    var pendingTask: RoundTask?
    var pendingRound = 0
    var map: (wire: UInt64, clusters: [String: Int]) = (0, [:])
    var cloudModels: [Int: (wire: UInt64, parameters: [Float])] = [:]
    var pendingEval: UInt64?
    var lastModelRequest = -Double.infinity
    // The cloud task being worked on.
    var task: RoundTask?
    var cloudRound = 0
    var bases: [Int: [Float]] = [:]
    var innerDone = 0
    /// Inner rounds over the whole run (edge records' round numbers).
    var innerRounds = 0
    var samples: [Int: Int] = [:]
    var losses: [Int: [Double]] = [:]
    var drift: [String: [Float]] = [:]
    var simAtTask = 0.0
    // Uploads to the cloud until acknowledged.
    var uploadsDue = 0
    var acks = 0
    var uploadSentAt = -Double.infinity
    var uploaded: [UpstreamOutbound] = []
    // A cloud evaluation being relayed.
    var relayModels: [Int: [Float]]?
    var relayMap: [String: Int] = [:]
    var lastRelayed: UInt64 = 0

    func holds(_ wire: UInt64) -> Bool {
        map.wire == wire && Set(map.clusters.values).allSatisfy { cloudModels[$0]?.wire == wire }
    }

    mutating func addDrift(_ device: String, _ delta: [Float]) {
        var x = drift[device] ?? [Float](repeating: 0, count: delta.count)
        guard x.count == delta.count else { return }
        for i in x.indices { x[i] += delta[i] }
        drift[device] = x
    }
}

extension RoundEngine {
    mutating func upstream(_ u: UpstreamEvent) {
        guard var e = edge else { return }
        defer { edge = e }
        switch u {
        case .task(let t):
            let r = t.round
            // A later cloud round, or the same round dispatched again under a newer wire (a restarted cloud).
            let current = e.task?.wire ?? 0
            guard t.wire > current, t.wire > (e.pendingTask?.wire ?? 0), r >= e.cloudRound else { return }
            e.pendingTask = t; e.pendingRound = r
        case .map(let w, let clusters):
            if w > e.map.wire { e.map = (w, clusters) }
        case .model(let w, let c, let p):
            guard w > (e.cloudModels[c]?.wire ?? 0) else { return }
            guard p.count == (models.values.first?.parameters.count ?? p.count) else {
                log(.warn, "bad_model", "the cloud model of cluster \(c) does not fit the adapter layout")
                return
            }
            e.cloudModels[c] = (w, p)
        case .evaluate(let w):
            if w > e.lastRelayed, w > (e.pendingEval ?? 0) { e.pendingEval = w }
        case .ack(let w, let accepted, let reason):
            guard e.uploadsDue > 0, w == e.task?.wire else { return }
            e.acks += 1
            if !accepted { log(.warn, "rejected", "the cloud rejected an upload of round \(e.cloudRound): \(reason)") }
            if e.acks >= e.uploadsDue { e.uploadsDue = 0; e.uploaded = []; needsCheckpoint = true }
        }
    }

    mutating func advanceEdge() {
        if relayAgain, let ev = eval, let cloudWire = ev.relayFor {
            relayAgain = false
            for (d, r) in ev.results.sorted(by: { $0.key < $1.key }) {
                var up = r
                up.wire = cloudWire
                out.append(.upstream(.evaluation(device: d, up)))
            }
        }
        guard var e = edge else { return }
        if phase == .idle, let w = e.pendingEval, e.holds(w) {
            e.pendingEval = nil
            edge = e
            startRelay(cloudWire: w)
            return
        }
        if phase == .idle, e.uploadsDue == 0, let t = e.pendingTask, e.holds(t.wire) {
            edge = e
            beginCloudTask(t, round: e.pendingRound)
            e = edge!
        }
        if phase == .idle, e.task != nil, e.innerDone < config.kappa2, e.uploadsDue == 0 { _ = openRound() }
        e = edge!
        // Upstream: resend what the cloud has not acknowledged; ask for what a pending task or evaluation lacks.
        if e.uploadsDue > 0, now - e.uploadSentAt >= 2 * config.heartbeatS {
            e.uploadSentAt = now
            if !replaying { for m in e.uploaded { out.append(.upstream(m)) } }
        }
        let lacking = (e.pendingTask.map { !e.holds($0.wire) } ?? false) || (e.pendingEval.map { !e.holds($0) } ?? false)
        if lacking, now - e.lastModelRequest > config.heartbeatS {
            e.lastModelRequest = now
            if !replaying { out.append(.upstream(.modelRequest)) }
        }
        edge = e
    }

    /// The cloud's models become this edge's cluster models; κ2 inner rounds follow.
    mutating func beginCloudTask(_ t: RoundTask, round r: Int) {
        guard var e = edge, var a = syncAlgorithm else { return }
        let models = e.map.clusters.values.reduce(into: [Int: [Float]]()) { $0[$1] = e.cloudModels[$1]?.parameters }
        do { try a.restart(given: (e.map.clusters, models), labels: domains) } catch {
            log(.error, "cloud_round", "cannot start cloud round \(r): \(error)")
            return
        }
        algorithm = .synchronous(a)
        e.pendingTask = nil
        e.task = t
        e.cloudRound = r
        e.bases = models
        e.innerDone = 0; e.samples = [:]; e.losses = [:]; e.drift = [:]
        e.simAtTask = simTime
        edge = e
        needsCheckpoint = true
        log(.info, "cloud_round", "\(config.id) starts cloud round \(r): clusters \(models.keys.sorted())\(t.sketches ? ", relays sketches" : "")")
    }

    /// An inner round closed: record it (tier edge); after κ2 of them, upload.
    mutating func edgeRoundClosed(_ o: OpenRound) {
        guard var e = edge else { return }
        for (p, cs) in o.results where o.delivered[p] != nil {
            let c = syncAlgorithm?.cluster(of: p) ?? 0
            for x in cs {
                e.samples[c, default: 0] += max(0, x.samples)
                if x.loss.isFinite { e.losses[c, default: []].append(Double(x.loss)) }
            }
        }
        e.innerDone += 1
        e.innerRounds = o.round
        edge = e
        record(round: o.round, valLoss: [:])
        phase = .idle
        if e.innerDone >= config.kappa2 { uploadToCloud() }
    }

    /// One contribution per cluster (and the sketches first, when asked: the cloud closes once every cluster is in).
    mutating func uploadToCloud() {
        guard var e = edge, let t = e.task, let a = syncAlgorithm else { return }
        var messages: [UpstreamOutbound] = []
        if t.sketches {
            let sketches = RandomProjection.sketches(e.drift, dimension: a.config.sketchDimension, seed: a.config.seed)
            for (d, s) in sketches.sorted(by: { $0.key < $1.key }) {
                messages.append(.sketch(device: d, wire: t.wire, cluster: a.cluster(of: d) ?? 0, vector: s))
            }
        }
        let m = a.models
        for (c, base) in e.bases.sorted(by: { $0.key < $1.key }) {
            var delta = m[c]?.parameters ?? base
            for i in delta.indices where i < base.count { delta[i] -= base[i] }
            let l = e.losses[c] ?? []
            messages.append(.contribution(wire: t.wire, cluster: c, samples: e.samples[c] ?? 0,
                                          loss: l.isEmpty ? .nan : Float(l.reduce(0, +) / Double(l.count)),
                                          delta: delta, computeS: max(0, simTime - e.simAtTask), epsilon: epsilon))
        }
        e.uploaded = messages
        e.uploadsDue = messages.filter { if case .contribution = $0 { return true }; return false }.count
        e.acks = 0
        e.uploadSentAt = now
        edge = e
        needsCheckpoint = true
        if !replaying { for msg in messages { out.append(.upstream(msg)) } }
    }

    /// The cloud asks for an evaluation: each device of the cloud's map evaluates its cluster's cloud model.
    mutating func startRelay(cloudWire: UInt64) {
        guard var e = edge else { return }
        e.lastRelayed = cloudWire
        e.relayMap = e.map.clusters
        e.relayModels = e.cloudModels.mapValues(\.parameters)
        edge = e
        let w = nextWire()
        eval = EvalRound(round: round, wire: w, expected: e.map.clusters.keys.sorted(), deadline: now + config.deadlineS, relayFor: cloudWire)
        phase = .evaluating
        lastResend = now
        for d in e.map.clusters.keys.sorted() {
            guard let msg = evaluationMessage(for: d, wire: w) else { continue }
            countDown(config.modelBytes)
            send(msg, to: [d])
        }
    }

    /// A relayed evaluation ended; after the cloud's last round it is the edge's last act.
    mutating func relayFinished(_ ev: EvalRound) {
        edge?.relayModels = nil
        phase = .idle
        if (edge?.cloudRound ?? 0) >= config.rounds { finish() }
        needsCheckpoint = true
    }
}

extension SynchronousAlgorithm {
    /// An edge's federation for one cloud task: the cloud's map and models.
    mutating func restart(given: (map: [String: Int], models: [Int: [Float]]), labels: [String: String]) throws(ParadigmError) {
        try start(devices: Array(given.map.keys), labels: labels, given: given)
    }
}
