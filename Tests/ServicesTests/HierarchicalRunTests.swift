import ClusterManager
import Aggregator
import Bus
import Experiments
import Wire
import FederatedRun
import Foundation
import Messages
import Reports
import XCTest

final class HierarchicalRunTests: XCTestCase {
    static func setup(_ name: String, devices: Int = 4, rounds: Int = 4, kappa1: Int = 1, kappa2: Int = 2, extra: String = "") throws -> Kit.Setup {
        let dir = Kit.tempDir(name)
        let model = try Kit.tinyModel(in: dir)
        let data = try Kit.tinyData(in: dir, devices: devices)
        let yaml = """
        name: hier-test
        seed: 5
        model: \(model)
        data: {devices: \(devices), manifest: \(data)}
        lora: {rank: 2, alpha: 4, targets: [c_attn]}
        federation: {paradigm: hierarchical, rounds: \(rounds), local_steps: 8, batch: 2, seq: 32, lr: 0.02, quorum: \(devices), deadline_s: 20, eval_tokens: 512}
        hierarchical: {edges: 2, kappa1: \(kappa1), kappa2: \(kappa2)}
        scenario: {devices: {count: \(devices)}, edges: {count: 2}}
        \(extra)
        """
        let path = dir.appendingPathComponent("experiment.yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return Kit.Setup(dir: dir, model: model, data: data, configPath: path, experiment: try Experiment.load(path: path))
    }

    func testEmbeddedHierarchicalRunAggregatesCloudEveryKappa2EdgeRounds() throws {
        let s = try Self.setup("hier")
        var settings = FederatedRun.Settings(experiment: s.experiment, out: s.dir.appendingPathComponent("out").path)
        settings.heartbeatMs = 200; settings.quiet = true; settings.showProgress = false
        let summary = try FederatedRun.embedded(settings, dataDir: try FederatedRun.prepareData(settings))
        let records = try Kit.records(settings.out)
        let cloud = records.filter { $0.tier == .cloud }
        let edges = records.filter { $0.tier == .edge }
        // 4 local rounds, κ1 = 1, κ2 = 2: the cloud aggregates twice (after the round-0 evaluation).
        XCTAssertEqual(cloud.map(\.round), [0, 1, 2])
        XCTAssertEqual(summary.rounds, 2)
        XCTAssertEqual(summary.devices, 4)
        XCTAssertEqual(cloud.filter { $0.round > 0 }.map(\.participants), [2, 2])
        // Each edge aggregated its 2 devices after every local round.
        for k in 0..<2 {
            let mine = edges.filter { $0.edge == k }
            XCTAssertEqual(mine.map(\.round), [1, 2, 3, 4], "edge \(k)")
            XCTAssertEqual(mine.map(\.participants), [2, 2, 2, 2], "edge \(k)")
            XCTAssertTrue(mine.allSatisfy { $0.bytesUp > 0 && $0.bytesDown > 0 })
        }
        // Cloud-bound bytes: one edge model per edge per cloud round: 2 × 2 × the adapter (+ a small header).
        let adapterBytes = try s.experiment.initialAdapter().flatten().count * 4
        let cloudBound = cloud.reduce(0) { $0 + $1.bytesUp }
        XCTAssertGreaterThanOrEqual(cloudBound, 2 * 2 * adapterBytes)
        XCTAssertLessThanOrEqual(cloudBound, 2 * 2 * (adapterBytes + 512), "cloud got more than one upload per edge per cloud round")
        // Device → edge traffic is every local round: 4 rounds × 4 devices of uploads.
        XCTAssertGreaterThanOrEqual(edges.reduce(0) { $0 + $1.bytesUp }, 4 * 4 * adapterBytes)
        // Validation loss of the global model falls; sim time advances with the cloud steps.
        XCTAssertEqual(Set(cloud[0].valLoss.keys), ["vowels", "digits"])
        XCTAssertLessThan(Kit.meanVal(summary.finalValLoss), Kit.meanVal(cloud[0].valLoss))
        XCTAssertGreaterThan(cloud[2].simTimeSeconds, cloud[1].simTimeSeconds)
        XCTAssertGreaterThan(cloud[1].simTimeSeconds, 0)
    }

    /// lora_aggregation applies at both tiers (LoRAFedAvg at the edges and the cloud; the math is in LoRATests).
    func testExactLoRAHierarchicalRunTrains() throws {
        for mode in ["product_svd", "frozen_a"] {
            let s = try Self.setup("hier-\(mode)", rounds: 2, extra: "lora_aggregation: \(mode)")
            var settings = FederatedRun.Settings(experiment: s.experiment, out: s.dir.appendingPathComponent("out").path)
            settings.heartbeatMs = 200; settings.quiet = true; settings.showProgress = false
            let summary = try FederatedRun.embedded(settings, dataDir: try FederatedRun.prepareData(settings))
            let cloud = try Kit.records(settings.out).filter { $0.tier == .cloud }
            XCTAssertEqual(cloud.map(\.round), [0, 1], mode)
            XCTAssertEqual(cloud.last?.participants, 2, mode)
            XCTAssertLessThan(Kit.meanVal(summary.finalValLoss), Kit.meanVal(cloud[0].valLoss), mode)
        }
    }

    func testSeparateProcessesHierarchicalRunHasBothTiers() throws {
        let bin = try Kit.requireExecutables()
        let s = try Self.setup("hier-proc", devices: 4, rounds: 2)
        var settings = FederatedRun.Settings(experiment: s.experiment, out: s.dir.appendingPathComponent("out").path)
        settings.heartbeatMs = 200; settings.quiet = true; settings.showProgress = false
        let summary = try FederatedRun.processes(settings, configPath: s.configPath, dataDir: s.data, binDir: bin)
        let records = try Kit.records(settings.out)
        XCTAssertEqual(records.filter { $0.tier == .cloud }.map(\.round), [0, 1])
        XCTAssertEqual(Set(records.filter { $0.tier == .edge }.compactMap(\.edge)), [0, 1])
        XCTAssertEqual(records.filter { $0.tier == .edge }.count, 4)
        XCTAssertLessThan(Kit.meanVal(summary.finalValLoss), Kit.meanVal(records[0].valLoss))
    }

    func testEdgeAggregatorWithoutUpstreamIsATypedError() throws {
        let s = try Self.setup("noup")
        var o = AggregatorService.Options(manager: "inproc://none", router: "inproc://edge-noup", pub: "inproc://edge-noup-pub", experiment: s.experiment)
        o.id = "edge-0"; o.tier = .edge
        let initial = try s.experiment.initialAdapter()
        XCTAssertThrowsError(try AggregatorService(o, initial: initial, context: BusContext())) { error in
            XCTAssertEqual(error as? HierarchyError, .edgeNeedsUpstream(id: "edge-0"))
            XCTAssertTrue("\(error)".contains("--upstream"))
        }
    }

    func testManagerAssignsDevicesToTheirEdgeAggregator() throws {
        let s = try Self.setup("assign")
        let plan = HierarchyPlan(s.experiment)
        XCTAssertEqual(plan.cloudRounds, 2)
        XCTAssertEqual(plan.edgeRounds, 4)
        XCTAssertEqual(Set(plan.deviceEdges), [0, 1], "both edges serve devices: \(plan.deviceEdges)")
        var d = Directory(partitions: 4, deviceEdges: plan.deviceEdges)
        // A device that registers before its edge aggregator gets no endpoint (it retries), never the cloud's.
        _ = d.register(Register(role: .cloudAggregator, nodeId: "cloud", endpoint: "tcp://cloud:1"))
        XCTAssertEqual(d.register(Register(role: .device, nodeId: "")).aggregatorEndpoint, "")
        _ = d.register(Register(role: .edgeAggregator, nodeId: "edge-0", endpoint: "tcp://e0:1"))
        _ = d.register(Register(role: .edgeAggregator, nodeId: "edge-1", endpoint: "tcp://e1:1"))
        for i in 0..<4 {
            let a = d.register(Register(role: .device, nodeId: "device-\(i)"))
            XCTAssertEqual(a.aggregator, "edge-\(plan.deviceEdges[i])")
            XCTAssertEqual(a.edge, UInt32(plan.deviceEdges[i]))
        }
    }
}
