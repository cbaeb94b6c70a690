import Aggregator
import Bus
import ClusterManager
import DeviceWorker
import FederatedRun
import Foundation
import Messages
import Reports
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

/// Clustered hierarchy: tiers do not resume, but a restarted edge must reach its devices again (wire ids above its
/// previous run's) and the cloud run must finish.
final class ClusteredEdgeRestartTests: XCTestCase {
    func testRestartedClusteredEdgeRejoinsAndTheCloudFinishes() async throws {
        let dir = Kit.tempDir("hc-edge-restart")
        let model = try Kit.tinyModel(in: dir)
        let data = try Kit.tinyData(in: dir, devices: 4)
        let e = try Experiment.parse(yaml: """
        name: hc-edge-restart
        seed: 5
        model: \(model)
        data: {devices: 4, manifest: \(data)}
        lora: {rank: 2, alpha: 4, targets: [c_attn]}
        federation: {paradigm: hierarchical, rounds: 6, local_steps: 30, batch: 2, seq: 32, lr: 0.02, quorum: 4, deadline_s: 5, eval_tokens: 256}
        hierarchical: {edges: 2, kappa1: 1, kappa2: 1, clustered: true}
        clustered: {mode: oracle}
        scenario: {devices: {count: 4}, edges: {count: 2}}
        """)
        let context = BusContext()
        let ports = try FederatedRun.freePorts(8).map { "tcp://127.0.0.1:\($0)" }
        var mo = ClusterManagerService.Options(router: ports[0], pub: ports[1], heartbeatMs: 200, liveness: 4, partitions: 4)
        mo.deviceEdges = HierarchyPlan(e).deviceEdges
        let manager = try ClusterManagerService(mo, context: context)
        manager.start()
        defer { manager.stop() }
        let initial = try AdapterWire.initialAdapter(modelDir: model, lora: e.lora, seed: 5)
        func options(_ id: String, _ tier: Messages.Tier, router: String, pub: String, upstream: String?) -> AggregatorService.Options {
            var o = AggregatorService.Options(manager: manager.routerEndpoint, router: router, pub: pub, experiment: e)
            o.id = id; o.tier = tier; o.upstream = upstream; o.heartbeatMs = 200; o.quiet = true
            o.checkpoint = dir.appendingPathComponent("ckpt/\(id)").path
            return o
        }
        let cloud = try AggregatorService(options("cloud", .cloud, router: ports[2], pub: ports[3], upstream: nil), initial: initial, context: context)
        let edge1 = try AggregatorService(options("edge-1", .edge, router: ports[6], pub: ports[7], upstream: ports[2]), initial: initial, context: context)
        let edge0Options = options("edge-0", .edge, router: ports[4], pub: ports[5], upstream: ports[2])
        let edge0 = try AggregatorService(edge0Options, initial: initial, context: context)
        var devices: [DeviceWorkerService] = []
        for _ in 0..<4 {
            var d = DeviceWorkerService.Options(manager: manager.routerEndpoint, model: model, data: data, experiment: e)
            d.heartbeatMs = 200; d.retryMs = 500; d.quiet = true
            devices.append(try DeviceWorkerService(d, context: context))
        }
        defer { devices.forEach { $0.stop() } }
        cloud.start(); edge1.start(); edge0.start(); devices.forEach { $0.start() }
        defer { edge1.stop(); cloud.stop() }

        let reached = try await eventually(40) { try await cloud.status().records.count >= 3 }
        XCTAssertTrue(reached, "the cloud never completed 2 rounds")
        edge0.stop()
        var maybeSecond: AggregatorService?
        for _ in 0..<30 where maybeSecond == nil {
            maybeSecond = try? AggregatorService(edge0Options, initial: initial, context: context)
            if maybeSecond == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        let second = try XCTUnwrap(maybeSecond)
        second.start()
        defer { second.stop() }
        let finished = try await eventually(60) { try await cloud.status().finished }
        let records = try await cloud.status().records
        XCTAssertTrue(finished, "the cloud did not finish after a clustered edge restart; cloud records \(records.map(\.round))")
        XCTAssertEqual(records.last?.round, 6)
        let after = try await second.status()
        XCTAssertGreaterThan(after.records.count, 0, "the restarted edge ran rounds")
        // Its devices take its very first round (with ids at or below what they trained they would skip rounds until
        // the ids caught up, each one dropped at its deadline).
        let firstRound = try XCTUnwrap(after.records.first)
        XCTAssertTrue(firstRound.participants > 0 && firstRound.dropped == 0,
                      "the restarted edge's devices skipped its rounds: \(after.records.map { ($0.round, $0.participants, $0.dropped) })")
    }
}
