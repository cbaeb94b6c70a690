import Bus
import Engine
import InferenceRouter
import Messages
import Stage
import XCTest

/// A tiny in-process deployment over inproc: stage nodes registered with a router.
final class Deployment {
    static let config = ModelConfig(vocabSize: 256, contextLength: 32, layers: 4, heads: 4, width: 32)
    static let seed: UInt64 = 11
    let context = BusContext()
    let router: InferenceRouter
    var nodes: [String: StageServer] = [:]

    init(nodes specs: [(String, NodeRole, Double)], options: RouterOptions = Deployment.fastOptions(), emulate: Bool = false,
         adapters: [UInt32: LoRAAdapter] = [:], config: ModelConfig = Deployment.config,
         configure: (inout StageNodeOptions) -> Void = { _ in }) throws {
        let tag = UInt64.random(in: 0..<UInt64.max)
        router = try InferenceRouter(bind: "inproc://router-\(tag)", config: config, options: options, context: context)
        for (id, role, flops) in specs {
            let model = try LanguageModel(config: config, seed: Self.seed)
            var o = StageNodeOptions(id: id, role: role, bind: "inproc://stage-\(id)-\(tag)", router: router.endpoint, flops: flops,
                                     emulateCompute: emulate, heartbeatInterval: .milliseconds(50))
            o.speedProbes = emulate  // without emulation every node here has the same (real) speed: keep the claims
            configure(&o)
            nodes[id] = try StageServer(model: model, adapters: adapters, options: o, context: context)
        }
    }

    /// Every plan kind, peer chains first: nodes measure their real speed as they compute (all equal in one process
    /// without emulation), and the horizontal chain over the fast peer exists only while the claimed speeds stand.
    static let planOrder: [PlanKind] = [.horizontal, .multiAccess, .vertical, .cloud, .local]

    static func fastOptions() -> RouterOptions {
        var o = RouterOptions()
        o.heartbeatInterval = .milliseconds(50)
        o.liveness = 4
        o.stepTimeout = .milliseconds(600)
        return o
    }

