import ClusterManager
import Aggregator
import Bus
import Experiments
import Wire
import DeviceWorker
import FederatedRun
import Foundation
import Reports
import XCTest

final class FederatedRunTests: XCTestCase {
    func testEmbeddedRunLowersValidationLoss() throws {
        let s = try Kit.setup("embedded", devices: 3, rounds: 3)
        var settings = FederatedRun.Settings(experiment: s.experiment, out: s.dir.appendingPathComponent("out").path)
        settings.heartbeatMs = 200; settings.quiet = true; settings.showProgress = false
        let summary = try FederatedRun.embedded(settings, dataDir: try FederatedRun.prepareData(settings))
        let records = try Kit.records(settings.out)
        XCTAssertEqual(records.map(\.round), [0, 1, 2, 3])
        XCTAssertEqual(Set(records[0].valLoss.keys), ["vowels", "digits"])
        let before = Kit.meanVal(records[0].valLoss), after = Kit.meanVal(summary.finalValLoss)
        XCTAssertLessThan(after, before, "validation loss should fall: \(before) -> \(after)")
        XCTAssertEqual(summary.rounds, 3)
        XCTAssertEqual(records[1].participants, 3)
        XCTAssertEqual(records[1].dropped, 0)
        XCTAssertGreaterThan(records[1].bytesUp, 0)
        XCTAssertGreaterThan(records[1].bytesDown, 0)
        XCTAssertGreaterThan(records[3].simTimeSeconds, records[1].simTimeSeconds)
    }

    func testSeparateProcessesRunLowersValidationLoss() throws {
        let bin = try Kit.requireExecutables()
        // quorum 2: a round waits for both devices (with quorum 1 a heartbeat missed on a busy host could open one with a single device).
        let s = try Kit.setup("processes", devices: 2, rounds: 2, quorum: 2)
        var settings = FederatedRun.Settings(experiment: s.experiment, out: s.dir.appendingPathComponent("out").path)
        settings.heartbeatMs = 200; settings.quiet = true; settings.showProgress = false
        let summary = try FederatedRun.processes(settings, configPath: s.configPath, dataDir: s.data, binDir: bin)
        let records = try Kit.records(settings.out)
        XCTAssertEqual(records.map(\.round), [0, 1, 2])
        XCTAssertLessThan(Kit.meanVal(summary.finalValLoss), Kit.meanVal(records[0].valLoss))
        XCTAssertEqual(records[2].participants, 2)
    }

    func testKilledWorkerRoundClosesAtDeadlineAndRunFinishes() async throws {
        let bin = try Kit.requireExecutables()
        let s = try Kit.setup("kill", devices: 3, rounds: 2, quorum: 1, deadline: 3, steps: 30)
        let context = BusContext()
        let ports = try FederatedRun.freePorts(4)
        let manager = try ClusterManagerService(.init(router: "tcp://127.0.0.1:\(ports[0])", pub: "tcp://127.0.0.1:\(ports[1])",
                                                      heartbeatMs: 200, liveness: 4, partitions: 3), context: context)
        var o = AggregatorService.Options(manager: manager.routerEndpoint, router: "tcp://127.0.0.1:\(ports[2])", pub: "tcp://127.0.0.1:\(ports[3])",
                                          experiment: s.experiment)
        o.heartbeatMs = 200; o.quiet = true; o.evaluate = false
        let aggregator = try AggregatorService(o, initial: try s.experiment.initialAdapter(), context: context)
        manager.start(); aggregator.start()
        defer { aggregator.stop(); manager.stop() }
        var children = ChildProcesses()
        defer { children.killAll() }
        var pids: [String: Int32] = [:]
        for i in 0..<3 {
            let p = try children.spawn("device-worker", bin, ["--manager", manager.routerEndpoint, "--config", s.configPath, "--data", s.data,
                                                              "--id", "device-\(i)", "--heartbeat-ms", "200", "--quiet"])
            pids["device-\(i)"] = p.processIdentifier
        }
        // Kill a participant while round 1 waits for it.
        var victim: String?
        let sawRound = try await eventually(30) {
            let st = try await aggregator.status()
            if st.openRound == 1, let d = st.waitingFor.first { victim = d; return true }
            return false
        }
        XCTAssertTrue(sawRound, "round 1 never opened")
        let name = try XCTUnwrap(victim)
        kill(try XCTUnwrap(pids[name]), SIGKILL)
        let killedAt = Date()
        let closed = try await eventually(20) { try await aggregator.status().completedRound >= 1 }
        XCTAssertTrue(closed)
        XCTAssertGreaterThan(Date().timeIntervalSince(killedAt), 2.0, "round 1 waits for the dead worker until its 3 s deadline, not longer")
        let finished = try await eventually(40) { try await aggregator.status().finished }
        XCTAssertTrue(finished, "the run did not finish after a worker died")
        let st = try await aggregator.status()
        XCTAssertEqual(st.completedRound, 2)
        let round1 = try XCTUnwrap(st.records.first { $0.round == 1 })
        XCTAssertGreaterThanOrEqual(round1.dropped, 1, "the killed worker must be dropped and counted")
        let round2 = try XCTUnwrap(st.records.first { $0.round == 2 })
        XCTAssertEqual(round2.dropped, 0, "a dead worker is not sampled again")
    }

