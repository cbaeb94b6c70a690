import EdgeEnvironment
import Foundation
import XCTest

final class ScenarioTests: XCTestCase {
    func testEmptyYAMLGivesLiteratureDefaults() throws {
        let scenario = try Scenario.decode(yaml: "")
        XCTAssertEqual(scenario, Scenario())
        XCTAssertEqual(scenario.edges.bandwidthHz, 10e6)
        XCTAssertEqual(scenario.devices.txPowerDBm, 23)
        XCTAssertEqual(scenario.edges.cellRadiusMeters, 250)
        XCTAssertEqual(scenario.channel.noiseFigureDB, 9)
        XCTAssertEqual(scenario.channel.shadowingSigmaDB, 8)
        XCTAssertEqual(scenario.channel.coherenceTimeSeconds, 0.1)
        XCTAssertEqual(scenario.backhaul, WiredLink(rateBitsPerSecond: 1e9, latencySeconds: 0.005))
        XCTAssertEqual(scenario.cloud.flopsPerSecond, 10e12)
        XCTAssertEqual(scenario.devices.compute.flopsPerSecond, 10e9)
    }

    func testPartialYAMLOverridesOnlyWhatItNames() throws {
        let scenario = try Scenario.decode(yaml: """
            seed: 99
            edges:
              bandwidthHz: 20e6
              compute: {flopsPerSecond: 1.0e12}
            devices:
              count: 7
              compute: {stragglerFraction: 0.5}
            """)
        XCTAssertEqual(scenario.seed, 99)
        XCTAssertEqual(scenario.edges.bandwidthHz, 20e6)
        XCTAssertEqual(scenario.edges.count, 2)
        XCTAssertEqual(scenario.edges.compute.flopsPerSecond, 1e12)
        XCTAssertEqual(scenario.edges.compute.heterogeneitySigma, 0.2) // edge default kept
        XCTAssertEqual(scenario.devices.count, 7)
        XCTAssertEqual(scenario.devices.compute.stragglerFraction, 0.5)
        XCTAssertEqual(scenario.devices.compute.flopsPerSecond, 10e9) // device default, not cloud
    }

