import ArgumentParser
import Foundation
import InferenceRouter
import Testbed

/// `fi bench inference`: per-hop overhead (direct vs hub), batched sessions vs one, and (on the testbed, as root)
/// the router's plans from live state vs the measured best plan; `--json` prints the figures as one JSON object.
struct BenchInference: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inference",
        abstract: "Serving figures of split inference, each against a baseline measured in the same run.")

    @Flag(help: "Print the figures as one JSON object (progress goes to stderr).") var json = false
    @Option(help: "Pass-through stages for the per-hop figure.") var hops = 8
    @Option(help: "Hidden width for the per-hop figure.") var width = 768
    @Option(help: "Concurrent sessions for the batching figure.") var sessions = 32
    @Option(help: "Only these parts: hop, batch, testbed (comma-separated; default all; testbed needs root).") var only: String?
    @Option(help: "Testbed scenario for the plan-quality grid.") var scenario = "examples/testbed/rate-cut.yaml"
    @Option(help: "Grid: rates (Mbit/s) of the device's link to the first edge server.") var rates = "0.02,0.1,0.5,2,20"
    @Option(help: "Grid: background loads of the first edge server.") var loads = "0,0.7"

    func run() async throws {
        guard hops > 0, width > 0, sessions > 0 else { throw ValidationError("--hops, --width and --sessions must be positive") }
        let parts = Set((only ?? "hop,batch,testbed").split(separator: ",").map(String.init))
        let say: @Sendable (String) -> Void = { line in FileHandle.standardError.write(Data((line + "\n").utf8)) }
        var out: [String: Any] = [:]
        if parts.contains("hop") {
            let h = try await InferenceBench.perHop(width: width, hops: hops, progress: say)
            out["per_hop"] = [
                "width": h.width, "hops": h.hops, "tokens": h.tokens,
                "direct_ms": h.directPerHopMs, "hub_ms": h.hubPerHopMs, "direct_over_hub": h.ratio,
                "direct_token_ms": ["no_hops": h.directBaseMs, "with_hops": h.directHopsMs],
                "hub_token_ms": ["no_hops": h.hubBaseMs, "with_hops": h.hubHopsMs],
                "goal": "direct <= 0.3 ms and <= 0.5x hub", "met": h.directPerHopMs <= 0.3 && h.ratio <= 0.5,
            ] as [String: Any]
            if !json {
                print(String(format: "per-hop overhead at d=%d over %d hops: direct %.3f ms, hub %.3f ms (direct/hub %.2f; goal <= 0.3 ms and <= 0.5)",
                             h.width, h.hops, h.directPerHopMs, h.hubPerHopMs, h.ratio))
            }
        }
        if parts.contains("batch") {
            let b = try await InferenceBench.batched(sessions: sessions, progress: say)
            out["batched"] = [
                "sessions": b.sessions, "tokens_per_session": b.tokens,
                "one_session_tokens_per_s": b.singleTokensPerSecond, "concurrent_tokens_per_s": b.concurrentTokensPerSecond,
                "speedup": b.ratio, "goal": "\(b.sessions) sessions >= 4x one session", "met": b.ratio >= 4,
                "compute_only_rows_per_s": ["one": b.computeSingleRowsPerSecond, "batched": b.computeBatchRowsPerSecond, "speedup": b.computeRatio],
            ] as [String: Any]
            if !json {
                print(String(format: "one stage node: %d concurrent sessions %.0f tokens/s vs one session %.0f tokens/s (%.2fx; goal >= 4x)",
                             b.sessions, b.concurrentTokensPerSecond, b.singleTokensPerSecond, b.ratio))
                print(String(format: "  compute alone: %.0f rows/s batched vs %.0f one row (%.2fx)", b.computeBatchRowsPerSecond,
                             b.computeSingleRowsPerSecond, b.computeRatio))
            }
        }
        if parts.contains("testbed") { out["testbed"] = try await testbed(say) }
        if json {
            let data = try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        }
    }

    /// The plan-quality grid on the network-namespace testbed (as root), or why it could not run.
    func testbed(_ say: @escaping @Sendable (String) -> Void) async throws -> [String: Any] {
        guard geteuid() == 0 else { return ["skipped": "needs root (ip netns, tc)"] }
        guard let bin = ServiceProcess.executablesNextTo(needing: "stage-node") else {
            return ["skipped": "stage-node is not built next to fi"]
        }
        let spec = try TestbedSpec.load(URL(fileURLWithPath: scenario))
        func numbers(_ s: String, _ name: String) throws -> [Double] {
            let xs = s.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard !xs.isEmpty, xs.count == s.split(separator: ",").count else { throw ValidationError("--\(name): comma-separated numbers") }
            return xs
        }
        let device = spec.hosts.first { $0.role == "device" }?.name ?? ""
        let edge = spec.hosts.first { $0.role == "edge" }?.name ?? ""
        guard !device.isEmpty, !edge.isEmpty else { throw ValidationError("the testbed scenario needs a device and an edge host") }
        let grid = TestbedBench.Grid(rates: try numbers(rates, "rates").map { $0 * 1e6 }, loads: try numbers(loads, "loads"),
                                     link: (device, edge), loaded: edge, device: device)
        let points = try await TestbedBench.run(spec: spec, bin: bin, grid: grid, progress: say)
        let within = points.filter { $0.ratio <= 1.05 }.count
        let errors = points.map { abs($0.chosenSeconds - $0.chosenExpected) / $0.chosenSeconds }
        if !json {
            print(String(format: "testbed: router within 1.05x of the measured best plan at %d of %d grid points (goal >= 90%%)", within, points.count))
        }
        return [
            "scenario": scenario, "points": points.count, "within_1_05": within,
            "fraction": Double(within) / Double(max(1, points.count)), "goal": ">= 0.9 of the grid within 1.05x of the best measured plan",
            "met": Double(within) >= 0.9 * Double(points.count),
            "mean_estimate_error": errors.reduce(0, +) / Double(max(1, errors.count)),
            "grid": points.map { p in
                ["rate_mbit": p.rateMbit, "load": p.load, "router_plan": p.chosen, "router_s": p.chosenSeconds, "router_expected_s": p.chosenExpected,
                 "best_plan": p.best, "best_s": p.bestSeconds, "ratio": p.ratio, "measured": p.measured, "expected": p.expected] as [String: Any]
            },
        ]
    }
}
