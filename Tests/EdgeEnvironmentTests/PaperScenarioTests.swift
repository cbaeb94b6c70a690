import EdgeEnvironment
import Foundation
import XCTest

/// The scenarios of examples/paper: 12 devices on 2 edges; the straggler one makes exactly 3 of them (25%, at least the 20%) 10× slower.
final class PaperScenarioTests: XCTestCase {
    private let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func testPaperScenarioHasTwelveDevicesOnTwoEdgesAndNoStragglers() throws {
        let network = try Scenario.load(root.appendingPathComponent("examples/scenarios/paper.yaml")).build()
        XCTAssertEqual(network.topology.devices.count, 12)
        XCTAssertEqual(network.topology.accessPoints, ["edge-0", "edge-1"])
        XCTAssertEqual(network.topology.devices(servedBy: "edge-1"), (0..<6).map { "device-\(2 * $0 + 1)" })
        XCTAssertFalse(network.topology.devices.contains { network.topology[$0]!.isStraggler })
    }

    func testStragglerScenarioSlowsExactlyThreeOfTwelveDevicesTenfold() throws {
        let paper = try Scenario.load(root.appendingPathComponent("examples/scenarios/paper.yaml")).build()
        let slow = try Scenario.load(root.appendingPathComponent("examples/scenarios/stragglers.yaml")).build()
        let stragglers = slow.topology.devices.filter { slow.topology[$0]!.isStraggler }
        XCTAssertEqual(stragglers.count, 3)
        for d in slow.topology.devices {
            let ratio = paper.topology[d]!.flopsPerSecond / slow.topology[d]!.flopsPerSecond
            XCTAssertEqual(ratio, stragglers.contains(d) ? 10 : 1, accuracy: 1e-9, d)
        }
    }
}
