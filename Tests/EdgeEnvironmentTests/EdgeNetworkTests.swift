import EdgeEnvironment
import XCTest

final class EdgeNetworkTests: XCTestCase {
    /// One AP at the origin (10 MHz, 40 dBm), devices 100 m away, no shadowing or fading.
    static func cell(devices: Int, slowDevice: Int? = nil) -> EdgeNetwork {
        var topology = Topology()
        topology.add(Node(id: "cloud", tier: .cloud, position: Position(x: 0, y: 0), flopsPerSecond: 10e12))
        topology.add(Node(id: "edge-0", tier: .edge, position: Position(x: 0, y: 0), flopsPerSecond: 500e9,
                          txPowerDBm: 40, bandwidthHz: 10e6))
        for i in 0..<devices {
            let angle = Double(i) * 2 * Double.pi / Double(max(devices, 1))
            topology.add(Node(id: "device-\(i)", tier: .device,
                              position: Position(x: 100 * cos(angle), y: 100 * sin(angle)),
                              flopsPerSecond: i == slowDevice ? 1e9 : 10e9, txPowerDBm: 23, accessPoint: "edge-0"))
        }
        return EdgeNetwork(topology: topology, channel: ChannelTests.deterministicChannel(),
                           backhaul: WiredLink(rateBitsPerSecond: 1e9, latencySeconds: 0.005))
    }

    func testTwoActiveDevicesEachGetHalfTheRate() throws {
        var network = Self.cell(devices: 2)
        // Solo: 1e7·log2(1 + 10^2.75) = 91.3787 Mbit/s (see ChannelTests).
        let solo = try network.shannonRate(from: "device-0", to: "edge-0", at: 0)
        XCTAssertEqual(solo, 91.3787e6, accuracy: 100)
        try network.setActive(["device-0", "device-1"])
        let shared0 = try network.linkState(LinkID(from: "device-0", to: "edge-0"), at: 0)
        let shared1 = try network.shannonRate(from: "device-1", to: "edge-0", at: 0)
        XCTAssertEqual(shared0.sharedBy, 2)
        XCTAssertEqual(shared0.rateBitsPerSecond, solo / 2, accuracy: 1e-6)
        XCTAssertEqual(shared1, solo / 2, accuracy: 1e-6)
        // Time sharing keeps the full-band SNR.
        XCTAssertEqual(shared0.snr, 562.341, accuracy: 1e-3)
    }

    func testTransferTimeToCloudAddsUplinkAndBackhaul() throws {
        let network = Self.cell(devices: 1)
        XCTAssertEqual(try network.route(from: "device-0", to: "cloud"),
                       [LinkID(from: "device-0", to: "edge-0"), LinkID(from: "edge-0", to: "cloud")])
        // 1 MB: 8e6/91.3787e6 = 0.087547 s + 100 m/c (0.33 µs) + 8e6/1e9 = 0.008 s + 5 ms = 0.100548 s.
        let seconds = try network.transferTime(bytes: 1_000_000, from: "device-0", to: "cloud", at: 0)
        XCTAssertEqual(seconds, 0.100548, accuracy: 1e-5)
        XCTAssertEqual(try network.transferTime(bytes: 0, from: "edge-0", to: "cloud", at: 0), 0.005, accuracy: 1e-12)
    }

    func testTransmitEnergyIsAirtimeTimesPower() throws {
        let network = Self.cell(devices: 1)
        // 1 MB uplink: 0.087547 s at 23 dBm = 0.19953 W → 0.017468 J; the backhaul hop is free.
        XCTAssertEqual(try network.transmitEnergy(bytes: 1_000_000, from: "device-0", to: "cloud", at: 0),
                       0.087547 * 0.199526, accuracy: 1e-5)
    }

    func testChannelReportGivesSNRInDecibelsAndBothRates() throws {
        let report = try Self.cell(devices: 1).channelReport(device: "device-0", at: 0)
        // Uplink 23 − 90.5 + 95 = 27.5 dB; downlink 40 − 90.5 + 95 = 44.5 dB → 1e7·log2(1 + 10^4.45) = 147.826 Mbit/s.
        XCTAssertEqual(report.accessPoint, "edge-0")
        XCTAssertEqual(report.uplinkSNRDB, 27.5, accuracy: 1e-9)
        XCTAssertEqual(report.downlinkSNRDB, 44.5, accuracy: 1e-9)
        XCTAssertEqual(report.uplinkBitsPerSecond, 91.3787e6, accuracy: 100)
        XCTAssertEqual(report.downlinkBitsPerSecond, 147.8263e6, accuracy: 100)
    }

    func testComputeTimeScalesWithLoad() throws {
        var network = Self.cell(devices: 1)
        // 1e9 FLOPs on 10 GFLOP/s: 0.1 s; at load 0.5: 1e9 / (1e10·0.5) = 0.2 s.
        XCTAssertEqual(try network.computeTime(flops: 1e9, node: "device-0"), 0.1, accuracy: 1e-12)
        try network.setLoad(0.5, of: "device-0")
        XCTAssertEqual(try network.computeTime(flops: 1e9, node: "device-0"), 0.2, accuracy: 1e-12)
        XCTAssertThrowsError(try network.setLoad(1.0, of: "device-0")) { error in
            XCTAssertEqual(error as? EdgeNetworkError, .invalidLoad(node: "device-0", load: 1.0))
        }
        XCTAssertThrowsError(try network.computeTime(flops: 1, node: "device-9")) { error in
            XCTAssertEqual(error as? EdgeNetworkError, .unknownNode("device-9"))
        }
    }

