import EdgeEnvironment
import Federation
import Reports
import XCTest

/// A cost model with fixed per-device compute and zero transfer time (scripted engine tests).
struct FixedCost: EdgeCostModel {
    var compute: [Int: Double] = [:]
    func downloadSeconds(bytes: Int, device: Int, at time: Double) -> Double { 0 }
    func uploadSeconds(bytes: Int, device: Int, at time: Double) -> Double { 0 }
    func computeSeconds(flops: Double, device: Int) -> Double { compute[device] ?? 1 }
}

/// A scripted participant: pulls the model half-way to its target and reports the squared distance as its loss.
struct ScriptedDevice {
    var id: String
    var target: [Float]
    var samples = 10
    var domain = "d"
    var computeS = 1.0

    func delta(from model: [Float]) -> [Float] { zip(target, model).map { 0.5 * ($0 - $1) } }
    func loss(_ model: [Float]) -> Float { zip(target, model).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } }
}

/// Drives one engine with a fake clock and scripted devices; keeps what a service would persist.
final class EngineHarness {
    var engine: RoundEngine
    var now = 0.0
    var devices: [String: ScriptedDevice]
    var records: [MetricRecord] = []
    var summary: RunSummary?
    var finished = false
    var snapshot: EngineSnapshot?
    var journal: [JournalEntry] = []
    var acks: [(String, Decision)] = []
    var sent: [(Outbound, String)] = []
    var clusterMaps: [[String: Int]] = []
    /// Devices that never answer (dead or straggling past the deadline).
    var silent: Set<String> = []
    /// Uploads are answered in this order of devices (default: as sent).
    var pending: [(String, Outbound)] = []
    /// Secure aggregation: each device's client, its privatised vector and its upload.
    var secure: [String: (SecAggClient, [Float], Upload)] = [:]
    var dropBeforeSharing: Set<String> = []
    var dropAfterSharing: Set<String> = []

    init(_ engine: RoundEngine, devices: [ScriptedDevice]) {
        self.engine = engine
        self.devices = Dictionary(uniqueKeysWithValues: devices.map { ($0.id, $0) })
    }

    @discardableResult
    func handle(_ e: EngineEvent, from sender: String = "") -> [EngineEffect] {
        let fx = engine.handle(e, now: now)
        // Persist before send, in every step of every scripted run.
        let firstOther = fx.firstIndex { !$0.persists } ?? fx.count
        XCTAssertFalse(fx[firstOther...].contains { $0.persists }, "a journal entry or checkpoint came after a message")
        for f in fx {
            switch f {
            case .send(let m, let ids):
                for id in ids { sent.append((m, id)); if !silent.contains(id) { pending.append((id, m)) } }
            case .resend(let m, let ids):
                // A participant that lost the task gets it again (the real one asks for the model it lacks).
                for id in ids where !silent.contains(id) && !pending.contains(where: { $0.0 == id }) { pending.append((id, m)) }
            case .acknowledge(let d, _): acks.append((sender, d))
            case .record(let r): records.append(r)
            case .checkpoint(let s): snapshot = s; journal = []
            case .journal(let j): journal.append(j)
            case .finished(let s): finished = true; summary = s
            case .clusterMap(let m): clusterMaps.append(m)
            case .upstream, .updateLog, .log: break
            }
        }
        return fx
    }

    func join(_ ids: [String]) {
        handle(.members(ids.map { Member(id: $0, role: .device) }))
    }

    /// The answer a scripted device gives to a message.
    func answer(_ id: String, _ m: Outbound) -> EngineEvent? {
        guard let d = devices[id] else { return nil }
        switch m {
        case .task(let t, let models):
            var c = t.cluster
            if t.chooseByLoss { c = t.models.min { (d.loss(models[$0]!), $0) < (d.loss(models[$1]!), $1) }! }
            let model = models[c]!
            var delta = d.delta(from: model)
            var report: Float?
            if let p = t.privacy {
                var rng = ChaChaRandom(key: [UInt8](repeating: UInt8(deviceNumber(id) & 0xFF), count: 32), nonce: t.wire)
                report = p.apply(&delta, using: &rng)
            }
            if t.privacy?.secure == true {
                var rng = SeededRandom(seed: UInt64(deviceNumber(id)) &+ t.wire << 20)
                let client = SecAggClient(id: id, wire: t.wire, using: &rng)
                secure[id] = (client, delta + (report.map { [$0] } ?? []),
                              Upload(wire: t.wire, cluster: c, baseWire: t.wire, samples: d.samples, loss: d.loss(model), delta: .success([]),
                                     computeS: d.computeS, bytes: 100))
                return .secAgg(from: id, .keys(wire: t.wire, cluster: c, keys: client.publicKeys, samples: d.samples), bytes: 80)
            }
            return .upload(from: id, Upload(wire: t.wire, cluster: c, baseWire: t.wire, samples: d.samples, loss: d.loss(model),
                                            delta: .success(delta), computeS: d.computeS, bytes: 100, clipReport: report))
        case .evaluate(let w, let c, let models, _):
            return .evaluation(from: id, Evaluation(wire: w, domain: d.domain, loss: d.loss(models[c]!), tokens: 10))
        case .secAgg(let m):
            return secureAnswer(id, m)
        }
    }

