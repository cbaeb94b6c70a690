import EdgeEnvironment
import Engine
import InferenceRouter
import Messages
import Stage
import XCTest

/// Live state through the services: stage nodes measure their speed, load and links and report them with their
/// heartbeats, and the router plans on those reports only (no links or loads set by hand).
final class LiveDeploymentTests: XCTestCase {
    func testRouterPlansOnMeasuredSpeedLinksAndRadioState() async throws {
        // e0 claims 1e8 FLOP/s but runs under 90% background load (the emulation knob); e1 claims and has 5e7.
        // d0 and e1 sit 30 ms apart (one way, added in user space as on the testbed); d0's radio comes from a
        // scenario without fading, so its rates are fixed numbers.
        var scenario = Scenario()
        scenario.devices.count = 1
        scenario.channel.rayleighFading = false
        scenario.channel.shadowingSigmaDB = 0
        let radio = try RadioState(network: try scenario.build(), device: "device-0", accessPointPeer: "e0")
        let d = try Deployment(nodes: [("d0", .device, 1e5), ("e0", .edge, 1e8), ("e1", .edge, 5e7)], emulate: true) { o in
            switch o.id {
            case "e0":
                o.load = 0.9
                o.linkProbes = false  // so e0 → d0 is the radio downlink, not a probe of the in-process link
            case "e1": o.linkLatency = ["d0": 0.030]
            default:
                o.linkLatency = ["e1": 0.030]
                o.radio = radio
                o.linkProbes = false  // d0's access link rate comes from its radio only (it still echoes probes)
            }
        }
        defer { d.stop() }
        try await d.waitForNodes(3)
        var view = try await d.router.view()
        for _ in 0..<100 {
            view = try await d.router.view()
            let measured = view.node("e0").map { $0.flops < 2e7 } ?? false
            if measured, view.links[NetworkView.key("e1", "d0")] != nil, view.links[NetworkView.key("d0", "e0")] != nil { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        // Measured speeds: e0 at 10% of its claim, e1 at its claim.
        XCTAssertEqual(view.node("e0")?.flops ?? 0, 1e7, accuracy: 2e6)
        XCTAssertEqual(view.node("e1")?.flops ?? 0, 5e7, accuracy: 1e7)
        // Link latency from probe RTTs (two 30 ms legs), and the radio model's access rates.
        // A busy host only adds to a measured RTT (its loops answer late), never takes from it.
        XCTAssertGreaterThanOrEqual(view.link("e1", "d0").latencySeconds, 0.027)
        XCTAssertLessThanOrEqual(view.link("e1", "d0").latencySeconds, 0.055)
        let report = try radio.report(at: 0)
        XCTAssertEqual(view.link("d0", "e0").rateBps, report.rateBps, accuracy: 1)
        XCTAssertEqual(view.link("e0", "d0").rateBps, report.reverseRateBps, accuracy: 1)
        // With the claims e0 would win; on what was measured the router serves the device on e1.
        let plan = try await d.router.candidates(device: "d0", promptTokens: 4, newTokens: 4).first
        XCTAssertEqual(plan?.nodeIds, ["e1"])
        let (tokens, results) = await d.run(InferenceRequest(requestId: "live", deviceId: "d0", prompt: [104, 105, 33, 32], maxTokens: 4))
        XCTAssertEqual(tokens.count, 4)
        XCTAssertEqual(results.first?.planSummary, plan?.summary)
        XCTAssertEqual(results.first?.expectedS ?? 0, plan?.expectedSeconds ?? -1, accuracy: 1e-9)
    }
}
