import Aggregator
import Bus
import ClusterManager
import DeviceWorker
import Federation
import FederatedRun
import Foundation
import Reports
import XCTest

/// Round drivers across an aggregator restart: clustered resumes from its checkpoint, async starts over.
final class DriverRestartTests: XCTestCase {
    static func setup(_ name: String, devices: Int, rounds: Int, paradigm: String = "clustered") throws -> Kit.Setup {
        try Kit.tiny(name, devices: devices, """
        lora: {rank: 2, alpha: 4, targets: [c_attn]}
        federation: {paradigm: \(paradigm), rounds: \(rounds), local_steps: 30, batch: 2, seq: 32, lr: 0.02, quorum: \(devices), deadline_s: 20, eval_tokens: 256}
        clustered: {mode: auto, warmup_rounds: 1, recluster_every: 0}
        async: {mode: fedasync, eval_every: 4}
        scenario: {devices: {count: \(devices)}}
        """)
    }

    struct Restart { var options: AggregatorService.Options; var finished: Bool; var records: [MetricRecord] }

    /// Runs the manager, 4 devices and an aggregator (checkpoints, metrics); stops the aggregator once it has written
    /// `records` records, calls `stopped`, starts it again with the same options and waits for the run to finish.
    func restartOnce(_ e: Experiment, dir: URL, records: Int, stopped: (AggregatorService.Options) throws -> Void) async throws -> Restart {
        let context = BusContext()
        let ports = try FederatedRun.freePorts(4)
        let manager = try ClusterManagerService(.init(router: "tcp://127.0.0.1:\(ports[0])", pub: "tcp://127.0.0.1:\(ports[1])",
                                                      heartbeatMs: 200, liveness: 4, partitions: 4), context: context)
        manager.start()
        defer { manager.stop() }
        var o = AggregatorService.Options(manager: manager.routerEndpoint, router: "tcp://127.0.0.1:\(ports[2])", pub: "tcp://127.0.0.1:\(ports[3])",
                                          experiment: e)
        o.heartbeatMs = 200; o.quiet = true
        o.checkpoint = dir.appendingPathComponent("ckpt").path
        o.metrics = dir.appendingPathComponent("out").path
        let initial = try AdapterWire.initialAdapter(modelDir: e.model, lora: e.lora, seed: 5)
        var devices: [DeviceWorkerService] = []
        for _ in 0..<4 {
            var d = DeviceWorkerService.Options(manager: manager.routerEndpoint, model: e.model, data: e.data.manifest ?? "", experiment: e)
            d.heartbeatMs = 200; d.retryMs = 500; d.quiet = true
            devices.append(try DeviceWorkerService(d, context: context))
        }
        defer { devices.forEach { $0.stop() } }
        let first = try AggregatorService(o, initial: initial, context: context)
        first.start(); devices.forEach { $0.start() }
        let reached = try await eventually(60) { try await first.status().records.count >= records }
        XCTAssertTrue(reached)
        first.stop()
        try stopped(o)
        let second = try await reopenAggregator(o, initial: initial, context: context)
        second.start()
        defer { second.stop() }
        let finished = try await eventually(60) { try await second.status().finished }
        return Restart(options: o, finished: finished, records: try await second.status().records)
    }

    func testRestartedClusteredAggregatorResumesItsClusters() async throws {
        let s = try Self.setup("cl-restart", devices: 4, rounds: 5)
        let (dir, e) = (s.dir, s.experiment)
        let metricsFile = dir.appendingPathComponent("out/metrics.jsonl")
        var stopped = 0
        var clustersAtStop: [String: Int] = [:]
        // Stopped after the records of rounds 0, 1, 2: the clusters were found after round 1 (warm-up 1).
        let r = try await restartOnce(e, dir: dir, records: 3) { o in
            let saved = try XCTUnwrap(try CheckpointStore(directory: URL(fileURLWithPath: o.checkpoint!)).load(layers: 2, width: 32))
            stopped = Int(saved.state.round)
            XCTAssertGreaterThanOrEqual(stopped, 2)
            XCTAssertLessThan(stopped, 5, "the run must still be going when stopped")
            XCTAssertNotNil(saved.state.wire)
            let before = try RunDirectory.readJSONLines(metricsFile, as: MetricRecord.self)
            clustersAtStop = try XCTUnwrap(before.first { $0.round == stopped }?.clusters)
            XCTAssertEqual(Set(clustersAtStop.values).count, 2)
        }
        XCTAssertTrue(r.finished, "devices must take the resumed rounds (wire ids above every one used before)")
        XCTAssertEqual(r.records.map(\.round), Array((stopped + 1)...5), "no round runs twice and round 0 is not evaluated again")
        // The restored federation keeps its clusters and round count: clustering ran once, in round 1, before the restart.
        XCTAssertEqual(r.records.first?.clusters, clustersAtStop)
        let summary = try JSONDecoder().decode(RunSummary.self, from: Data(contentsOf: dir.appendingPathComponent("out/summary.json")))
        XCTAssertEqual(summary.rounds, 5)
        XCTAssertEqual(summary.ari, 1)
        XCTAssertEqual(summary.notes["reclusterings"]?.hasPrefix("r1:k=2"), true, "\(summary.notes)")
        let lines = try RunDirectory.readJSONLines(metricsFile, as: MetricRecord.self)
        XCTAssertEqual(lines.map(\.round), Array(0...5), "metrics.jsonl continues where the first process stopped")
    }