    func testJSONDecodesTheSameFields() throws {
        let json = #"{"seed": 5, "channel": {"shadowingSigmaDB": 4, "deviceToDevice": "viaAccessPoint"}, "devices": {"count": 3}}"#
        let scenario = try Scenario.decode(json: Data(json.utf8))
        XCTAssertEqual(scenario.seed, 5)
        XCTAssertEqual(scenario.channel.shadowingSigmaDB, 4)
        XCTAssertEqual(scenario.channel.deviceToDevice, .viaAccessPoint)
        XCTAssertEqual(scenario.devices.count, 3)
        XCTAssertThrowsError(try Scenario.decode(json: Data(#"{"sed": 1}"#.utf8))) { error in
            XCTAssertEqual(error as? ScenarioError, .unknownKey(field: "sed", allowed: ["seed", "channel", "backhaul", "cloud", "edges", "devices"]))
        }
        XCTAssertThrowsError(try Scenario.decode(json: Data(#"{"channel": {"deviceToDevice": "telepathy"}}"#.utf8))) { error in
            guard case .invalidValue(let field, _, _)? = error as? ScenarioError else { return XCTFail("got \(error)") }
            XCTAssertEqual(field, "channel.deviceToDevice")
        }
    }

    func testExampleScenarioFileLoadsAndEqualsDefaults() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let scenario = try Scenario.load(root.appendingPathComponent("examples/scenarios/default.yaml"))
        XCTAssertEqual(scenario, Scenario())
    }

    func testNegativeBandwidthNamesTheField() {
        XCTAssertThrowsError(try Scenario.decode(yaml: "edges:\n  bandwidthHz: -5\n")) { error in
            guard case .invalidValue(let field, _, _)? = error as? ScenarioError else {
                return XCTFail("expected invalidValue, got \(error)")
            }
            XCTAssertEqual(field, "edges.bandwidthHz")
        }
    }

    func testUnknownKeyIsRejectedWithItsPath() {
        XCTAssertThrowsError(try Scenario.decode(yaml: "edges:\n  bandwith: 5\n")) { error in
            guard case .unknownKey(let field, let allowed)? = error as? ScenarioError else {
                return XCTFail("expected unknownKey, got \(error)")
            }
            XCTAssertEqual(field, "edges.bandwith")
            XCTAssertTrue(allowed.contains("bandwidthHz"))
        }
    }

    func testMalformedYAMLAndWrongTypesGiveTypedErrors() {
        XCTAssertThrowsError(try Scenario.decode(yaml: "edges: [unclosed\n  count: {")) { error in
            guard case .malformed(let format, _)? = error as? ScenarioError else {
                return XCTFail("expected malformed, got \(error)")
            }
            XCTAssertEqual(format, "YAML")
        }
        XCTAssertThrowsError(try Scenario.decode(yaml: "devices:\n  count: many\n")) { error in
            XCTAssertEqual(error as? ScenarioError, .wrongType(field: "devices.count", expected: "an integer"))
        }
        XCTAssertThrowsError(try Scenario.decode(json: Data("{\"seed\": ".utf8))) { error in
            guard case .malformed(let format, _)? = error as? ScenarioError else {
                return XCTFail("expected malformed, got \(error)")
            }
            XCTAssertEqual(format, "JSON")
        }
        XCTAssertThrowsError(try Scenario.load(URL(fileURLWithPath: "/nonexistent/scenario.yaml"))) { error in
            guard case .unreadable? = error as? ScenarioError else { return XCTFail("expected unreadable, got \(error)") }
        }
    }

    func testBuilderPlacesDevicesInTheirCellsDeterministically() throws {
        var scenario = Scenario()
        scenario.edges.count = 4
        scenario.devices.count = 40
        let network = try scenario.build()
        XCTAssertEqual(network.topology.accessPoints, ["edge-0", "edge-1", "edge-2", "edge-3"])
        XCTAssertEqual(network.topology.devices.count, 40)
        XCTAssertEqual(network.topology.devices(servedBy: "edge-1").count, 10)
        for id in network.topology.devices {
            let device = try network.topology.node(id)
            let ap = try network.topology.node(device.accessPoint ?? "")
            XCTAssertLessThanOrEqual(device.position.distance(to: ap.position), 250 + 1e-9)
        }
        // round(0.1 · 40) = 4 stragglers, 10× slower than the tier mean on average.
        XCTAssertEqual(network.topology.devices.filter { network.topology[$0]?.isStraggler == true }.count, 4)
        // Same seed, same network; another seed moves the devices.
        let again = try scenario.build()
        XCTAssertEqual(again.topology["device-7"], network.topology["device-7"])
        scenario.seed = 2
        XCTAssertNotEqual(try scenario.build().topology["device-7"]?.position, network.topology["device-7"]?.position)
    }

    func testDefaultRoundHasStragglersArrivingLate() throws {
        let network = try Scenario().build()
        let devices = network.topology.devices
        // 1e10 FLOPs of local training, 2 MB adapter each way, aggregation at the serving AP.
        let timeline = try network.roundTimeline(devices: devices, start: 0, modelBytes: 2_000_000,
                                                 updateBytes: 2_000_000) { _ in 1e10 }
        XCTAssertEqual(timeline.count, 20)
        XCTAssertEqual(timeline.map(\.arrival), timeline.map(\.arrival).sorted())
        let stragglers = Set(devices.filter { network.topology[$0]?.isStraggler == true })
        XCTAssertEqual(stragglers.count, 2)
        // A straggler computes ≥ ~5 s (1e10 FLOPs at ~1 GFLOP/s); the others ~1 s: they arrive last.
        let maxOtherCompute = timeline.filter { !stragglers.contains($0.device) }.map(\.computeSeconds).max() ?? 0
        for entry in timeline where stragglers.contains(entry.device) {
            XCTAssertGreaterThan(entry.computeSeconds, 5 * maxOtherCompute)
        }
        // Seed 1: both compute stragglers are among the last three arrivals; the very last is a
        // channel straggler (cell edge, deep shadowing: a 2 MB upload at 1/10 of the band takes > 30 s).
        XCTAssertTrue(stragglers.isSubset(of: Set(timeline.suffix(3).map(\.device))))
        XCTAssertFalse(stragglers.contains(timeline[19].device))
        XCTAssertGreaterThan(timeline[19].uploadSeconds, 30)
    }
}
