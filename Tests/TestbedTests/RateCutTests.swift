import Dispatch
import Foundation
import InferenceRouter
import Messages
import Testbed
import XCTest

/// The multi-host testbed: a device, two edge servers and a cloud, each a stage-node process in its own network
/// namespace, links shaped by the kernel. The router (in this process, on the driver's address) plans only on what
/// the nodes measure and report.
final class RateCutTests: XCTestCase {
    struct Run {
        var start: Double
        var end: Double
        var plan: String
        var expected: Double
        var measured: Double { end - start }
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    func testCuttingTheDeviceEdgeRateChangesThePlanWithinThreeHeartbeatsAndEstimatesHold() async throws {
        guard geteuid() == 0 else { throw XCTSkip("the testbed needs root (ip netns, tc); CI runs as root") }
        guard let bin = ServiceProcess.executablesNextTo(needing: "stage-node") else {
            return XCTFail("stage-node not built next to the tests: run swift build --build-tests")
        }
        let spec = try TestbedSpec.load(TestbedSpecTests.repoRoot.appendingPathComponent("examples/testbed/rate-cut.yaml"))
        let heartbeat = Double(spec.heartbeatMs) / 1000
        let bed = try TestbedDeployment(spec: spec, bin: bin, routerPort: try ServiceProcess.freePort())
        defer { bed.stop() }
        try await bed.waitReady()
        let router = bed.router
        let prompt: [UInt32] = [104, 101, 108, 108]  // 4 tokens, 8 new: about 0.8 s a request on the emulated nodes
        func best() async throws -> String { try await router.candidates(device: "device", promptTokens: prompt.count, newTokens: 8).first?.summary ?? "" }
        var runs: [Run] = []
        for i in 0..<3 { runs.append(await routedRequest(router, "before-\(i)", prompt: prompt)) }
        let before = try await best()
        // The device computes the first blocks and sends its activations to edge-0 (the edges and the cloud hold
        // only part of the model).
        func overCutLink(_ plan: String) -> Bool { plan.contains("device[0,") && plan.contains("+edge-0[") }
        XCTAssertTrue(overCutLink(before), "the best plan before the cut: \(before)")
        // Cut what the device sends to edge-0 to 20 kbit/s (a third of what the plan sends on it) while a request runs.
        let inFlight = Task { [router, prompt] in await routedRequest(router, "at-cut", prompt: prompt) }
        try await Task.sleep(for: .milliseconds(300))
        try bed.net.setRate(from: "device", to: "edge-0", bitsPerSecond: 2e4)
        let cut = Self.now()
        var switched: Double?
        while switched == nil && Self.now() - cut < 10 * heartbeat {
            if !overCutLink(try await best()) { switched = Self.now() }
            try await Task.sleep(for: .milliseconds(20))
        }
        runs.append(await inFlight.value)
        for i in 0..<3 { runs.append(await routedRequest(router, "after-\(i)", prompt: prompt)) }
        let after = runs.last?.plan ?? ""

        let report = runs.map { String(format: "%@ measured %.3f s, expected %.3f s", $0.plan, $0.measured, $0.expected) }.joined(separator: "\n")
        let delay = (switched ?? .infinity) - cut
        XCTAssertLessThanOrEqual(delay, 3 * heartbeat, "the plan changed \(delay) s after the cut (heartbeat \(heartbeat) s)\n\(report)")
        XCTAssertFalse(overCutLink(after), "after the cut the device avoids its slow link: \(after)")
        // Requests that ran on unchanged links (the one in flight at the cut was planned for the old rate): the
        // planner's estimate holds within 20% (the median error), and no single request is off by more than 40% (a
        // shared host's load reports swing between back-to-back requests; seen once: 1.26 s measured vs 1.66 s).
        let errors = runs.filter { !($0.start < cut && $0.end > cut - 0.3) }.map { abs($0.measured / $0.expected - 1) }.sorted()
        XCTAssertFalse(errors.isEmpty)
        if !errors.isEmpty { XCTAssertLessThanOrEqual(errors[errors.count / 2], 0.2, "median estimate error\n\(report)") }
        XCTAssertLessThanOrEqual(errors.last ?? 0, 0.4, "largest estimate error\n\(report)")
        let later = runs.filter { $0.start > (switched ?? cut) }
        XCTAssertEqual(later.count, 3)
        for r in later { XCTAssertFalse(overCutLink(r.plan), "planned after the switch: \(r.plan)\n\(report)") }
    }
}

/// One routed request: its plan, the planner's estimate and the measured time to the last token.
func routedRequest(_ router: InferenceRouter, _ id: String, prompt: [UInt32]) async -> RateCutTests.Run {
    let start = RateCutTests.now()
    var run = RateCutTests.Run(start: start, end: start, plan: "", expected: 0)
    for await body in router.generate(InferenceRequest(requestId: id, deviceId: "device", prompt: prompt, maxTokens: 8)) {
        switch body {
        case .token(let t): run.plan = t.planSummary; run.expected = t.expectedS; run.end = RateCutTests.now()
        case .error(let e): XCTFail("request \(id): \(e.message)")
        default: break
        }
    }
    return run
}
