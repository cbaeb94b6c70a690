import Bus
import Dispatch
import Engine
import Foundation
import Messages
import Stage

/// `fi bench inference`: the serving figures of issue 16, each against a baseline measured in the same run.
/// - per-hop overhead at d = 768 on tcp loopback, direct forwarding against the hub;
/// - tokens/s of one stage node with many concurrent sessions (batched decode) against one session.
/// (The plan-quality figure on the network-namespace testbed is `TestbedBench` in the Testbed library.)
public enum InferenceBench {
    public struct HopResult: Sendable, Codable {
        public var width: Int
        public var hops: Int
        public var tokens: Int
        /// Milliseconds per token, median over repeats, of the plan without extra hops and with `hops` of them.
        public var directBaseMs: Double, directHopsMs: Double
        public var hubBaseMs: Double, hubHopsMs: Double
        public var directPerHopMs: Double { (directHopsMs - directBaseMs) / Double(hops) }
        public var hubPerHopMs: Double { (hubHopsMs - hubBaseMs) / Double(hops) }
        public var ratio: Double { directPerHopMs / max(hubPerHopMs, 1e-9) }
    }

    public struct BatchResult: Sendable, Codable {
        public var sessions: Int
        public var tokens: Int
        public var singleTokensPerSecond: Double
        public var concurrentTokensPerSecond: Double
        /// The same decode steps on StageCompute alone (no sockets, no router): rows per second, one row vs all.
        public var computeSingleRowsPerSecond: Double
        public var computeBatchRowsPerSecond: Double
        /// Median over rounds of (concurrent / single) measured back to back: steadier on a shared machine than
        /// the ratio of the medians.
        public var ratio: Double
        public var computeRatio: Double
    }

    /// A router and stage nodes in this process over tcp loopback (their own sockets and threads), probes off so
    /// only the measured work runs.
    final class Bench: @unchecked Sendable {  // safe: the router and nodes are driven through their loops
        let context = BusContext()
        let router: InferenceRouter
        var nodes: [StageServer] = []

        init(config: ModelConfig, forwarding: Forwarding, nodes ids: [String], maxSessions: Int = 64) throws {
            var o = RouterOptions()
            o.forwarding = forwarding
            o.knownDevices = ["bench"]
            o.stepTimeout = .seconds(60)
            router = try InferenceRouter(bind: "tcp://127.0.0.1:*", config: config, options: o, context: context)
            for id in ids {
                var so = StageNodeOptions(id: id, role: .edge, bind: "tcp://127.0.0.1:*", router: router.endpoint, flops: 1e10)
                so.speedProbes = false
                so.linkProbes = false
                so.maxSessions = maxSessions
                nodes.append(try StageServer(model: try LanguageModel(config: config, seed: 1), options: so, context: context))
            }
        }

        func ready(_ count: Int) async throws {
            for _ in 0..<500 where try await router.nodeIds().count < count { try await Task.sleep(for: .milliseconds(10)) }
            guard try await router.nodeIds().count >= count else { throw BenchError.nodesMissing(count) }
            try await Task.sleep(for: .milliseconds(300))  // peers dial each other from the router's directory
        }

        func stop() {
            for n in nodes { n.stop() }
            router.stop()
        }

        /// Arrival times (seconds) of every token of one request.
        func run(_ req: InferenceRequest, plan: InferencePlan?) async throws -> [Double] {
            var times: [Double] = []
            let stream = plan.map { router.generate(req, plan: $0) } ?? router.generate(req)
            for await body in stream {
                switch body {
                case .token: times.append(Double(DispatchTime.now().uptimeNanoseconds) / 1e9)
                case .error(let e): throw BenchError.failed(e.message)
                default: break
                }
            }
            return times
        }
    }

    public enum BenchError: Error, CustomStringConvertible {
        case nodesMissing(Int), failed(String)
        public var description: String {
            switch self {
            case .nodesMissing(let n): "the \(n) stage nodes did not register"
            case .failed(let m): "a bench request failed: \(m)"
            }
        }
    }

    /// A chain of pass-through stages: `a` embeds, p1…pk forward the hidden state untouched, `h` runs the head.
    /// No block runs anywhere, so the time per token is the messaging itself.
    static func passThrough(_ hops: Int) -> InferencePlan {
        let mids = (0..<hops).map { Messages.Stage(nodeId: "p\($0 + 1)") }
        return InferencePlan(kind: .horizontal, requester: "bench",
                             stages: [Messages.Stage(nodeId: "a", embed: true)] + mids + [Messages.Stage(nodeId: "h", head: true)])
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.isEmpty ? .nan : s[s.count / 2]
    }

    /// Seconds per token after the first (the prefill), from arrival times.
    static func perToken(_ times: [Double]) -> Double { (times.last! - times.first!) / Double(max(1, times.count - 1)) }

