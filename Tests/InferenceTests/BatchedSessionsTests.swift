import Engine
import InferenceRouter
import Messages
import Stage
import XCTest

/// Concurrent sessions on one stage node: decode steps batched across sessions, and admission control.
final class BatchedSessionsTests: XCTestCase {
    static let prompts: [[UInt32]] = ["the cat", "a", "where do we go now", "zz top", "0123456789", "hello there", "q", "batched"]
        .map { Array($0.utf8).map { UInt32($0) } }

    /// Every session drives the whole model on one node (embed, blocks, head), in direct mode (the node draws).
    func activation(_ s: Int, position: Int, tokens: [UInt32], rng: UInt64) -> StageActivation {
        StageActivation(sessionId: "s\(s)", position: UInt32(position), tokens: tokens,
                        plan: [Messages.Stage(nodeId: "n", layerBegin: 0, layerEnd: UInt32(Deployment.config.layers), embed: true, head: true)],
                        direct: true, sampling: Messages.Sampling(temperature: 0.8, topK: 12, seed: 0), rngState: rng, remaining: 8)
    }

    func testBatchedDecodingGivesTheTokensOfSequentialDecodingForEverySession() throws {
        let adapter = try ProcessServingTests.adapter(seed: 3)
        let batched = StageCompute(model: try LanguageModel(config: Deployment.config, seed: Deployment.seed), adapters: [1: adapter])
        let sequential = StageCompute(model: try LanguageModel(config: Deployment.config, seed: Deployment.seed), adapters: [1: adapter])
        let n = Self.prompts.count, steps = 8
        for cluster in [UInt32(0), 1] {
            var state = (0..<n).map { s in (position: 0, tokens: Self.prompts[s], rng: UInt64(100 + s), out: [UInt32]()) }
            var reference = state
            for _ in 0..<steps {
                var acts = (0..<n).map { s in activation(s, position: state[s].position, tokens: state[s].tokens, rng: state[s].rng) }
                for i in acts.indices { acts[i].cluster = cluster; acts[i].sessionId += "-c\(cluster)" }
                let outs = batched.runBatch(acts)
                for s in 0..<n {
                    let o = try outs[s].get()
                    state[s] = (state[s].position + state[s].tokens.count, [o.token!], o.rngState, state[s].out + [o.token!])
                    // The same step alone on the other node.
                    let r = try sequential.runBatch([acts[s].with { $0.position = UInt32(reference[s].position); $0.tokens = reference[s].tokens; $0.rngState = reference[s].rng }])[0].get()
                    reference[s] = (reference[s].position + reference[s].tokens.count, [r.token!], r.rngState, reference[s].out + [r.token!])
                }
            }
            for s in 0..<n { XCTAssertEqual(state[s].out, reference[s].out, "session \(s), cluster \(cluster)") }
            XCTAssertGreaterThan(Set(state.map(\.out)).count, n / 2)  // sessions really differ
        }
        // Each step of all sessions, prefills included, was one forward pass of all their rows on the batching node.
        let rows = 2 * (Self.prompts.map(\.count).reduce(0, +) + n * (steps - 1))
        XCTAssertEqual(batched.batches, 2 * steps)
        XCTAssertEqual(batched.batchedRows, rows)
        XCTAssertEqual(sequential.batches, 2 * steps * n)
        XCTAssertEqual(sequential.batchedRows, rows)
        // And each equals plain single-node generation with the same sampling and RNG.
        let m = try LanguageModel(config: Deployment.config, seed: Deployment.seed)
        let gen = try m.generate(prompt: Self.prompts[2].map { Int32($0) }, maxNewTokens: steps, sampling: .topK(k: 12, temperature: 0.8), seed: 102)
        let batchedAgain = StageCompute(model: try LanguageModel(config: Deployment.config, seed: Deployment.seed))
        var pos = 0, tokens = Self.prompts[2], rng: UInt64 = 102, out: [UInt32] = []
        for _ in 0..<steps {
            let o = try batchedAgain.runBatch([activation(2, position: pos, tokens: tokens, rng: rng)])[0].get()
            pos += tokens.count; tokens = [o.token!]; rng = o.rngState; out.append(o.token!)
        }
        XCTAssertEqual(out, gen.map { UInt32($0) })
    }

    func testConcurrentSessionsThroughOneNodeGetTheirOwnTokensAndAFullNodeRefusesClearly() async throws {
        var options = Deployment.fastOptions()
        options.knownDevices = ["host"]
        // Emulated compute (~12 ms a token and session) keeps the six sessions running while the seventh asks.
        let d = try Deployment(nodes: [("e0", .edge, 1e7)], options: options, emulate: true) { $0.maxSessions = 6 }
        defer { d.stop() }
        try await d.waitForNodes(1)
        // The router learns the node's limit from its heartbeat.
        for _ in 0..<100 where try await d.router.view().node("e0")?.maxSessions != 6 { try await Task.sleep(for: .milliseconds(10)) }
        let model = try LanguageModel(config: Deployment.config, seed: Deployment.seed)
        let refs = try (0..<6).map { s in
            try model.generate(prompt: Self.prompts[s].map { Int32($0) }, maxNewTokens: 12, sampling: .topK(k: 12, temperature: 0.8), seed: UInt64(s)).map { UInt32($0) }
        }
        let router = d.router
        let results = await withTaskGroup(of: (Int, [UInt32], ErrorCode?).self) { group in
            for s in 0..<7 {
                group.addTask {
                    if s == 6 { try? await Task.sleep(for: .milliseconds(30)) }  // the seventh arrives while six run
                    var tokens: [UInt32] = [], code: ErrorCode?
                    let req = InferenceRequest(requestId: "c\(s)", deviceId: "host", prompt: Self.prompts[s], maxTokens: 12,
                                               sampling: Messages.Sampling(temperature: 0.8, topK: 12, seed: UInt64(s)))
                    for await body in router.generate(req) {
                        switch body {
                        case .token(let t): tokens.append(t.token)
                        case .error(let e): code = e.code; if s == 6 { XCTAssertTrue(e.message.contains("e0 6/6"), e.message) }
                        default: break
                        }
                    }
                    return (s, tokens, code)
                }
            }
            var out: [(Int, [UInt32], ErrorCode?)] = []
            for await r in group { out.append(r) }
            return out.sorted { $0.0 < $1.0 }
        }
        for (s, tokens, code) in results.prefix(6) {
            XCTAssertNil(code, "session \(s)")
            XCTAssertEqual(tokens, refs[s], "session \(s)")
        }
        XCTAssertEqual(results[6].2, .overloaded)
        // Once they are done there is room again.
        let (after, _) = await d.run(InferenceRequest(requestId: "after", deviceId: "host", prompt: Self.prompts[0], maxTokens: 2))
        XCTAssertEqual(after.count, 2)
    }
}

extension StageActivation {
    func with(_ change: (inout StageActivation) -> Void) -> StageActivation {
        var a = self
        change(&a)
        return a
    }
}
