import Bus
import Foundation
import Messages
import XCTest

/// One body of every message type (every Body case, every Telemetry case), with distinctive values.
enum Fixtures {
    static let adapter = Tensor(name: "h.0.attn.c_attn.lora_A", shape: [2, 3], floats: [0.5, -1.25, 3, 0, 1e-3, -7])
    static let big = Tensor(name: "h.1.mlp.lora_B", shape: [64, 128], floats: [Float](repeating: 0.25, count: 64 * 128))
    static let quant = Tensor(name: "q", shape: [4], quantizing: [1, -2, 0.5, 4])
    static let sparse = Tensor(name: "topk", shape: [10], dtype: .f32, bytes: Tensor(name: "", shape: [2], floats: [9, -3]).bytes,
                               indices: [2, 7])

    static let bodies: [Body] = [
        .register(Register(role: .device, nodeId: "dev-7", caps: Capabilities(flops: 2.5e9, memoryBytes: 1 << 30, layersCapacity: 6),
                           domainHint: "bible", endpoint: "tcp://10.0.0.7:5555")),
        .heartbeat(Heartbeat(round: 12, load: 0.375, live: NodeLoad(busy: 0.25, queue: 2, flopsMeasured: 3.5e9, sessions: 5, maxSessions: 32, windowS: 1),
                             links: [LinkReport(peer: "edge-0", rttS: 0.004, rateBps: 2e7, samples: 9),
                                     LinkReport(peer: "edge-1", rateBps: 1.5e7, snrDb: 12.5, radio: true)])),
        .leave(Leave(reason: "shutdown")),
        .assignment(Assignment(nodeId: "dev-7", partition: 3, aggregator: "edge-1", aggregatorEndpoint: "inproc://edge-1", cluster: 2, edge: 1)),
        .clusterMap(ClusterMap(mapSeq: 42, members: [
            ClusterMember(nodeId: "dev-1", role: .device, cluster: 1),
            ClusterMember(nodeId: "cloud", role: .cloudAggregator, alive: false, endpoint: "tcp://cloud:1"),
        ], snapshot: true)),
        .snapshotRequest(SnapshotRequest(topic: "model/2/edge")),
        .round(RoundAnnouncement(round: 5, paradigm: .hierarchical, tier: .edge, cluster: 1, localSteps: 20, learningRate: 3e-4,
                                 participants: ["dev-1", "dev-2"], deadlineS: 12.5, modelVersion: 9)),
        .model(ModelBroadcast(round: 5, cluster: 1, tier: .cloud, modelVersion: 10, tensors: [adapter, big, quant, sparse])),
        .modelRequest(ModelRequest(cluster: 3, tier: .edge)),
        .update(UpdateUpload(round: 5, cluster: 1, baseVersion: 9, samples: 640, trainLoss: 2.75, delta: [adapter, quant], computeS: 1.5)),
        .ack(UpdateAck(round: 5, accepted: false, reason: "stale", duplicate: true)),
        .evalRequest(EvalRequest(round: 6, cluster: 2)),
        .evalResult(EvalResult(round: 6, domain: "man", valLoss: 3.25, tokens: 4096)),
        .telemetry(.load(LoadReport(load: 0.5, flops: 1e9, queue: 3))),
        .telemetry(.channel(ChannelState(link: "dev-1->edge-0", rateBps: 2e7, snrDb: 13.5, rttS: 0.004))),
        .telemetry(.metric(Metric(name: "round_seconds", value: 4.25, labels: ["tier": "edge", "cluster": "1"]))),
        .telemetry(.event(Event(severity: .warn, kind: "peer_dead", text: "dev-3 missed 4 heartbeats"))),
        .inferRequest(InferenceRequest(requestId: "r1", deviceId: "dev-1", prompt: [15496, 11, 995], maxTokens: 16,
                                       sampling: Sampling(temperature: 0.8, topK: 40, seed: 7))),
        .activation(StageActivation(sessionId: "s1", position: 3, tokens: [1, 2], hidden: adapter,
                                    plan: [Stage(nodeId: "dev-1", layerBegin: 0, layerEnd: 2, embed: true),
                                           Stage(nodeId: "cloud", endpoint: "tcp://c:1", layerBegin: 2, layerEnd: 12, head: true)],
                                    stageIndex: 1, cluster: 2, direct: true, sampling: Sampling(temperature: 0.5, topK: 3, seed: 1),
                                    rngState: 99, remaining: 4, tokenIndex: 2, probeSentUs: 1234, requester: "dev-1")),
        .token(TokenResult(requestId: "r1", token: 198, index: 4, done: true, text: "\n", plan: "vertical", stageSeconds: [0.01, 0.02],
                           rngState: 77, expectedS: 0.25, planSummary: "vertical dev-1[0,2)+cloud[2,12)")),
        .error(InferenceError(requestId: "r1", code: .noRoute, message: "no stage node for layers 6..<12")),
        .probe(Probe(id: 3, sentUs: 123_456, size: 4160, echo: true, padding: [UInt8](repeating: 0, count: 4096))),
        .secAggKeys(SecAggKeys(round: 9, cluster: 1, cipherPublic: [UInt8](repeating: 1, count: 32), maskPublic: [UInt8](repeating: 2, count: 32), samples: 640)),
        .secAggRoster(SecAggRoster(round: 9, group: 1, index: 2, threshold: 2,
                                   neighbours: [SecAggPeer(nodeId: "dev-1", index: 1, cipherPublic: [UInt8](repeating: 3, count: 32),
                                                           maskPublic: [UInt8](repeating: 4, count: 32))],
                                   weight: 0.5, step: 1e-7, bound: 2.5, length: 100)),
        .secAggShares(SecAggShares(round: 9, group: 1, shares: [(peer: "dev-1", ciphertext: [UInt8](repeating: 5, count: 96))])),
        .secAggUnmask(SecAggUnmask(round: 9, group: 1, survivors: ["dev-1"], dropped: ["dev-3"])),
        .secAggReveal(SecAggReveal(round: 9, group: 1, shares: [.init(owner: "dev-3", selfMask: false, x: 2, y: [UInt8](repeating: 6, count: 32))])),
    ]

