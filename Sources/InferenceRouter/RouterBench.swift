import Bus
import Engine
import Foundation
import Messages
import Stage

/// `fi bench router`: for each scenario (bandwidth, load, device speed) it starts stage nodes and a router in one
/// process (inproc), emulates every hop with a LinkEmulator (hub forwarding, so every hop passes the emulator) and
/// every node's compute with its FLOP/s and load (nodes sleep the difference between modeled and real compute time;
/// the router sees the speed they measure), and measures the router's choice against every candidate plan forced in
/// turn (the oracle is the fastest measured), local only and cloud only. Links are given to the router by hand here;
/// `fi bench inference` measures plans from live measured state on the network-namespace testbed.
public enum RouterBench {
    public struct Scenario: Sendable, Equatable {
        public var name: String
        public var deviceFlops: Double
        /// Background load of both edge servers.
        public var edgeLoad: Double
        /// Device ↔ edge rate, bits/s (the device reaches the cloud at this rate too).
        public var accessRate: Double
        /// FLOP/s of the two peer devices.
        public var peerFlops: [Double]
        /// Background load of the cloud server.
        public var cloudLoad: Double = 0

        public init(name: String, deviceFlops: Double, edgeLoad: Double, accessRate: Double, peerFlops: [Double]) {
            self.name = name; self.deviceFlops = deviceFlops; self.edgeLoad = edgeLoad
            self.accessRate = accessRate; self.peerFlops = peerFlops
        }
    }

    public struct Result: Sendable {
        public var scenario: Scenario
        public var chosen: PlanKind
        public var chosenSeconds: Double
        /// Measured latency of each candidate kind, forced.
        public var measured: [PlanKind: Double]
        /// The planner's expected latency of each candidate kind.
        public var expected: [PlanKind: Double]

        public var oracle: (kind: PlanKind, seconds: Double) {
            let best = measured.min { $0.value < $1.value }
            return (best?.key ?? chosen, best?.value ?? chosenSeconds)
        }
        public var ratio: Double { chosenSeconds / max(oracle.seconds, 1e-9) }
        /// The faster of local only and cloud only.
        public var bestBaseline: Double { min(measured[.local] ?? .infinity, measured[.cloud] ?? .infinity) }
    }

    /// Small model for the bench: 6 blocks of width 128, byte vocabulary.
    public static let config = ModelConfig(vocabSize: 256, contextLength: 64, layers: 6, heads: 4, width: 128)
    public static let edgeFlops = 1e8, cloudFlops = 1e9
    /// One-way latencies: device ↔ edge (access), edge ↔ cloud (WAN), device ↔ peer (D2D).
    public static let accessLatency = 0.001, wanLatency = 0.045, backhaulRate = 1e8, d2dRate = 2e7, d2dLatency = 0.003

    /// 2 device speeds × 2 access rates × 2 edge loads × 2 peer speeds, plus a crowded network (edges and cloud
    /// busy, slow peers) at both access rates, where splitting heads over the two edges pays off.
    public static func defaultGrid() -> [Scenario] {
        var out: [Scenario] = []
        for dev in [1e7, 4e7] {
            for rate in [2e6, 5e7] {
                for load in [0.0, 0.7] {
                    for (peerName, peers) in [("fast", [6e7, 3e7]), ("slow", [1e7, 5e6])] {
                        out.append(Scenario(name: String(format: "dev%.0fM-bw%.0fM-load%.1f-peers-%@", dev / 1e6, rate / 1e6, load, peerName),
                                            deviceFlops: dev, edgeLoad: load, accessRate: rate, peerFlops: peers))
                    }
                }
            }
        }
        for rate in [2e6, 5e7] {
            var busy = Scenario(name: String(format: "dev10M-bw%.0fM-busy-edges0.85-cloud0.97", rate / 1e6), deviceFlops: 1e7,
                                edgeLoad: 0.85, accessRate: rate, peerFlops: [1e7, 5e6])
            busy.cloudLoad = 0.97
            out.append(busy)
        }
        return out
    }

    /// Symmetric links of a scenario, keyed "a->b".
    public static func links(_ s: Scenario) -> [String: LinkProfile] {
        var l: [String: LinkProfile] = [:]
        func both(_ a: String, _ b: String, _ p: LinkProfile) { l[NetworkView.key(a, b)] = p; l[NetworkView.key(b, a)] = p }
        let access = LinkProfile(rateBps: s.accessRate, latencySeconds: accessLatency)
        both("d0", "e0", access); both("d0", "e1", access)
        both("d0", "c0", LinkProfile(rateBps: s.accessRate, latencySeconds: wanLatency + accessLatency))
        for e in ["e0", "e1"] { both(e, "c0", LinkProfile(rateBps: backhaulRate, latencySeconds: wanLatency)) }
        both("e0", "e1", LinkProfile(rateBps: backhaulRate, latencySeconds: 0.001))
        let d2d = LinkProfile(rateBps: d2dRate, latencySeconds: d2dLatency)
        both("d0", "d1", d2d); both("d0", "d2", d2d); both("d1", "d2", d2d)
        return l
    }

    public static func run(_ scenarios: [Scenario], promptTokens: Int = 6, newTokens: Int = 5,
                           progress: @Sendable (String) -> Void = { _ in }) async throws -> [Result] {
        var results: [Result] = []
        for s in scenarios {
            results.append(try await run(s, promptTokens: promptTokens, newTokens: newTokens))
            let r = results.last!
            progress(String(format: "%@: router %@ %.3f s, oracle %@ %.3f s (×%.3f)", s.name, r.chosen.rawValue, r.chosenSeconds,
                            r.oracle.kind.rawValue, r.oracle.seconds, r.ratio))
        }
        return results
    }

