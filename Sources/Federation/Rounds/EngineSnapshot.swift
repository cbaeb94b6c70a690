import EdgeEnvironment

// Persistence, raft style: the engine says what to persist; the caller writes it. A checkpoint (the whole state) is
// taken at every phase change; between checkpoints, every accepted upload and evaluation is journalled before it is
// acknowledged. Restoring = the last checkpoint, then the journal replayed through the same code (with effects and
// time-dependent decisions suppressed), so a restarted aggregator holds exactly what it had acknowledged.
// Large float arrays (models, deltas) travel as named blobs, not JSON (SnapshotCoding.swift writes both as bytes).

/// One journalled input.
public struct JournalEntry: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case upload(Upload), evaluation(Evaluation) }
    public var from: String
    public var kind: Kind

    public init(from: String, upload: Upload, delta: [Float]) {
        var u = upload
        u.delta = .success(delta)
        self.from = from; self.kind = .upload(u)
    }

    public init(from: String, evaluation: Evaluation) { self.from = from; self.kind = .evaluation(evaluation) }

    var event: EngineEvent {
        switch kind {
        case .upload(let u): return .upload(from: from, u)
        case .evaluation(let e): return .evaluation(from: from, e)
        }
    }
}

/// The whole engine state between two events.
public struct EngineSnapshot: Sendable {
    public var meta: Meta
    /// Models, optimizer moments, bases, queued deltas, edge state: named float arrays.
    public var blobs: [String: [Float]]

    public struct Meta: Sendable, Codable {
        public var version = 1
        public var paradigm: String
        public var phase: RoundEngine.Phase
        public var round: Int
        public var wire: UInt64
        public var simTime: Double
        public var elapsed: Double
        public var bytesUp: Int
        public var bytesDown: Int
        var window: RoundEngine.Window
        public var rejections: [String: Int]
        public var domains: [String: String]
        var initialValLoss: [String: Double]?
        var lastValLoss: [String: Double]
        var gaps: [Double]
        var open: RoundEngine.OpenRound?
        var eval: RoundEngine.EvalRound?
        var async: AsyncState
        var toldManager: [String: Int]
        var sketchBytes: Int?
        var edgeEpsilon: [String: Double]?
        var federation: ClusteredFederationSnapshot?
        var privacy: PrivacyLedger?
        var scheduler: AsyncSchedulerSnapshot?
        var asyncTasks: [String: UInt64]?
        var asyncReported: [String: UInt64]?
        var edge: EdgeMeta?
    }

    struct EdgeMeta: Sendable, Codable {
        var pendingTask: RoundTask?
        var pendingRound: Int
        var mapWire: UInt64
        var map: [String: Int]
        var cloudModelWires: [Int: UInt64]
        var pendingEval: UInt64?
        var task: RoundTask?
        var cloudRound: Int
        var innerDone: Int
        var innerRounds: Int
        var samples: [Int: Int]
        var losses: [Int: [Double]]
        var simAtTask: Double
        var uploadsDue: Int
        var relayMap: [String: Int]
        var relaying: Bool
        var lastRelayed: UInt64
    }
}

extension RoundEngine {
    public func snapshot() -> EngineSnapshot {
        var blobs: [String: [Float]] = [:]
        var fed: ClusteredFederationSnapshot?
        var ledger: PrivacyLedger?
        var sched: AsyncSchedulerSnapshot?
        var tasks: [String: UInt64]?, reported: [String: UInt64]?
        switch algorithm {
        case .synchronous(let a):
            fed = a.federation?.snapshot(blobs: &blobs, prefix: "fed/")
            ledger = a.privacy
            if a.federation == nil { blobs["initial"] = a.initial.parameters }
        case .asynchronous(let a):
            sched = a.scheduler.snapshot(blobs: &blobs, prefix: "async/")
            tasks = a.tasks.mapValues(\.wire)
            reported = a.reported
        }
        var edgeMeta: EngineSnapshot.EdgeMeta?
        if let e = edge {
            for (c, m) in e.cloudModels { blobs["edge/cloud/\(c)"] = m.parameters }
            for (c, b) in e.bases { blobs["edge/base/\(c)"] = b }
            for (d, x) in e.drift { blobs["edge/drift/\(d)"] = x }
            for (c, m) in e.relayModels ?? [:] { blobs["edge/relay/\(c)"] = m }
            edgeMeta = .init(pendingTask: e.pendingTask, pendingRound: e.pendingRound, mapWire: e.map.wire, map: e.map.clusters,
                             cloudModelWires: e.cloudModels.mapValues(\.wire), pendingEval: e.pendingEval, task: e.task,
                             cloudRound: e.cloudRound, innerDone: e.innerDone, innerRounds: e.innerRounds, samples: e.samples,
                             losses: e.losses, simAtTask: e.simAtTask, uploadsDue: e.uploadsDue, relayMap: e.relayMap,
                             relaying: e.relayModels != nil, lastRelayed: e.lastRelayed)
        }
        let meta = EngineSnapshot.Meta(paradigm: config.paradigm, phase: phase, round: round, wire: wire, simTime: simTime, elapsed: wallSeconds,
                                       bytesUp: bytesUp, bytesDown: bytesDown, window: window, rejections: rejections, domains: domains,
                                       initialValLoss: initialValLoss, lastValLoss: lastValLoss, gaps: gaps, open: open, eval: eval,
                                       async: async, toldManager: toldManager, sketchBytes: sketchBytes, edgeEpsilon: edgeEpsilon, federation: fed, privacy: ledger, scheduler: sched,
                                       asyncTasks: tasks, asyncReported: reported, edge: edgeMeta)
        return EngineSnapshot(meta: meta, blobs: blobs)
    }