    /// A scripted device's secure-aggregation step (nil: it says nothing, e.g. it dropped).
    func secureAnswer(_ id: String, _ m: SecAggOutbound) -> EngineEvent? {
        guard var (client, vector, upload) = secure[id] else { return nil }
        defer { secure[id] = (client, vector, upload) }
        var rng = SeededRandom(seed: UInt64(deviceNumber(id)) &+ 99)
        switch m {
        case .roster(let a):
            guard client.assignment == nil, !dropBeforeSharing.contains(id) else { return nil }
            let cts = try! client.share(a, using: &rng)
            return .secAgg(from: id, .shares(wire: a.wire, group: a.group, cts.map { SecAggCiphertext(peer: $0.to, bytes: $0.ciphertext) }), bytes: 100)
        case .shares(_, _, let cts):
            guard !client.sharesReceived else { return nil }
            try! client.receive(cts.map { ($0.peer, $0.bytes) })
            guard !dropAfterSharing.contains(id) else { return nil }
            let a = client.assignment!
            var x = vector
            if x.count < a.length { x += [Float](repeating: 0, count: a.length - x.count) }
            upload.masked = try! client.mask(x)
            return .upload(from: id, upload)
        case .unmask(let w, let g, let survivors, let dropped):
            guard let shares = try? client.reveal(survivors: survivors, dropped: dropped) else { return nil }
            return .secAgg(from: id, .reveal(wire: w, group: g, shares), bytes: 100)
        }
    }

    /// Answers every message until nothing is pending, ticking the clock `dt` between batches; stops at `until`.
    func run(dt: Double = 0.1, maxSteps: Int = 10_000, until: (EngineHarness) -> Bool = { $0.finished }) {
        var steps = 0
        while !until(self) && steps < maxSteps {
            steps += 1
            if pending.isEmpty {
                now += dt
                handle(.tick)
                continue
            }
            let (id, m) = pending.removeFirst()
            if let e = answer(id, m) { handle(e, from: id) }
        }
    }

    var model: [Float] { engine.models[0]?.parameters ?? [] }
}

/// The number in a device id ("d7" → 7).
func deviceNumber(_ id: String) -> Int { Int(id.filter(\.isNumber)) ?? 0 }

func flatConfig(rounds: Int = 3, quorum: Int = 1, evaluate: Bool = true, paradigm: String = "fedavg", role: TierRole = .flat,
                deadline: Double = 10, evalEvery: Int = 3, kappa2: Int = 1) -> EngineConfig {
    EngineConfig(id: "agg", role: role, paradigm: paradigm, rounds: rounds, quorum: quorum, deadlineS: deadline, heartbeatS: 1,
                 evaluate: evaluate, kappa2: kappa2, evalEvery: evalEvery, modelBytes: 1000)
}

func syncAlgorithm(_ policy: SynchronousAlgorithm.Clusters = .single, rule: CombineRule = CombineRule(), dim: Int = 2,
                   warmup: Int = 1, fraction: Double = 1, recluster: Int = 0, privacy: PrivacySettings? = nil) -> Algorithm {
    var config = ClusteredFederationConfig(warmupRounds: warmup, reclusterEvery: recluster, center: true)
    config.rule = rule
    return .synchronous(SynchronousAlgorithm(policy: policy, config: config, initial: flatGlobal([Float](repeating: 0, count: dim)),
                                             settings: LocalSettings(steps: 1, learningRate: 0.1), fraction: fraction, seed: 3, privacy: privacy))
}
