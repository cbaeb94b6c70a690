import Messages

/// One valid envelope per message type (every Body case and every Telemetry case), small so fuzzing stays fast.
enum Samples {
    static let adapter = Tensor(name: "h.0.attn.c_attn.lora_A", shape: [2, 3], floats: [0.5, -1.25, 3, 0, 1e-3, -7])
    static let half = Tensor(name: "h.0.mlp.lora_B", shape: [3], halfFrom: [1, -0.5, 2.25])
    static let quant = Tensor(name: "q", shape: [4], quantizing: [1, -2, 0.5, 4])
    static let sparse = Tensor(name: "topk", shape: [10], dtype: .f32, bytes: Tensor(name: "", shape: [2], floats: [9, -3]).bytes,
                               indices: [2, 7])

    static let bodies: [(String, Body)] = [
        ("register", .register(Register(role: .device, nodeId: "dev-7", caps: Capabilities(flops: 2.5e9, memoryBytes: 1 << 30, layersCapacity: 6),
                                        domainHint: "bible", endpoint: "tcp://10.0.0.7:5555"))),
        ("registerNoCaps", .register(Register(role: .edgeAggregator))),
        ("heartbeat", .heartbeat(Heartbeat(round: 12, load: 0.375))),
        ("leave", .leave(Leave(reason: "shutdown"))),
        ("assignment", .assignment(Assignment(nodeId: "dev-7", partition: 3, aggregator: "edge-1", aggregatorEndpoint: "inproc://edge-1",
                                              cluster: 2, edge: 1))),
        ("clusterMap", .clusterMap(ClusterMap(mapSeq: 42, members: [
            ClusterMember(nodeId: "dev-1", role: .device, cluster: 1, edge: 0, alive: true, endpoint: ""),
            ClusterMember(nodeId: "cloud", role: .cloudAggregator, cluster: 0, edge: 0, alive: false, endpoint: "tcp://cloud:1"),
        ], snapshot: true))),
        ("snapshotRequest", .snapshotRequest(SnapshotRequest(topic: "model/2/edge"))),
        ("round", .round(RoundAnnouncement(round: 5, paradigm: .hierarchical, tier: .edge, cluster: 1, localSteps: 20, learningRate: 3e-4,
                                           participants: ["dev-1", "dev-2"], deadlineS: 12.5, modelVersion: 9))),
        ("model", .model(ModelBroadcast(round: 5, cluster: 1, tier: .cloud, modelVersion: 10, tensors: [adapter, half, quant, sparse]))),
        ("modelRequest", .modelRequest(ModelRequest(cluster: 3, tier: .edge))),
        ("update", .update(UpdateUpload(round: 5, cluster: 1, baseVersion: 9, samples: 640, trainLoss: 2.75, delta: [adapter, quant],
                                        tier: .device, computeS: 1.5))),
        ("ack", .ack(UpdateAck(round: 5, accepted: false, reason: "stale", duplicate: true))),
        ("evalRequest", .evalRequest(EvalRequest(round: 6, cluster: 2))),
        ("evalResult", .evalResult(EvalResult(round: 6, domain: "man", valLoss: 3.25, tokens: 4096))),
        ("telemetryLoad", .telemetry(.load(LoadReport(load: 0.5, flops: 1e9, queue: 3)))),
        ("telemetryChannel", .telemetry(.channel(ChannelState(link: "dev-1->edge-0", rateBps: 2e7, snrDb: 13.5, rttS: 0.004)))),
        ("telemetryMetric", .telemetry(.metric(Metric(name: "round_seconds", value: 4.25, labels: ["tier": "edge", "cluster": "1"])))),
        ("telemetryEvent", .telemetry(.event(Event(severity: .warn, kind: "peer_dead", text: "dev-3 missed 4 heartbeats")))),
        ("inferRequest", .inferRequest(InferenceRequest(requestId: "r1", deviceId: "dev-1", prompt: [15496, 11, 995], promptText: "",
                                                        maxTokens: 16, sampling: Sampling(temperature: 0.8, topK: 40, seed: 7)))),
        ("activation", .activation(StageActivation(sessionId: "s1", position: 3, tokens: [1, 2], hidden: adapter,
                                                   plan: [Stage(nodeId: "dev-1", layerBegin: 0, layerEnd: 2, embed: true),
                                                          Stage(nodeId: "cloud", endpoint: "tcp://c:1", layerBegin: 2, layerEnd: 12, head: true,
                                                                shareBegin: 0, shareEnd: 12)],
                                                   stageIndex: 1, cluster: 2))),
        ("token", .token(TokenResult(requestId: "r1", token: 198, index: 4, done: true, text: "\n", plan: "vertical",
                                     stageSeconds: [0.01, 0.02]))),
        ("error", .error(InferenceError(requestId: "r1", code: .noRoute, message: "no stage node for layers 6..<12"))),
        ("roundPrivate", .round(RoundAnnouncement(round: 5, modelVersion: 9, privacy: TaskPrivacy(clip: 0.5, noiseStd: 0.01, reportClipped: true,
                                                                                                   countNoiseStd: 0.3, secure: true, sketchDim: 16,
                                                                                                   sketchNoiseStd: 0.2, sketchSeed: 3)))),
        ("updateMasked", .update(UpdateUpload(round: 5, cluster: 1, baseVersion: 9, samples: 640,
                                              privacy: UploadPrivacy(clipReport: 0.75, epsilon: 2.5, masked: [1, 0xFFFF_FFFF, 7], sketch: adapter)))),
        ("secAggKeys", .secAggKeys(SecAggKeys(round: 9, cluster: 1, cipherPublic: [UInt8](repeating: 1, count: 32),
                                              maskPublic: [UInt8](repeating: 2, count: 32), samples: 640))),
        ("secAggRoster", .secAggRoster(SecAggRoster(round: 9, group: 1, index: 2, threshold: 2,
                                                    neighbours: [SecAggPeer(nodeId: "dev-1", index: 1, cipherPublic: [UInt8](repeating: 3, count: 32),
                                                                            maskPublic: [UInt8](repeating: 4, count: 32))],
                                                    weight: 0.5, step: 1e-7, bound: 2.5, length: 100))),
        ("secAggShares", .secAggShares(SecAggShares(round: 9, group: 1, shares: [(peer: "dev-1", ciphertext: [UInt8](repeating: 5, count: 96))]))),
        ("secAggUnmask", .secAggUnmask(SecAggUnmask(round: 9, group: 1, survivors: ["dev-1"], dropped: ["dev-3"]))),
        ("secAggReveal", .secAggReveal(SecAggReveal(round: 9, group: 1, shares: [.init(owner: "dev-3", selfMask: true, x: 2,
                                                                                        y: [UInt8](repeating: 6, count: 32))]))),
    ]

    static func envelope(_ body: Body, seq: UInt64 = 17) -> Envelope {
        Envelope(sender: "node-a", seq: seq, timestampUs: 1_700_000_000_123_456, replyTo: 3, body: body)
    }
}

/// Deterministic generator so fuzz failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
