import Aggregator
import Bus
import ClusterManager
import DeviceWorker
import FederatedRun
import Foundation
import Messages
import XCTest

final class EdgeRestartTests: XCTestCase {
    /// A killed edge aggregator comes back from its own checkpoint (per tier) and the cloud run still finishes.
    func testRestartedEdgeAggregatorResumesFromItsCheckpoint() async throws {
        let s = try HierarchicalRunTests.setup("edge-restart", devices: 4, rounds: 6)
        let context = BusContext()
        let ports = try FederatedRun.freePorts(8).map { "tcp://127.0.0.1:\($0)" }
        var mo = ClusterManagerService.Options(router: ports[0], pub: ports[1], heartbeatMs: 200, liveness: 4, partitions: 4)
        mo.deviceEdges = HierarchyPlan(s.experiment).deviceEdges
        let manager = try ClusterManagerService(mo, context: context)
        manager.start()
        defer { manager.stop() }
        let initial = try AdapterWire.initialAdapter(modelDir: s.model, lora: s.experiment.lora, seed: 5)
        func options(_ id: String, _ tier: Messages.Tier, router: String, pub: String, upstream: String?) -> AggregatorService.Options {
            var o = AggregatorService.Options(manager: manager.routerEndpoint, router: router, pub: pub, experiment: s.experiment)
            o.id = id; o.tier = tier; o.upstream = upstream; o.heartbeatMs = 200; o.quiet = true
            o.checkpoint = s.dir.appendingPathComponent("ckpt/\(id)").path
            return o
        }
        let cloud = try AggregatorService(options("cloud", .cloud, router: ports[2], pub: ports[3], upstream: nil), initial: initial, context: context)
        let edge1 = try AggregatorService(options("edge-1", .edge, router: ports[6], pub: ports[7], upstream: ports[2]), initial: initial, context: context)
        let edge0Options = options("edge-0", .edge, router: ports[4], pub: ports[5], upstream: ports[2])
        let edge0 = try AggregatorService(edge0Options, initial: initial, context: context)
        var devices: [DeviceWorkerService] = []
        for _ in 0..<4 {
            var d = DeviceWorkerService.Options(manager: manager.routerEndpoint, model: s.model, data: s.data, experiment: s.experiment)
            d.heartbeatMs = 200; d.retryMs = 500; d.quiet = true
            devices.append(try DeviceWorkerService(d, context: context))
        }
        defer { devices.forEach { $0.stop() } }
        cloud.start(); edge1.start(); edge0.start(); devices.forEach { $0.start() }
        defer { edge1.stop(); cloud.stop() }

        let reached = try await eventually(30) { try await edge0.status().completedRound >= 2 }
        XCTAssertTrue(reached, "edge-0 never completed 2 rounds")
        edge0.stop()
        let saved = try XCTUnwrap(try CheckpointStore(directory: URL(fileURLWithPath: edge0Options.checkpoint!)).load(layers: 2, width: 32))
        XCTAssertGreaterThanOrEqual(saved.state.round, 2)

        var maybeSecond: AggregatorService?
        for _ in 0..<30 where maybeSecond == nil {
            maybeSecond = try? AggregatorService(edge0Options, initial: initial, context: context)
            if maybeSecond == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        let second = try XCTUnwrap(maybeSecond)
        second.start()
        defer { second.stop() }
        let resumed = try await second.status()
        XCTAssertGreaterThan(resumed.completedRound, saved.state.round, "the restarted edge continues after its checkpointed round")
        XCTAssertEqual(resumed.version, saved.state.version)

        let finished = try await eventually(60) { try await cloud.status().finished }
        XCTAssertTrue(finished, "the cloud did not finish after an edge restart")
        let st = try await cloud.status()
        XCTAssertEqual(st.completedRound, 3)
        let after = try await second.status()
        XCTAssertGreaterThan(after.records.count, 0, "the restarted edge ran rounds")
        XCTAssertTrue(after.records.allSatisfy { $0.round > Int(saved.state.round) }, "no edge round number is reused")
    }
}
