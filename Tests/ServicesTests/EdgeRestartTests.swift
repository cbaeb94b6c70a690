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

        let second = try await reopenAggregator(edge0Options, initial: initial, context: context)
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

/// Clustered hierarchy across restarts: the cloud resumes its clusters from its checkpoint; an edge starts its cloud
/// round over, and must reach its devices again (wire ids above its previous run's).
final class ClusteredEdgeRestartTests: XCTestCase {
    struct Outcome { var stoppedAt: Int; var restarted: [MetricRecord]; var cloud: [MetricRecord]; var finished: Bool; var cloudSummaryRounds: Int? }

    /// 4 devices, 2 edges, κ1 = κ2 = 1, 6 cloud rounds; stops `restart` ("cloud" or "edge-0") after 2 cloud rounds and
    /// starts it again with the same options.
    func run(restarting restart: String) async throws -> Outcome {
        let s = try Kit.tiny("hc-restart-\(restart)", devices: 4, """
        lora: {rank: 2, alpha: 4, targets: [c_attn]}
        federation: {paradigm: hierarchical, rounds: 6, local_steps: 30, batch: 2, seq: 32, lr: 0.02, quorum: 4, deadline_s: 5, eval_tokens: 256}
        hierarchical: {edges: 2, kappa1: 1, kappa2: 1, clustered: true}
        clustered: {mode: auto, warmup_rounds: 1, recluster_every: 0}
        scenario: {devices: {count: 4}, edges: {count: 2}}
        """)
        let (dir, model, data, e) = (s.dir, s.model, s.data, s.experiment)
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
            o.metrics = dir.appendingPathComponent("out").path
            return o
        }
        let all = [options("cloud", .cloud, router: ports[2], pub: ports[3], upstream: nil),
                   options("edge-0", .edge, router: ports[4], pub: ports[5], upstream: ports[2]),
                   options("edge-1", .edge, router: ports[6], pub: ports[7], upstream: ports[2])]
        var services = try all.map { try AggregatorService($0, initial: initial, context: context) }
        var devices: [DeviceWorkerService] = []
        for _ in 0..<4 {
            var d = DeviceWorkerService.Options(manager: manager.routerEndpoint, model: model, data: data, experiment: e)
            d.heartbeatMs = 200; d.retryMs = 500; d.quiet = true
            devices.append(try DeviceWorkerService(d, context: context))
        }
        defer { devices.forEach { $0.stop() } }
        services.forEach { $0.start() }; devices.forEach { $0.start() }
        defer { services.forEach { $0.stop() } }

        let cloudRecords = { try await services[0].status().records.filter { $0.tier == .cloud } }
        let reached = try await eventually(40) { try await cloudRecords().count >= 3 }
        XCTAssertTrue(reached, "the cloud never completed 2 rounds")
        let k = all.firstIndex { $0.id == restart }!
        services[k].stop()
        let stoppedAt = restart == "cloud" ? Int(try XCTUnwrap(try CheckpointStore(directory: URL(fileURLWithPath: all[k].checkpoint!))
            .load(layers: 2, width: 32)).state.round) : 0
        services[k] = try await reopenAggregator(all[k], initial: initial, context: context)
        services[k].start()
        let finished = try await eventually(60) { try await services[0].status().finished }
        let restarted = try await services[k].status().records
        let cloud = try await cloudRecords()
        let summary = try? JSONDecoder().decode(RunSummary.self, from: Data(contentsOf: URL(fileURLWithPath: all[0].metrics!).appendingPathComponent("summary.json")))
        return Outcome(stoppedAt: stoppedAt, restarted: restarted, cloud: cloud, finished: finished, cloudSummaryRounds: summary?.rounds)
    }

    func testRestartedClusteredEdgeRejoinsAndTheCloudFinishes() async throws {
        let o = try await run(restarting: "edge-0")
        XCTAssertTrue(o.finished, "the cloud did not finish after a clustered edge restart; cloud records \(o.cloud.map(\.round))")
        XCTAssertEqual(o.cloud.last?.round, 6)
        // Its devices take its very first round (with ids at or below what they trained they would skip rounds until
        // the ids caught up, each one dropped at its deadline).
        let firstRound = try XCTUnwrap(o.restarted.first)
        XCTAssertTrue(firstRound.participants > 0 && firstRound.dropped == 0,
                      "the restarted edge's devices skipped its rounds: \(o.restarted.map { ($0.round, $0.participants, $0.dropped) })")
    }

    func testRestartedClusteredCloudResumesItsClusters() async throws {
        let o = try await run(restarting: "cloud")
        XCTAssertTrue(o.finished, "the resumed cloud did not finish; its records \(o.cloud.map(\.round))")
        XCTAssertGreaterThanOrEqual(o.stoppedAt, 2)
        XCTAssertEqual(o.cloud.map(\.round), Array((o.stoppedAt + 1)...6), "no cloud round runs twice, no round-0 evaluation again")
        // The clusters found after round 1 come back with the checkpoint (no warm-up round after the restart).
        XCTAssertEqual(o.cloud.first.flatMap(\.clusters).map { Set($0.values).count }, 2)
        XCTAssertTrue(o.cloud.allSatisfy { $0.participants == 2 && $0.dropped == 0 }, "\(o.cloud.map { ($0.round, $0.participants, $0.dropped) })")
        XCTAssertEqual(o.cloudSummaryRounds, 6)
    }
}