    public static func perHop(width: Int = 768, hops: Int = 8, tokens: Int = 48, repeats: Int = 5,
                              progress: @Sendable (String) -> Void = { _ in }) async throws -> HopResult {
        let config = ModelConfig(vocabSize: 256, contextLength: tokens + 8, layers: 1, heads: 12, width: width)
        let ids = ["a", "h"] + (1...hops).map { "p\($0)" }
        let direct = try Bench(config: config, forwarding: .direct, nodes: ids)
        let hub = try Bench(config: config, forwarding: .hub, nodes: ids)
        defer { direct.stop(); hub.stop() }
        try await direct.ready(ids.count)
        try await hub.ready(ids.count)
        var samples: [String: [Double]] = [:]
        var n = 0
        for rep in 0..<(repeats + 1) {  // the first round warms up sockets and caches
            for (name, bench) in [("direct", direct), ("hub", hub)] {
                for k in [0, hops] {
                    n += 1
                    let req = InferenceRequest(requestId: "hop-\(n)", deviceId: "bench", prompt: [1, 2, 3], maxTokens: UInt32(tokens))
                    let t = perToken(try await bench.run(req, plan: passThrough(k)))
                    if rep > 0 { samples["\(name)-\(k)", default: []].append(t * 1000) }
                }
            }
            if rep > 0 { progress(String(format: "per-hop round %d/%d", rep, repeats)) }
        }
        return HopResult(width: width, hops: hops, tokens: tokens,
                         directBaseMs: median(samples["direct-0"]!), directHopsMs: median(samples["direct-\(hops)"]!),
                         hubBaseMs: median(samples["hub-0"]!), hubHopsMs: median(samples["hub-\(hops)"]!))
    }

    /// The batching figure's small config: the shape of the committed base model (models/base: 4 blocks of width
    /// 256, 4 heads, byte vocabulary, context 128).
    public static let smallConfig = ModelConfig(vocabSize: 256, contextLength: 128, layers: 4, heads: 4, width: 256)

    public static func batched(sessions: Int = 32, tokens: Int = 32, rounds: Int = 5, config: ModelConfig = smallConfig,
                               progress: @Sendable (String) -> Void = { _ in }) async throws -> BatchResult {
        let bench = try Bench(config: config, forwarding: .direct, nodes: ["n"], maxSessions: max(64, sessions))
        defer { bench.stop() }
        try await bench.ready(1)
        let plan = InferencePlan(kind: .cloud, requester: "bench",
                                 stages: [Messages.Stage(nodeId: "n", layerBegin: 0, layerEnd: UInt32(config.layers), embed: true, head: true)])
        func request(_ id: String, _ seed: UInt64) -> InferenceRequest {
            InferenceRequest(requestId: id, deviceId: "bench", prompt: [10, 20, 30, 40], maxTokens: UInt32(tokens),
                             sampling: Messages.Sampling(temperature: 0.8, topK: 20, seed: seed))
        }
        _ = try await bench.run(request("warm", 0), plan: plan)
        var single: [Double] = [], concurrent: [Double] = [], ratios: [Double] = []
        var computeOne: [Double] = [], computeAll: [Double] = [], computeRatios: [Double] = []
        for rep in 0..<rounds {
            let t0 = Double(DispatchTime.now().uptimeNanoseconds) / 1e9
            let one = try await bench.run(request("one-\(rep)", 1), plan: plan)
            single.append(Double(one.count) / (one.last! - t0))
            let start = Double(DispatchTime.now().uptimeNanoseconds) / 1e9
            let ends = try await withThrowingTaskGroup(of: (Int, Double).self) { group in
                for s in 0..<sessions {
                    group.addTask {
                        let t = try await bench.run(request("many-\(rep)-\(s)", UInt64(s)), plan: plan)
                        return (t.count, t.last ?? start)
                    }
                }
                var out: [(Int, Double)] = []
                for try await r in group { out.append(r) }
                return out
            }
            concurrent.append(Double(ends.reduce(0) { $0 + $1.0 }) / ((ends.map(\.1).max() ?? start) - start))
            ratios.append(concurrent.last! / single.last!)
            let (a, b) = try computeOnly(sessions: sessions, steps: tokens, config: config)
            computeOne.append(a); computeAll.append(b); computeRatios.append(b / a)
            progress(String(format: "batched round %d/%d: one session %.0f tokens/s, %d sessions %.0f tokens/s (%.2fx); compute alone %.2fx",
                            rep + 1, rounds, single.last!, sessions, concurrent.last!, ratios.last!, computeRatios.last!))
        }
        return BatchResult(sessions: sessions, tokens: tokens, singleTokensPerSecond: median(single), concurrentTokensPerSecond: median(concurrent),
                           computeSingleRowsPerSecond: median(computeOne), computeBatchRowsPerSecond: median(computeAll),
                           ratio: median(ratios), computeRatio: median(computeRatios))
    }

    /// Decode steps through StageCompute directly: one session alone, then `sessions` as one batch per step.
    static func computeOnly(sessions: Int, steps: Int, config: ModelConfig) throws -> (Double, Double) {
        let compute = StageCompute(model: try LanguageModel(config: config, seed: 1))
        let stage = Messages.Stage(nodeId: "n", layerBegin: 0, layerEnd: UInt32(config.layers), embed: true, head: true)
        func step(_ ids: Range<Int>, _ position: Int, _ tag: String) {
            let acts = ids.map { s in
                StageActivation(sessionId: "\(tag)\(s)", position: UInt32(position), tokens: [UInt32(10 + s % 200)], plan: [stage], direct: true,
                                sampling: Messages.Sampling(temperature: 0.8, topK: 20, seed: 0), rngState: UInt64(s), remaining: 2)
            }
            _ = compute.runBatch(acts)
        }
        func rate(_ n: Int, _ tag: String) -> Double {
            let t0 = DispatchTime.now().uptimeNanoseconds
            for p in 0..<steps { step(0..<n, p, tag) }
            return Double(n * steps) / (Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        _ = rate(1, "w")
        let tag = UUID().uuidString.prefix(6)
        return (rate(1, "a\(tag)-"), rate(sessions, "b\(tag)-"))
    }
}