    /// An async aggregator does not resume, but a restarted one must still reach the devices, which only take rounds
    /// above the last they trained: its wire ids start above every id of the previous run (`<checkpoint>/incarnation`).
    func testRestartedAsyncAggregatorStartsOverAndDevicesFollowIt() async throws {
        let s = try Self.setup("async-restart", devices: 4, rounds: 3, paradigm: "async")
        let (dir, e) = (s.dir, s.experiment)
        // Stopped after round 0's evaluation and one window of applied updates: the devices trained tasks of this run.
        let r = try await restartOnce(e, dir: dir, records: 2) { _ in }
        XCTAssertTrue(r.finished, "the devices did not take the restarted run's tasks; records: \(r.records.map(\.round))")
        XCTAssertEqual(r.records.first?.round, 0, "it starts over")
        XCTAssertEqual(r.records.last?.round, 3, "3 evaluation windows of 4 applied updates")
        let count = try String(contentsOf: URL(fileURLWithPath: r.options.checkpoint!).appendingPathComponent("incarnation"), encoding: .utf8)
        XCTAssertEqual(count.trimmingCharacters(in: .whitespacesAndNewlines), "2")
    }

    /// A checkpoint without the cluster files (another paradigm's) or with truncated models stops the start with an
    /// error naming the file.
    func testBadClusteredCheckpointIsATypedError() throws {
        let s = try Self.setup("cl-badckpt", devices: 2, rounds: 2)
        let (dir, e) = (s.dir, s.experiment)
        let initial = try AdapterWire.initialAdapter(modelDir: e.model, lora: e.lora, seed: 5)
        let store = CheckpointStore(directory: dir.appendingPathComponent("ckpt"))
        let layoutCount = initial.flatten().count
        let state = CheckpointStore.State(round: 1, version: 3, paradigm: "clustered", wire: 3)
        let snapshot = """
        {"federation": {"devices": ["device-0", "device-1"], "assignment": {"device-0": 0, "device-1": 1}, "versions": {"0": 1, "1": 1},
         "completedRounds": 1, "reclusterings": [], "nextClusterID": 2}, "domains": {}}
        """
        let cases: [(files: [String: Data], names: String)] = [
            ([:], "clusters.json"),
            (["clusters.json": Data(snapshot.utf8), "clusters.f32": Data(count: 4 * layoutCount)], "clusters.f32"),
            (["clusters.json": Data("{\"federation\": 3}".utf8), "clusters.f32": Data(count: 8 * layoutCount)], "clusters.json"),
        ]
        for (i, c) in cases.enumerated() {
            try store.save(state: state, adapter: initial, files: c.files)
            var o = AggregatorService.Options(manager: "inproc://cl-bad-m\(i)", router: "inproc://cl-bad-r\(i)", pub: "inproc://cl-bad-p\(i)", experiment: e)
            o.checkpoint = store.directory.path; o.quiet = true
            XCTAssertThrowsError(try AggregatorService(o, initial: initial, context: BusContext()), "case \(i)") { error in
                XCTAssertTrue(error is ParadigmError, "case \(i): \(error)")
                XCTAssertTrue("\(error)".contains(c.names), "case \(i): \(error)")
            }
        }
        // The same files with whole models restore.
        try store.save(state: state, adapter: initial, files: ["clusters.json": Data(snapshot.utf8), "clusters.f32": Data(count: 8 * layoutCount)])
        var o = AggregatorService.Options(manager: "inproc://cl-ok-m", router: "inproc://cl-ok-r", pub: "inproc://cl-ok-p", experiment: e)
        o.checkpoint = store.directory.path; o.quiet = true
        XCTAssertNoThrow(try AggregatorService(o, initial: initial, context: BusContext()))
    }
}