    /// The engine a checkpoint and the journal after it describe. `algorithm` is a fresh one built from the same
    /// experiment (its configuration; its state comes from the snapshot).
    public init(restoring s: EngineSnapshot, journal: [JournalEntry], config: EngineConfig, algorithm fresh: Algorithm,
                cost: any EdgeCostModel) throws(ParadigmError) {
        self.init(config: config, algorithm: fresh, cost: cost)
        let m = s.meta
        guard m.paradigm == config.paradigm else {
            throw .badSnapshot(reason: "the checkpoint is of a \(m.paradigm) run, this experiment is \(config.paradigm)")
        }
        let layout = fresh.base.models.values.first!.layout
        switch fresh {
        case .synchronous(var a):
            if let f = m.federation {
                a.federation = try ClusteredFederation(restoring: f, blobs: s.blobs, prefix: "fed/", layout: layout,
                                                       mode: a.federationMode(devices: f.devices, labels: m.domains, map: f.assignment),
                                                       config: a.config, trueLabels: m.domains.isEmpty ? nil : m.domains)
            }
            if let p = m.privacy { a.privacy = p }
            algorithm = .synchronous(a)
        case .asynchronous(let a):
            guard let sched = m.scheduler else { throw .badSnapshot(reason: "an asynchronous run's checkpoint has no scheduler state") }
            var restored = AsynchronousAlgorithm(
                scheduler: try AsyncScheduler(restoring: sched, blobs: s.blobs, prefix: "async/", strategy: a.scheduler.strategy, layout: layout,
                                              validator: a.scheduler.validator, stop: a.scheduler.stop, lookahead: a.scheduler.lookahead),
                settings: a.settings)
            restored.restore(tasks: m.asyncTasks ?? [:], reported: m.asyncReported ?? [:])
            algorithm = .asynchronous(restored)
        }
        phase = m.phase; round = m.round; wire = m.wire; simTime = m.simTime; elapsedBefore = m.elapsed
        bytesUp = m.bytesUp; bytesDown = m.bytesDown; window = m.window; rejections = m.rejections; domains = m.domains
        initialValLoss = m.initialValLoss; lastValLoss = m.lastValLoss; gaps = m.gaps; async = m.async; toldManager = m.toldManager; sketchBytes = m.sketchBytes ?? 0
        edgeEpsilon = m.edgeEpsilon ?? [:]
        // Deadlines were on the old process's clock: they start again at the first event.
        open = m.open.map { var o = $0; o.deadline = nil; return o }
        // A secure round cannot resume (the devices' keys and masks were for its wire): it is planned again.
        if let o = open, o.tasks.values.contains(where: { $0.privacy?.secure == true }) { open = nil; phase = .idle }
        if let o = open { withSync { $0.resumeRound(wire: o.wire, tasks: o.tasks) } }
        eval = m.eval.map { var e = $0; e.deadline = nil; return e }
        if let em = m.edge {
            var e = EdgeState()
            e.pendingTask = em.pendingTask; e.pendingRound = em.pendingRound; e.map = (em.mapWire, em.map)
            for (c, w) in em.cloudModelWires { if let p = s.blobs["edge/cloud/\(c)"] { e.cloudModels[c] = (w, p) } }
            e.pendingEval = em.pendingEval; e.task = em.task; e.cloudRound = em.cloudRound; e.innerDone = em.innerDone
            e.innerRounds = em.innerRounds; e.samples = em.samples; e.losses = em.losses; e.simAtTask = em.simAtTask
            e.relayMap = em.relayMap; e.lastRelayed = em.lastRelayed
            for (k, v) in s.blobs {
                if k.hasPrefix("edge/base/"), let c = Int(k.dropFirst(10)) { e.bases[c] = v }
                if k.hasPrefix("edge/drift/") { e.drift[String(k.dropFirst(11))] = v }
                if k.hasPrefix("edge/relay/"), let c = Int(k.dropFirst(11)) { e.relayModels = (e.relayModels ?? [:]).merging([c: v]) { $1 } }
            }
            if !em.relaying { e.relayModels = nil }
            edge = e
            // Uploads the cloud had not acknowledged are rebuilt (they follow from the models and bases).
            if em.uploadsDue > 0 { uploadToCloud(); out = [] }
        }
        replaying = true
        for entry in journal { _ = handle(entry.event, now: 0) }
        replaying = false
        relayAgain = eval?.relayFor != nil
        firstNow = nil
        needsCheckpoint = false
        lastResend = -Double.infinity
    }
}

extension SynchronousAlgorithm {
    /// The assignment mode a restored federation runs in (its map comes from the snapshot).
    func federationMode(devices: [String], labels: [String: String], map: [String: Int]) -> ClusterAssignmentMode {
        switch policy {
        case .single, .given: return .oracle(map)
        case .automatic: return .automatic
        case .oracle: return .oracle(map)
        case .local: return .localOnly
        case .ifca(let k): return .ifca(k: k)
        }
    }
}