    func testPeerRoutesFollowDeviceToDeviceMode() throws {
        var network = Self.cell(devices: 2)
        XCTAssertEqual(try network.route(from: "device-0", to: "device-1"), [LinkID(from: "device-0", to: "device-1")])
        XCTAssertEqual(try network.linkState(LinkID(from: "device-0", to: "device-1"), at: 0).kind, .deviceToDevice)
        network.channel.parameters.deviceToDevice = .viaAccessPoint
        XCTAssertEqual(try network.route(from: "device-0", to: "device-1"),
                       [LinkID(from: "device-0", to: "edge-0"), LinkID(from: "edge-0", to: "device-1")])
    }

    func testRoundTimelineMakesTheSlowDeviceArriveLast() throws {
        let network = Self.cell(devices: 4, slowDevice: 3)
        let timeline = try network.roundTimeline(devices: ["device-0", "device-1", "device-2", "device-3"],
                                                 start: 10, modelBytes: 1_000_000, updateBytes: 1_000_000) { _ in 1e9 }
        // 4 devices share the AP. Down: 40 dBm → SNR 44.5 dB, 1e7·log2(1+10^4.45)/4 = 36.957 Mbit/s → 0.216470 s.
        // Up: 91.3787/4 = 22.845 Mbit/s → 0.350191 s. Compute 0.1 s (1 s for the 1 GFLOP/s device).
        XCTAssertEqual(timeline.map(\.device).last, "device-3")
        for entry in timeline {
            XCTAssertEqual(entry.downloadSeconds, 0.216471, accuracy: 1e-5)
            XCTAssertEqual(entry.uploadSeconds, 0.350192, accuracy: 1e-5)
            XCTAssertEqual(entry.arrival, 10 + entry.downloadSeconds + entry.computeSeconds + entry.uploadSeconds, accuracy: 1e-9)
        }
        XCTAssertEqual(timeline[0].arrival, 10.666662, accuracy: 1e-5)
        XCTAssertEqual(timeline[3].arrival, 11.566662, accuracy: 1e-5)
    }

    func testFadedTransferIsDeterministicAndSpansCoherenceBlocks() throws {
        var network = try Scenario().build()
        network.channel.parameters.shadowingSigmaDB = 0
        let hop = LinkID(from: "device-0", to: "edge-0")
        let bits = 400e6
        let t1 = try network.airtime(bits: bits, on: hop, at: 3.05)
        XCTAssertEqual(try network.airtime(bits: bits, on: hop, at: 3.05), t1)
        // Sent block by block: bits ≈ Σ rate_k · span_k; checking it by re-summing the rates.
        var sent = 0.0, clock = 3.05, block = 30
        while clock < 3.05 + t1 - 1e-12, block < 100_000 {
            let end = min(Double(block + 1) * 0.1, 3.05 + t1)
            sent += try network.linkState(hop, at: (Double(block) + 0.5) * 0.1).rateBitsPerSecond * (end - clock)
            clock = end
            block += 1
        }
        XCTAssertEqual(sent, bits, accuracy: bits * 1e-6)
        XCTAssertGreaterThan(t1, 0.2) // many blocks
    }
}

final class EdgeNetworkScaleTests: XCTestCase {
    func testTopologyIndexesSurviveUpdatesAndHandovers() throws {
        var network = EdgeNetworkTests.cell(devices: 3)
        try network.setLoad(0.3, of: "device-0")
        XCTAssertEqual(network.topology.devices, ["device-0", "device-1", "device-2"])
        var moved = try network.topology.node("device-1")
        moved.accessPoint = "edge-1"
        network.topology.add(Node(id: "edge-1", tier: .edge, position: Position(x: 500, y: 0),
                                  flopsPerSecond: 1e11, txPowerDBm: 40, bandwidthHz: 10e6))
        network.topology.add(moved)
        XCTAssertEqual(network.topology.devices(servedBy: "edge-0"), ["device-0", "device-2"])
        XCTAssertEqual(network.topology.devices(servedBy: "edge-1"), ["device-1"])
        try network.setActive(["device-0", "device-1", "device-2"])
        XCTAssertEqual(network.sharingCount(accessPoint: "edge-0", including: "device-0"), 2)
        // Multi-access: device-0 reaching edge-1 joins its one active device there.
        XCTAssertEqual(network.sharingCount(accessPoint: "edge-1", including: "device-0"), 2)
    }

    func testThousandDeviceRoundSimulatesInSeconds() throws {
        var scenario = Scenario()
        scenario.edges.count = 20
        scenario.devices.count = 1000
        let network = try scenario.build()
        let start = Date()
        let timeline = try network.roundTimeline(devices: network.topology.devices, start: 0,
                                                 modelBytes: 200_000, updateBytes: 200_000) { _ in 1e9 }
        let wall = Date().timeIntervalSince(start)
        XCTAssertEqual(timeline.count, 1000)
        XCTAssertEqual(timeline.map(\.arrival), timeline.map(\.arrival).sorted())
        // Informational only (timing goals belong in benchmarks): accounted time, not slept time.
        print("1000-device round: virtual \(timeline.last?.arrival ?? 0) s, wall \(wall) s")
    }
}
