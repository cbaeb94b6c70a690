import ClusterManager
import Federation
import Foundation
import Messages

/// Clustered federation over the services: the aggregator runs `ClusteredFederation` (one adapter per cluster,
/// clustering of this round's centred deltas after the warm-up and every re-cluster interval) and sends each
/// device its cluster's adapter for training and evaluation (round/model carry the cluster id). The map is in
/// every MetricRecord (`clusters`), the ARI against the devices' reported domains in the summary. Also runs FedAvg with an exact LoRA mode (one oracle cluster holding every device).
final class ClusteredDriver: DriverBase, RoundDriver {
    enum Phase { case starting, idle, training, evaluating(round: Int), finished }

    let singleCluster: Bool
    let loraMode: LoRAAggregationMode
    var phase: Phase = .starting
    var fed: ClusteredFederation?
    var round = 0
    var roundWire: UInt64 = 0
    var participants: [String] = []
    var delivered: [String: Delivered] = [:]
    var deadline = 0.0
    var simTime = 0.0
    var lastTrainLoss: Double?
    var lastDropped = 0
    /// Uploads whose cluster (echoed from the device's announcement) is / is not the device's cluster.
    var clusterMatched = 0, clusterMismatched = 0
    /// The cluster state read from the checkpoint, made into `fed` at the first round.
    var restored: ClusteredCheckpoint?

    init(service: AggregatorService, singleCluster: Bool = false) throws {
        self.singleCluster = singleCluster
        loraMode = service.options.experiment.loraMode
        super.init(base: service)
        beginIncarnation(resumes: true)
        try restore()
    }

    var completedRounds: Int { fed?.completedRounds ?? 0 }
    var summaryARI: Double? { singleCluster ? nil : fed?.adjustedRandIndexAgainstTruth() }
    var summaryNotes: [String: String] {
        var n: [String: String] = ["lora_aggregation": experiment.loraAggregation, "cluster_matched_uploads": "\(clusterMatched)",
                                   "cluster_mismatched_uploads": "\(clusterMismatched)"]
        if let f = fed {
            n["clusters"] = f.clusterMap.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            n["k"] = "\(f.clusterIDs.count)"
            n["reclusterings"] = f.reclusterings.map { "r\($0.round):k=\($0.k),score=\(String(format: "%.3f", $0.score))" }.joined(separator: " ")
        }
        return n.merging(gapNotes) { $1 }
    }

    func makeFederation(devices: [String]) throws -> ClusteredFederation {
        let labels = domains.isEmpty ? nil : domains
        if let r = restored {
            return try ClusteredFederation(restoring: r.federation, models: r.models, layout: layout, mode: assignmentMode(devices: r.federation.devices),
                                           config: try federationConfig(), trueLabels: labels)
        }
        return try ClusteredFederation(devices: devices, initial: service.coordinator.global, mode: assignmentMode(devices: devices),
                                       config: try federationConfig(), trueLabels: labels)
    }

    func assignmentMode(devices: [String]) -> ClusterAssignmentMode {
        if singleCluster { return .oracle(Dictionary(uniqueKeysWithValues: devices.map { ($0, 0) })) }
        switch experiment.clustered.mode {
        case "oracle":
            // Devices without a reported domain share one extra label rather than failing the run.
            return .oracle(labels: Dictionary(uniqueKeysWithValues: devices.map { ($0, domains[$0] ?? "?") }))
        case "local": return .localOnly
        default: return .automatic
        }
    }

    func federationConfig() throws -> ClusteredFederationConfig {
        var config = try experiment.clustered.settings.config(seed: experiment.seed, loraMode: loraMode)
        config.validator = UpdateValidator(maxStaleness: 0)
        return config
    }

    // MARK: checkpoints

    /// After each evaluated round (with the service's --checkpoint).
    func saveCheckpoint(round r: Int) {
        guard let fed else { return }
        saveClusterCheckpoint(round: r, fed.snapshot(), simTime: simTime)
    }

    /// Resumes after the checkpoint's round: no round-0 evaluation, the next wire above every one used before.
    func restore() throws {
        guard let (r, st) = try loadClusterCheckpoint() else { return }
        restored = r
        round = Int(st.round)
        simTime = st.simTimeS
        phase = .idle
    }

    func drive(now: Double) {
        let f = experiment.federation
        switch phase {
        case .starting:
            guard service.alive.count >= service.coordinator.quorum else { return }
            let params = service.coordinator.global.parameters
            startEval(devices: service.alive, now: now) { _ in (params, 0) }
            phase = .evaluating(round: 0)
        case .evaluating(let r):
            if evalDone(now: now) {
                write(round: r, trainLoss: r == 0 ? nil : lastTrainLoss, participants: r == 0 ? 0 : participants.count,
                      dropped: r == 0 ? 0 : lastDropped, simTime: simTime, clusters: fed?.clusterMap)
                if r > 0 { saveCheckpoint(round: r) }
                phase = .idle
            } else {
                resendDue(now, to: evalExpected.subtracting(evalResults.keys))
            }
        case .idle:
            if round >= f.rounds { finish(); return }
            if fed == nil {
                do { fed = try makeFederation(devices: service.alive) } catch {
                    service.telemetry.event(.error, "clustered", "cannot start: \(error)")
                    finish(); return
                }
            }
            guard let fed else { return }
            if !singleCluster { tellManager(fed.clusterMap) }
            let available = service.alive.filter { fed.cluster(of: $0) != nil }
            guard available.count >= service.coordinator.quorum else { return }
            round += 1
            roundWire = nextWire()
            participants = available.sorted()
            delivered = [:]
            deadline = now + f.deadlineS
            var cache: [Int: [[UInt8]]] = [:]
            for d in participants {
                let c = fed.cluster(of: d) ?? 0
                let model = cache[c] ?? modelFrames(fed.models[c]?.parameters ?? [], wire: roundWire, cluster: c)
                cache[c] = model
                let ann = RoundAnnouncement(round: roundWire, paradigm: singleCluster ? .fedAvg : .clustered, tier: .device, cluster: UInt32(c),
                                            localSteps: UInt32(f.localSteps), learningRate: Float(f.lr), participants: [d],
                                            deadlineS: f.deadlineS, modelVersion: roundWire)
                deliver([(envelopeFrames(.round(ann)), false), (model, true)], to: d)
            }
            lastResend = now
            phase = .training
        case .training:
            if Set(delivered.keys) == Set(participants) || now >= deadline {
                close(now: now)
            } else {
                resendDue(now, to: participants.filter { delivered[$0] == nil })
            }
        case .finished:
            return
        }
    }