    func waitForNodes(_ count: Int) async throws {
        for _ in 0..<200 {
            if try await router.nodeIds().count >= count { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        XCTFail("only \(try await router.nodeIds().count) of \(count) nodes registered")
    }

    func stop() {
        for n in nodes.values { n.stop() }
        router.stop()
    }

    /// Tokens of one request through the router; fails the test on an error reply.
    func run(_ req: InferenceRequest, kind: PlanKind? = nil, onToken: (TokenResult) -> Void = { _ in }) async -> ([UInt32], [TokenResult]) {
        var tokens: [UInt32] = [], results: [TokenResult] = []
        for await body in router.generate(req, kind: kind) {
            switch body {
            case .token(let t): tokens.append(t.token); results.append(t); onToken(t)
            case .error(let e): XCTFail("error \(e.code): \(e.message)")
            default: break
            }
        }
        return (tokens, results)
    }
}

final class SplitInferenceTests: XCTestCase {
    let prompt: [UInt32] = Array("the quick brown".utf8).map { UInt32($0) }

    func reference(_ n: Int, _ sampling: Engine.Sampling, seed: UInt64) throws -> [UInt32] {
        let model = try LanguageModel(config: Deployment.config, seed: Deployment.seed)
        return try model.generate(prompt: prompt.map { Int32($0) }, maxNewTokens: n, sampling: sampling, seed: seed).map { UInt32($0) }
    }

    func testEveryPlanKindGivesTheSingleNodeTokens() async throws {
        let d = try Deployment(nodes: [("d0", .device, 1e6), ("d1", .device, 4e7), ("d2", .device, 1e6), ("e0", .edge, 2e6),
                                       ("e1", .edge, 2e6), ("c0", .cloud, 1e9)])
        defer { d.stop() }
        try await d.waitForNodes(6)
        // Links (planner view only) that make vertical and horizontal real multi-stage chains: the device reaches
        // the cloud only through the edge, and the fast peer d1 cannot send back to d0, so d2 runs the head.
        let fast = LinkProfile(rateBps: 1e9, latencySeconds: 0.001), blocked = LinkProfile(rateBps: 1e9, latencySeconds: 10)
        var links: [String: LinkProfile] = ["d0->c0": blocked, "d1->d0": blocked]
        for (a, b) in [("d0", "e0"), ("d0", "e1"), ("e0", "c0"), ("e1", "c0"), ("c0", "d0"), ("e0", "d0"), ("e1", "d0"),
                       ("d0", "d1"), ("d1", "d2"), ("d2", "d0"), ("d0", "d2"), ("d2", "d1")] { links[NetworkView.key(a, b)] = fast }
        try await d.router.setLinks(links, emulate: false)
        let plans = try await d.router.candidates(device: "d0", promptTokens: prompt.count, newTokens: 6)
        let byKind = Dictionary(plans.map { ($0.kind, $0) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(byKind[.vertical]?.nodeIds, ["e0", "c0"])
        XCTAssertEqual(byKind[.horizontal]?.nodeIds, ["d1", "d2"])
        XCTAssertEqual(byKind[.multiAccess]?.nodeIds, ["d0", "e0", "e1"])
        let expected = try reference(6, .topK(k: 20, temperature: 0.9), seed: 5)
        for kind in Deployment.planOrder {
            let req = InferenceRequest(requestId: "r-\(kind.rawValue)", deviceId: "d0", prompt: prompt, maxTokens: 6,
                                       sampling: Messages.Sampling(temperature: 0.9, topK: 20, seed: 5))
            let (tokens, results) = await d.run(req, kind: kind)
            XCTAssertEqual(tokens, expected, "plan \(kind.rawValue)")
            XCTAssertEqual(results.last?.done, true)
            XCTAssertEqual(results.first?.plan, kind.rawValue)
        }
    }

    func testChainWithInteriorSplitsMatchesGenerate() throws {
        // Stage compute without sockets: d[0,1) → e[1,3) → c[3,4), one KV cache per node and range.
        let nodes = try (0..<3).map { _ in StageCompute(model: try LanguageModel(config: Deployment.config, seed: Deployment.seed)) }
        let plan = [Messages.Stage(nodeId: "d", layerBegin: 0, layerEnd: 1, embed: true),
                    Messages.Stage(nodeId: "e", layerBegin: 1, layerEnd: 3), Messages.Stage(nodeId: "c", layerBegin: 3, layerEnd: 4, head: true)]
        var input = prompt, position = 0, out: [UInt32] = []
        var rng = SplitMix64(seed: 3)
        for _ in 0..<5 {
            var a = StageActivation(sessionId: "s", position: UInt32(position), tokens: input, plan: plan)
            for i in 0..<3 {
                a.stageIndex = UInt32(i)
                let o = try nodes[i].run(a)
                a.tokens = []
                a.hidden = o.tensor
            }
            let token = UInt32(LanguageModel.sample(try a.hidden!.floats(), .temperature(0.8), &rng))
            out.append(token)
            position += input.count
            input = [token]
        }
        XCTAssertEqual(out, try reference(5, .temperature(0.8), seed: 3))
    }

    func testAdaptedSharesSumToTheFullBlock() throws {
        let model = try LanguageModel(config: Deployment.config, seed: 2)
        try model.attachLoRA(LoRAConfig(rank: 2, alpha: 4, targets: LoRATarget.allCases), seed: 1)
        var adapter = try model.adapter()
        var rng = SplitMix64(seed: 9)
        try adapter.load(flat: adapter.flatten().map { _ in rng.nextGaussian() * 0.05 })
        try model.setAdapter(adapter)
        let C = Deployment.config.width, T = 3
        let x = (0..<(T * C)).map { _ -> Float in rng.nextGaussian() }
        let full = try model.forwardBlocks(range: 1..<2, hidden: x, cache: KVCache(config: Deployment.config, layers: 1..<2), startPosition: 0)
        let cache = KVCache(config: Deployment.config, layers: 0..<4)
        var mid = x
        for heads in [0..<1, 1..<4] {
            let part = try model.partialAttention(layer: 1, heads: heads, hidden: x, cache: cache, startPosition: 0)
            for i in mid.indices { mid[i] += part[i] }
        }
        var out = mid
        for cols in [0..<40, 40..<128] {
            let part = try model.partialMLP(layer: 1, columns: cols, hidden: mid)
            for i in out.indices { out[i] += part[i] }
        }
        for i in full.indices { XCTAssertEqual(out[i], full[i], accuracy: 1e-4) }
        XCTAssertGreaterThan(zip(full, x).map { abs($0 - $1) }.max() ?? 0, 1e-3)  // the block did change x
    }

    func testEachDeviceGetsItsClusterAdapterOnEveryPlan() async throws {
        let base = try LanguageModel(config: Deployment.config, seed: Deployment.seed)
        try base.attachLoRA(LoRAConfig(rank: 2, alpha: 8, targets: [.attnQKV, .attnProj, .mlpFC, .mlpProj]), seed: 3)
        var adapter = try base.adapter()
        var rng = SplitMix64(seed: 4)
        try adapter.load(flat: adapter.flatten().map { _ in rng.nextGaussian() * 0.3 })
        try base.setAdapter(adapter)
        let adapted = try base.generate(prompt: prompt.map { Int32($0) }, maxNewTokens: 6).map { UInt32($0) }
        let plain = try reference(6, .greedy, seed: 0)
        XCTAssertNotEqual(adapted, plain)
        let d = try Deployment(nodes: [("d0", .device, 1e6), ("d1", .device, 1e6), ("e0", .edge, 1e7), ("e1", .edge, 1e7)],
                               adapters: [1: adapter])
        defer { d.stop() }
        try await d.waitForNodes(4)
        try await d.router.setCluster(device: "d0", cluster: 1)
        for kind in [PlanKind.multiAccess, .local, .vertical] {  // shares first: see Deployment.planOrder
            let (tokens, _) = await d.run(InferenceRequest(requestId: "a-\(kind.rawValue)", deviceId: "d0", prompt: prompt, maxTokens: 6), kind: kind)
            XCTAssertEqual(tokens, adapted, "cluster 1 on \(kind.rawValue)")
        }
        let (other, _) = await d.run(InferenceRequest(requestId: "b", deviceId: "d1", prompt: prompt, maxTokens: 6), kind: .local)
        XCTAssertEqual(other, plain, "cluster 0 has no adapter: the base model")
    }

    func testFailoverMidGenerationGivesIdenticalTokens() async throws {
        // e0 is the best node (cloud-like); it dies after the third token and the router replays on e1.
        let d = try Deployment(nodes: [("d0", .device, 1e5), ("e0", .edge, 8e6), ("e1", .edge, 6e6)], emulate: true)
        defer { d.stop() }
        try await d.waitForNodes(3)
        let req = InferenceRequest(requestId: "f", deviceId: "d0", prompt: prompt, maxTokens: 10,
                                   sampling: Messages.Sampling(temperature: 0.8, topK: 30, seed: 77))
        let first = try await d.router.candidates(device: "d0", promptTokens: prompt.count, newTokens: 10).first
        XCTAssertEqual(first?.nodeIds, ["e0"])
        let e0 = d.nodes["e0"]!
        let (tokens, _) = await d.run(req, kind: .vertical) { t in if t.index == 2 { e0.stop() } }
        XCTAssertEqual(tokens, try reference(10, .topK(k: 30, temperature: 0.8), seed: 77))
        let failovers = try await d.router.failovers()
        XCTAssertGreaterThanOrEqual(failovers, 1)
        let alive = try await d.router.nodeIds()
        XCTAssertFalse(alive.contains("e0"))
    }

    func testANodeThatLeavesIsDroppedAtOnce() async throws {
        let d = try Deployment(nodes: [("d0", .device, 1e6), ("e0", .edge, 1e8)])
        defer { d.stop() }
        try await d.waitForNodes(2)
        d.nodes["e0"]?.leave()
        var ids = try await d.router.nodeIds()
        for _ in 0..<15 where ids.contains("e0") {  // 75 ms: well inside the 200 ms liveness window
            try await Task.sleep(for: .milliseconds(5))
            ids = try await d.router.nodeIds()
        }
        XCTAssertEqual(ids, ["d0"])
        let (tokens, results) = await d.run(InferenceRequest(requestId: "l", deviceId: "d0", prompt: prompt, maxTokens: 3))
        XCTAssertEqual(tokens, try reference(3, .greedy, seed: 0))
        XCTAssertEqual(results.first?.plan, "local")
    }

    func testClientGetsTypedErrors() async throws {
        let d = try Deployment(nodes: [("d0", .device, 1e6)])
        defer { d.stop() }
        try await d.waitForNodes(1)
        let client = try InferenceClient(router: d.router.endpoint, id: "cli", context: d.context)
        defer { client.close() }
        func code(_ req: InferenceRequest) async -> ErrorCode? {
            do {
                for try await _ in client.generate(req, timeout: .seconds(5)) {}
                return nil
            } catch let f as InferenceFailure { return f.error.code } catch { XCTFail("\(error)"); return nil }
        }
        let unknown = await code(InferenceRequest(requestId: "a", deviceId: "nobody", prompt: [1, 2], maxTokens: 2))
        XCTAssertEqual(unknown, .unknownDevice)
        // No stage node alive at all: a known device gets noRoute.
        var options = Deployment.fastOptions()
        options.knownDevices = ["lonely"]
        let empty = try Deployment(nodes: [], options: options)
        defer { empty.stop() }
        let emptyClient = try InferenceClient(router: empty.router.endpoint, id: "cli2", context: empty.context)
        defer { emptyClient.close() }
        do {
            for try await _ in emptyClient.generate(InferenceRequest(requestId: "b", deviceId: "lonely", prompt: [1, 2], maxTokens: 2)) {}
            XCTFail("a router without nodes answered")
        } catch let f as InferenceFailure {
            XCTAssertEqual(f.error.code, .noRoute)
        }
        let long = await code(InferenceRequest(requestId: "c", deviceId: "d0", prompt: [UInt32](repeating: 7, count: 33), maxTokens: 2))
        XCTAssertEqual(long, .promptTooLong)
        // And a good request over the same socket streams its tokens.
        var got: [TokenResult] = []
        for try await t in client.generate(InferenceRequest(requestId: "ok", deviceId: "d0", promptText: "hi", maxTokens: 3)) { got.append(t) }
        XCTAssertEqual(got.map(\.index), [0, 1, 2])
        XCTAssertEqual(got.last?.done, true)
        XCTAssertEqual(got.first?.plan, "local")
    }
}