    /// Exhaustive on purpose: a new Body or Telemetry case fails to compile here until the fixtures cover it.
    static func caseName(_ body: Body) -> String {
        switch body {
        case .register: "register"
        case .heartbeat: "heartbeat"
        case .leave: "leave"
        case .assignment: "assignment"
        case .clusterMap: "cluster_map"
        case .snapshotRequest: "snapshot_request"
        case .round: "round"
        case .model: "model"
        case .modelRequest: "model_request"
        case .update: "update"
        case .ack: "ack"
        case .evalRequest: "eval_request"
        case .evalResult: "eval_result"
        case .telemetry(.load): "load"
        case .telemetry(.channel): "channel"
        case .telemetry(.metric): "metric"
        case .telemetry(.event): "event"
        case .inferRequest: "infer_request"
        case .activation: "activation"
        case .token: "token"
        case .error: "error"
        case .probe: "probe"
        case .secAggKeys: "secagg_keys"
        case .secAggRoster: "secagg_roster"
        case .secAggShares: "secagg_shares"
        case .secAggUnmask: "secagg_unmask"
        case .secAggReveal: "secagg_reveal"
        }
    }

    static let allCaseNames: Set<String> = ["register", "heartbeat", "leave", "assignment", "cluster_map", "snapshot_request",
                                             "round", "model", "model_request", "update", "ack", "eval_request", "eval_result",
                                             "load", "channel", "metric", "event", "infer_request", "activation", "token", "error", "probe",
                                             "secagg_keys", "secagg_roster", "secagg_shares", "secagg_unmask", "secagg_reveal"]
}

/// A telemetry proxy on loopback tcp for one test.
func startProxy(onSubscription: (@Sendable (TelemetryProxy.SubscriptionChange) -> Void)? = nil) throws -> TelemetryProxy {
    let proxy = try TelemetryProxy(xsub: "tcp://127.0.0.1:0", xpub: "tcp://127.0.0.1:0", onSubscription: onSubscription)
    proxy.start()
    return proxy
}

/// Lines collected from another thread.
final class LineSink: @unchecked Sendable {  // safe: `lines` behind `lock`
    private let lock = NSLock()
    private var stored: [TapLine] = []

    func append(_ line: TapLine) { lock.lock(); stored.append(line); lock.unlock() }
    var lines: [TapLine] { lock.lock(); defer { lock.unlock() }; return stored }
}

/// Parses one JSON line into a dictionary, failing the test otherwise.
func object(_ line: String, file: StaticString = #filePath, line number: UInt = #line) throws -> [String: Any] {
    try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not a JSON object: \(line)",
                  file: file, line: number)
}

/// Polls `condition` every 10 ms for up to `seconds`.
func waitUntil(_ seconds: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.01)
    }
    return condition()
}
