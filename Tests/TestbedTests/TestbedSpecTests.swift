import Foundation
import Testbed
import XCTest

final class TestbedSpecTests: XCTestCase {
    static var repoRoot: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }

    func testTheExampleScenarioParses() throws {
        let spec = try TestbedSpec.load(Self.repoRoot.appendingPathComponent("examples/testbed/rate-cut.yaml"))
        XCTAssertEqual(spec.hosts.map(\.name), ["device", "edge-0", "edge-1", "cloud"])
        XCTAssertEqual(spec.host("edge-0")?.maxLayers, 3)
        XCTAssertEqual(spec.link("device", "edge-0").rateBitsPerSecond, 20e6)
        XCTAssertEqual(spec.link("edge-0", "device").latencySeconds, 0.005, accuracy: 1e-12)
        XCTAssertEqual(spec.link("cloud", "device").latencySeconds, 0.030, accuracy: 1e-12)
        XCTAssertEqual(spec.heartbeatMs, 200)
        XCTAssertEqual(spec.model.layers, 6)
    }

    func testDirectionalLinksAndDefaults() throws {
        let spec = try TestbedSpec.parse(yaml: """
            hosts: [{name: a, role: device, flops: 1e7}, {name: b, role: edge, flops: 1e8, load: 0.5}]
            links: [{from: a, to: b, rate_mbit: 2.5, latency_ms: 4}]
            default_link: {rate_mbit: 100, latency_ms: 1}
            """)
        XCTAssertEqual(spec.link("a", "b"), TestbedSpec.Link(from: "a", to: "b", rateBitsPerSecond: 2.5e6, latencySeconds: 0.004))
        XCTAssertEqual(spec.link("b", "a"), TestbedSpec.Link(from: "b", to: "a", rateBitsPerSecond: 100e6, latencySeconds: 0.001))
        XCTAssertEqual(spec.host("b")?.load, 0.5)
    }

    func testBadScenariosGetErrorsThatNameTheField() {
        func message(_ yaml: String) -> String {
            do { _ = try TestbedSpec.parse(yaml: yaml); return "parsed" } catch { return "\(error)" }
        }
        let cases: [(String, String)] = [
            ("[1, 2]", "mapping"),
            ("hosts: []", "hosts must be a non-empty list"),
            ("hosts: [{name: a, role: device, flops: 1e7}]\nlinkz: []", "unknown key 'linkz'"),
            ("hosts: [{name: A, role: device, flops: 1e7}]", "hosts[0].name"),
            ("hosts: [{name: a, role: router, flops: 1e7}]", "hosts[0].role"),
            ("hosts: [{name: a, role: edge, flops: 0}]", "hosts[0].flops"),
            ("hosts: [{name: a, role: edge, flops: fast}]", "hosts[0].flops must be a number"),
            ("hosts: [{name: a, role: edge, flops: 1e8, load: 1}]", "hosts[0].load"),
            ("hosts: [{name: a, role: edge, flops: 1e8}, {name: a, role: edge, flops: 1e8}]", "appears twice"),
            ("hosts: [{name: a, role: edge, flops: 1e8}]\nlinks: [{between: [a, z], rate_mbit: 1}]", "links[0]"),
            ("hosts: [{name: a, role: edge, flops: 1e8}, {name: b, role: edge, flops: 1e8}]\nlinks: [{between: [a, b], rate_mbit: 0}]", "links[0].rate_mbit"),
            ("hosts: [{name: a, role: edge, flops: 1e8}, {name: b, role: edge, flops: 1e8}]\nlinks: [{between: [a, b], latency_ms: -1}]", "links[0].latency_ms"),
            ("hosts: [{name: a, role: edge, flops: 1e8}]\nmodel: {width: 10, heads: 4}", "multiple of model.heads"),
            ("hosts: [{name: a, role: edge, flops: 1e8}]\nheartbeat_ms: 1", "heartbeat_ms"),
            ("hosts: {a: 1", "not YAML"),
        ]
        for (yaml, expected) in cases {
            let m = message(yaml)
            XCTAssertTrue(m.contains(expected), "\(yaml) → \(m)")
        }
    }
}