    static func run(_ s: Scenario, promptTokens: Int, newTokens: Int) async throws -> Result {
        let context = BusContext()
        let tag = UInt64.random(in: 0..<UInt64.max)
        var options = RouterOptions()
        options.forwarding = .hub  // the LinkEmulator delays hub hops; direct plans on emulated links are the testbed's job
        options.heartbeatInterval = .milliseconds(100)
        options.stepTimeout = .seconds(10)
        let router = try InferenceRouter(bind: "inproc://bench-router-\(tag)", config: config, options: options, context: context)
        let specs: [(String, NodeRole, Double, Double)] = [
            ("d0", .device, s.deviceFlops, 0), ("d1", .device, s.peerFlops[0], 0), ("d2", .device, s.peerFlops[1], 0),
            ("e0", .edge, edgeFlops, s.edgeLoad), ("e1", .edge, edgeFlops, s.edgeLoad), ("c0", .cloud, cloudFlops, s.cloudLoad),
        ]
        var servers: [StageServer] = []
        defer {
            for n in servers { n.stop() }
            router.stop()
        }
        for (id, role, flops, load) in specs {
            servers.append(try StageServer(model: try LanguageModel(config: config, seed: 1), options: StageNodeOptions(
                id: id, role: role, bind: "inproc://bench-\(id)-\(tag)", router: router.endpoint, flops: flops, load: load,
                emulateCompute: true, heartbeatInterval: .milliseconds(100)), context: context))
        }
        try await router.setLinks(links(s), emulate: true)
        for _ in 0..<300 where try await router.nodeIds().count < specs.count { try await Task.sleep(for: .milliseconds(10)) }
        // Loads arrive with the first heartbeat after registration.
        try await Task.sleep(for: .milliseconds(250))
        let prompt = (0..<promptTokens).map { UInt32(97 + $0 % 26) }
        func measure(_ kind: PlanKind?, _ id: String) async -> (Double, PlanKind?) {
            let start = DispatchTime.now().uptimeNanoseconds
            var plan: PlanKind?
            let req = InferenceRequest(requestId: id, deviceId: "d0", prompt: prompt, maxTokens: UInt32(newTokens), sampling: Messages.Sampling(seed: 1))
            for await body in router.generate(req, kind: kind) {
                if case .token(let t) = body { plan = PlanKind(rawValue: t.plan) }
            }
            return (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, plan)
        }
        _ = await measure(.local, "warmup")
        var expected: [PlanKind: Double] = [:]
        for p in try await router.candidates(device: "d0", promptTokens: promptTokens, newTokens: newTokens) { expected[p.kind] = p.expectedSeconds }
        // Best of two runs for the router's choice and for every contender (expected within 1.5× of the best);
        // plans far off are measured once.
        let bestExpected = expected.values.min() ?? 0
        var chosen: PlanKind?, chosenSeconds = Double.infinity
        var measured: [PlanKind: Double] = [:]
        for rep in 0..<2 {
            let (t, kind) = await measure(nil, "routed-\(rep)")
            chosen = kind
            chosenSeconds = min(chosenSeconds, t)
            for kind in PlanKind.allCases {
                guard let e = expected[kind], rep == 0 || e <= 1.5 * bestExpected else { continue }
                let (t, got) = await measure(kind, "forced-\(kind.rawValue)-\(rep)")
                if got == kind { measured[kind] = min(measured[kind] ?? .infinity, t) }
            }
        }
        return Result(scenario: s, chosen: chosen ?? .local, chosenSeconds: chosenSeconds, measured: measured, expected: expected)
    }

    public static func format(_ results: [Result]) -> String {
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        func secs(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "-" }
        let kinds = PlanKind.allCases
        var lines = [pad("scenario", 40) + pad("router", 13) + pad("s", 7) + pad("oracle", 13) + pad("s", 7) + pad("ratio", 7)
                     + kinds.map { pad($0.rawValue, 13) }.joined() + "speedup"]
        for r in results {
            var line = pad(r.scenario.name, 40) + pad(r.chosen.rawValue, 13) + pad(secs(r.chosenSeconds), 7)
            line += pad(r.oracle.kind.rawValue, 13) + pad(secs(r.oracle.seconds), 7) + pad(String(format: "%.3f", r.ratio), 7)
            line += kinds.map { pad(secs(r.measured[$0]) + "/" + secs(r.expected[$0]), 13) }.joined()
            line += String(format: "%.2fx", r.bestBaseline / r.chosenSeconds)
            lines.append(line)
        }
        let within = results.filter { $0.ratio <= 1.05 }.count
        let speedup = results.map { $0.bestBaseline / $0.chosenSeconds }.reduce(0, +) / Double(max(results.count, 1))
        let modelError = results.flatMap { r in r.measured.compactMap { k, m in r.expected[k].map { abs($0 - m) / m } } }
        var wins: [String: Int] = [:]
        for r in results { wins[r.chosen.rawValue, default: 0] += 1 }
        lines.append("(per plan kind: measured/expected seconds)")
        lines.append(String(format: "router within 1.05x of the oracle in %d/%d scenarios (%.0f%%, goal >= 90%%)", within, results.count,
                            100 * Double(within) / Double(max(results.count, 1))))
        lines.append(String(format: "mean speed-up over the best single-node baseline (local or cloud, measured): %.2fx", speedup))
        lines.append(String(format: "planner expected vs measured: mean |error| %.1f%% over %d plans", 
                            100 * modelError.reduce(0, +) / Double(max(modelError.count, 1)), modelError.count))
        lines.append("router choices: " + wins.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        return lines.joined(separator: "\n")
    }
}