    func upload(_ u: UpdateUpload, from device: String, bytes: Int) -> RoundCoordinator.Decision {
        bytesUp += bytes
        var open = false
        if case .training = phase { open = true }
        let decision = acceptClusterUpload(u, from: device, bytes: bytes, open: open, wire: roundWire, round: round,
                                           participants: participants, fed: fed, delivered: &delivered)
        if decision == .accepted, let fed {
            if Int(u.cluster) == fed.cluster(of: device) { clusterMatched += 1 } else { clusterMismatched += 1 }
        }
        return decision
    }

    func close(now: Double) {
        guard var fed else { return }
        let modelBytes = modelFrames(service.coordinator.global.parameters, wire: 0, cluster: 0).reduce(0) { $0 + $1.count }
        let (result, updates) = closeClusterRound(&fed, participants: participants, delivered: delivered, modelBytes: modelBytes, simTime: &simTime)
        self.fed = fed
        let losses = updates.map { Double($0.loss) }
        lastTrainLoss = losses.isEmpty ? nil : losses.reduce(0, +) / Double(losses.count)
        lastDropped = participants.count - updates.count
        if let e = result.recluster {
            service.telemetry.event(.info, "recluster", "round \(round): k=\(e.k) score \(String(format: "%.3f", e.score)) ari \(e.ari.map { String(format: "%.3f", $0) } ?? "-")")
        }
        let map = fed.clusterMap
        startEval(devices: service.alive.filter { map[$0] != nil }, now: now) { d in
            let c = map[d] ?? 0
            return (fed.models[c]?.parameters ?? [], c)
        }
        phase = .evaluating(round: round)
    }

    func finish() {
        phase = .finished
        service.finish()
    }
}

/// A clustered aggregator's checkpoint files: clusters.json (the federation's state and the devices' domains) and
/// clusters.f32 (every cluster's parameters, ascending cluster id, little-endian Float32).
struct ClusteredCheckpoint {
    static let stateFile = "clusters.json", modelsFile = "clusters.f32"
    struct State: Codable { var federation: ClusteredFederationSnapshot; var domains: [String: String]; var counters: [String: Int]? }

    var federation: ClusteredFederationSnapshot
    var domains: [String: String]
    var models: [Int: [Float]]
    /// A driver's own running totals (e.g. sketch bytes).
    var counters: [String: Int] = [:]

    init(federation: ClusteredFederationSnapshot, domains: [String: String], models: [Int: [Float]], counters: [String: Int] = [:]) {
        self.federation = federation; self.domains = domains; self.models = models; self.counters = counters
    }

    func files() throws -> [String: Data] {
        var floats: [Float] = []
        for c in models.keys.sorted() { floats += models[c] ?? [] }
        return [Self.stateFile: try JSONEncoder().encode(State(federation: federation, domains: domains, counters: counters)),
                Self.modelsFile: floats.map(\.bitPattern.littleEndian).withUnsafeBytes { Data($0) }]
    }

    /// Reads the newest checkpoint's files; a checkpoint without them (another paradigm's) or with models that do not
    /// fit the layout is a typed error naming the file.
    init(store: CheckpointStore, layout: Federation.ParameterLayout) throws(ParadigmError) {
        guard let json = store.latestFile(Self.stateFile), let bin = store.latestFile(Self.modelsFile) else {
            throw .badSnapshot(reason: "the newest checkpoint in \(store.directory.path) has no \(Self.stateFile)/\(Self.modelsFile) (written by another paradigm?)")
        }
        let state: State
        do { state = try JSONDecoder().decode(State.self, from: json) } catch {
            throw .badSnapshot(reason: "\(Self.stateFile): \(error)")
        }
        let ids = state.federation.versions.keys.sorted()
        guard bin.count == ids.count * layout.count * MemoryLayout<Float>.size else {
            throw .badSnapshot(reason: "\(Self.modelsFile) has \(bin.count) bytes, \(ids.count) clusters × \(layout.count) parameters need \(ids.count * layout.count * 4)")
        }
        var bits = [UInt32](repeating: 0, count: bin.count / MemoryLayout<Float>.size)
        _ = bits.withUnsafeMutableBytes { bin.copyBytes(to: $0) }
        let floats = bits.map { Float(bitPattern: UInt32(littleEndian: $0)) }
        var models: [Int: [Float]] = [:]
        for (i, c) in ids.enumerated() { models[c] = Array(floats[(i * layout.count)..<((i + 1) * layout.count)]) }
        self.init(federation: state.federation, domains: state.domains, models: models, counters: state.counters ?? [:])
    }
}