    func testRestartedAggregatorResumesFromCheckpoint() async throws {
        let s = try Kit.setup("restart", devices: 2, rounds: 6, steps: 80)
        let context = BusContext()
        let ports = try FederatedRun.freePorts(4)
        let manager = try ClusterManagerService(.init(router: "tcp://127.0.0.1:\(ports[0])", pub: "tcp://127.0.0.1:\(ports[1])",
                                                      heartbeatMs: 200, liveness: 4, partitions: 2), context: context)
        manager.start()
        defer { manager.stop() }
        var o = AggregatorService.Options(manager: manager.routerEndpoint, router: "tcp://127.0.0.1:\(ports[2])", pub: "tcp://127.0.0.1:\(ports[3])",
                                          experiment: s.experiment)
        o.heartbeatMs = 200; o.quiet = true; o.evaluate = false
        o.checkpoint = s.dir.appendingPathComponent("ckpt").path
        let initial = try s.experiment.initialAdapter()
        var devices: [DeviceWorkerService] = []
        for _ in 0..<2 {
            var d = DeviceWorkerService.Options(manager: manager.routerEndpoint, model: s.model, data: s.data, experiment: s.experiment)
            d.heartbeatMs = 200; d.retryMs = 500; d.quiet = true
            devices.append(try DeviceWorkerService(d, context: context))
        }
        defer { devices.forEach { $0.stop() } }
        let first = try AggregatorService(o, initial: initial, context: context)
        first.start(); devices.forEach { $0.start() }
        let reached = try await eventually(30) { try await first.status().completedRound >= 2 }
        XCTAssertTrue(reached)
        let stopped = try await first.status().completedRound
        first.stop()
        XCTAssertGreaterThanOrEqual(stopped, 2)
        XCTAssertLessThan(stopped, 6)

        // The old sockets release the port within their linger time.
        let second = try await reopenAggregator(o, initial: initial, context: context)
        let resumed = try await {
            second.start()
            return try await second.status()
        }()
        XCTAssertEqual(resumed.completedRound, stopped, "the restarted aggregator starts from its checkpoint")
        XCTAssertEqual(resumed.version, UInt64(stopped), "one version per aggregated round")
        XCTAssertNotEqual(resumed.global, initial.flatten())
        let finished = try await eventually(40) { try await second.status().finished }
        XCTAssertTrue(finished)
        let st = try await second.status()
        second.stop()
        XCTAssertEqual(st.completedRound, 6)
        XCTAssertEqual(st.records.first?.round, stopped + 1, "no round is run twice")
    }
}
