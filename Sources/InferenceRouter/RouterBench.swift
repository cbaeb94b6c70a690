import Bus
import Engine
import Foundation
import Messages
import Stage

/// `fi bench router`: for each scenario (bandwidth, load, device speed) it starts stage nodes and a router in one
/// process (inproc), emulates every hop with a LinkEmulator and every node's compute with its FLOP/s and load
/// (nodes sleep the difference between modeled and real compute time), and measures the router's choice against
/// every candidate plan forced in turn (the oracle is the fastest measured), local only and cloud only.
public enum RouterBench {
    public struct Scenario: Sendable, Equatable {
        public var name: String
        public var deviceFlops: Double
        public var edgeLoad: Double
        /// Device ↔ edge (and device ↔ cloud) rate, bits/s.
        public var accessRate: Double
        /// Device ↔ edge one-way latency, s.
        public var accessLatency: Double

        public init(name: String, deviceFlops: Double, edgeLoad: Double, accessRate: Double, accessLatency: Double) {
            self.name = name; self.deviceFlops = deviceFlops; self.edgeLoad = edgeLoad
            self.accessRate = accessRate; self.accessLatency = accessLatency
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

    /// Small model for the bench: 6 blocks of width 64, byte vocabulary.
    public static let config = GPT2Config(vocabSize: 256, contextLength: 64, layers: 6, heads: 4, width: 64)
    public static let edgeFlops = 1e8, cloudFlops = 1e9, peerFlops: [Double] = [6e7, 3e7]
    public static let cloudLatency = 0.02, backhaulRate = 1e8, d2dRate = 2e7, d2dLatency = 0.003

    /// 2 device speeds × 2 access rates × 2 edge loads × 2 access latencies.
    public static func defaultGrid() -> [Scenario] {
        var out: [Scenario] = []
        for dev in [1e7, 4e7] {
            for rate in [2e6, 5e7] {
                for load in [0.0, 0.85] {
                    for lat in [0.0005, 0.003] {
                        out.append(Scenario(name: String(format: "dev%.0fM-bw%.0fM-load%.2f-lat%.1fms", dev / 1e6, rate / 1e6, load, lat * 1000),
                                            deviceFlops: dev, edgeLoad: load, accessRate: rate, accessLatency: lat))
                    }
                }
            }
        }
        return out
    }

    /// Symmetric links of a scenario, keyed "a->b".
    public static func links(_ s: Scenario) -> [String: LinkProfile] {
        var l: [String: LinkProfile] = [:]
        func both(_ a: String, _ b: String, _ p: LinkProfile) { l[NetworkView.key(a, b)] = p; l[NetworkView.key(b, a)] = p }
        let access = LinkProfile(rateBps: s.accessRate, latencySeconds: s.accessLatency)
        both("d0", "e0", access); both("d0", "e1", access)
        both("d0", "c0", LinkProfile(rateBps: s.accessRate, latencySeconds: cloudLatency + s.accessLatency))
        for e in ["e0", "e1"] { both(e, "c0", LinkProfile(rateBps: backhaulRate, latencySeconds: cloudLatency)) }
        both("e0", "e1", LinkProfile(rateBps: backhaulRate, latencySeconds: 0.001))
        let d2d = LinkProfile(rateBps: d2dRate, latencySeconds: d2dLatency)
        both("d0", "d1", d2d); both("d0", "d2", d2d); both("d1", "d2", d2d)
        return l
    }

    public static func run(_ scenarios: [Scenario], promptTokens: Int = 8, newTokens: Int = 6,
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
        options.heartbeatInterval = .milliseconds(100)
        options.stepTimeout = .seconds(10)
        let router = try InferenceRouter(bind: "inproc://bench-router-\(tag)", config: config, options: options, context: context)
        let specs: [(String, NodeRole, Double, Double)] = [
            ("d0", .device, s.deviceFlops, 0), ("d1", .device, peerFlops[0], 0), ("d2", .device, peerFlops[1], 0),
            ("e0", .edge, edgeFlops, s.edgeLoad), ("e1", .edge, edgeFlops, min(0.95, s.edgeLoad + 0.1)), ("c0", .cloud, cloudFlops, 0),
        ]
        var servers: [StageServer] = []
        defer {
            for n in servers { n.stop() }
            router.stop()
        }
        for (id, role, flops, load) in specs {
            servers.append(try StageServer(model: try GPT2(config: config, seed: 1), options: StageNodeOptions(
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
        var measured: [PlanKind: Double] = [:]
        for kind in PlanKind.allCases where expected[kind] != nil {
            let (t, got) = await measure(kind, "forced-\(kind.rawValue)")
            if got == kind { measured[kind] = t }
        }
        let (t, chosen) = await measure(nil, "routed")
        return Result(scenario: s, chosen: chosen ?? .local, chosenSeconds: t, measured: measured, expected: expected)
    }

    public static func format(_ results: [Result]) -> String {
        var lines = [String(format: "%-34@ %-13@ %8@ %-13@ %8@ %6@ %8@ %8@ %8@", "scenario" as NSString, "router" as NSString,
                            "s" as NSString, "oracle" as NSString, "s" as NSString, "ratio" as NSString, "local" as NSString,
                            "cloud" as NSString, "speedup" as NSString)]
        for r in results {
            lines.append(String(format: "%-34@ %-13@ %8.3f %-13@ %8.3f %6.3f %8.3f %8.3f %8.2f", r.scenario.name as NSString,
                                r.chosen.rawValue as NSString, r.chosenSeconds, r.oracle.kind.rawValue as NSString, r.oracle.seconds,
                                r.ratio, r.measured[.local] ?? .nan, r.measured[.cloud] ?? .nan, r.bestBaseline / r.chosenSeconds))
        }
        let within = results.filter { $0.ratio <= 1.05 }.count
        let speedup = results.map { $0.bestBaseline / $0.chosenSeconds }.reduce(0, +) / Double(max(results.count, 1))
        let modelError = results.flatMap { r in r.measured.compactMap { k, m in r.expected[k].map { abs($0 - m) / m } } }
        lines.append(String(format: "router within 1.05x of the oracle in %d/%d scenarios (%.0f%%, goal >= 90%%)", within, results.count,
                            100 * Double(within) / Double(max(results.count, 1))))
        lines.append(String(format: "mean speed-up over the best single-node baseline (local or cloud): %.2fx", speedup))
        lines.append(String(format: "planner expected vs measured: mean |error| %.1f%% over %d plans",
                            100 * modelError.reduce(0, +) / Double(max(modelError.count, 1)), modelError.count))
        return lines.joined(separator: "\n")
    }
}
