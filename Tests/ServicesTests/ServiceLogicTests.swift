import ClusterManager
import EdgeEnvironment
import Aggregator
import Bus
import FederatedRun
import Experiments
import Wire
import Federation
import Messages
import Foundation
import XCTest

final class ServiceLogicTests: XCTestCase {
    func testDirectoryDealsPartitionsInRegistrationOrderAndKeepsThemOnReRegistration() {
        var d = Directory(partitions: 2)
        let a = d.register(Register(role: .device))
        let b = d.register(Register(role: .device))
        let c = d.register(Register(role: .device))
        XCTAssertEqual([a.partition, b.partition, c.partition], [0, 1, 0])
        XCTAssertEqual(a.aggregatorEndpoint, "", "no aggregator registered yet")
        _ = d.register(Register(role: .cloudAggregator, nodeId: "agg", endpoint: "tcp://x:1"))
        let again = d.register(Register(role: .device, nodeId: b.nodeId))
        XCTAssertEqual(again.partition, 1)
        XCTAssertEqual(again.aggregatorEndpoint, "tcp://x:1")
        let seq = d.mapSeq
        XCTAssertTrue(d.markDead([a.nodeId]))
        XCTAssertEqual(d.mapSeq, seq + 1)
        XCTAssertFalse(d.map().members.first { $0.nodeId == a.nodeId }!.alive)
        XCTAssertTrue(d.heartbeat(a.nodeId, load: 0.5, round: 1))
        XCTAssertTrue(d.map().members.first { $0.nodeId == a.nodeId }!.alive)
    }

    func testSimulatedArrivalAddsDownloadComputeAndUpload() throws {
        struct Fixed: EdgeCostModel {
            func downloadSeconds(bytes: Int, device: Int, at time: Double) -> Double { Double(bytes) / 100 }
            func uploadSeconds(bytes: Int, device: Int, at time: Double) -> Double { Double(bytes) / 50 }
            func computeSeconds(flops: Double, device: Int) -> Double { flops / 10 }
        }
        let a = simulatedArrival(device: "d", index: 0, modelBytes: 200, updateBytes: 100, computeS: 3, cost: Fixed(), roundStart: 0)
        XCTAssertEqual(a.seconds, 2 + 3 + 2, accuracy: 1e-12)
        XCTAssertEqual(deviceOrdinal("device-12"), 12)
    }

    func testExperimentErrorsNameTheKey() {
        XCTAssertThrowsError(try Experiment.parse(yaml: "federation: {rounds: many}")) { e in
            XCTAssertEqual(e as? ExperimentError, .wrongType(key: "federation.rounds", expected: "an integer", got: "the string \"many\""))
        }
        XCTAssertThrowsError(try Experiment.parse(yaml: "clustered: {merge: sometimes}")) { e in
            XCTAssertEqual(e as? ExperimentError, .wrongType(key: "clustered.merge", expected: "true or false", got: "the string \"sometimes\""))
        }
        XCTAssertEqual(try Experiment.parse(yaml: "clustered: {merge: true}").clustered.settings.merge, true)
        XCTAssertEqual(try Experiment.parse(yaml: "clustered: {}").clustered.settings.merge, false)
        XCTAssertThrowsError(try Experiment.parse(yaml: "federaton: {}")) { e in
            XCTAssertTrue("\(e)".contains("federaton"))
        }
        XCTAssertThrowsError(try Experiment.parse(yaml: "federation: {fraction: 2}")) { e in
            XCTAssertTrue("\(e)".contains("federation.fraction"))
        }
        XCTAssertThrowsError(try Experiment.parse(yaml: "a: [b")) { e in
            guard case .malformedYAML = e as? ExperimentError else { return XCTFail("\(e)") }
        }
        XCTAssertThrowsError(try Experiment.parse(yaml: "federation: {paradigm: gossip}")) { e in
            XCTAssertTrue("\(e)".contains("federation.paradigm"))
        }
    }
}

final class ExecutableCLITests: XCTestCase {
    func testBadFlagsEnvValuesAndYAMLExitNonZeroNamingTheProblem() throws {
        var (status, err) = try Kit.runExecutable("aggregator", ["--heartbeat-ms", "soon", "--health"])
        XCTAssertNotEqual(status, 0); XCTAssertTrue(err.contains("--heartbeat-ms"), err)
        (status, err) = try Kit.runExecutable("device-worker", ["--health"], env: ["FI_MANAGER": "http://nowhere"])
        XCTAssertNotEqual(status, 0); XCTAssertTrue(err.contains("FI_MANAGER"), err)
        (status, err) = try Kit.runExecutable("cluster-manager", ["--liveness", "0", "--health"])
        XCTAssertNotEqual(status, 0); XCTAssertTrue(err.contains("--liveness"), err)
        let bad = Kit.tempDir("cli").appendingPathComponent("bad.yaml")
        try "federation:\n  rounds: -3\n".write(to: bad, atomically: true, encoding: .utf8)
        (status, err) = try Kit.runExecutable("cluster-manager", ["--config", bad.path, "--health"])
        XCTAssertNotEqual(status, 0); XCTAssertTrue(err.contains("federation.rounds"), err)
        (status, err) = try Kit.runExecutable("device-worker", ["--model", "/nonexistent/model", "--health"])
        XCTAssertNotEqual(status, 0); XCTAssertTrue(err.contains("fi pretrain"), err)
        (status, err) = try Kit.runExecutable("device-worker", ["--echo", "--devices", "0", "--health"])
        XCTAssertNotEqual(status, 0); XCTAssertTrue(err.contains("--devices"), err)
        (status, err) = try Kit.runExecutable("device-worker", ["--echo", "--id", "a", "--health"], env: ["FI_DEVICES": "3"])
        XCTAssertNotEqual(status, 0); XCTAssertTrue(err.contains("--id"), err)
        (status, err) = try Kit.runExecutable("device-worker", ["--echo", "--health"], env: ["FI_DEVICES": "many"])
        XCTAssertNotEqual(status, 0); XCTAssertTrue(err.contains("FI_DEVICES"), err)
    }
}

final class QuickstartFileTests: XCTestCase {
    func testQuickstartExperimentParses() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let cwd = FileManager.default.currentDirectoryPath
        FileManager.default.changeCurrentDirectoryPath(root.path)  // the file names repository-relative paths
        defer { FileManager.default.changeCurrentDirectoryPath(cwd) }
        let e = try Experiment.load(path: "examples/quickstart.yaml")
        XCTAssertEqual(e.model, "models/base")
        XCTAssertEqual(e.data.devices, 4)
        XCTAssertEqual(e.federation.paradigm, "fedavg")
        XCTAssertEqual(e.federation.rounds, 8)
        XCTAssertEqual(e.lora.targets, ["c_attn", "c_proj"])
        XCTAssertEqual(e.scenarioName, "examples/scenarios/default.yaml")
    }
}

final class RegistrationTests: XCTestCase {
    /// A device that registers again before its assignment arrives (its heartbeat came first) keeps one id and one
    /// partition: the connection names it. (Seen under load: one process held two ids, the first declared dead.)
    func testAnonymousReRegistrationOnOneConnectionKeepsTheAssignedId() throws {
        let context = BusContext()
        let manager = try ClusterManagerService(.init(router: "inproc://reg-cm", pub: "inproc://reg-cm-pub", heartbeatMs: 200, liveness: 50,
                                                      partitions: 4), context: context)
        manager.start()
        defer { manager.stop() }
        func dealer() throws -> Socket {
            let s = try Socket(.dealer, context: context)
            try s.connect("inproc://reg-cm")
            return s
        }
        func assignment(_ s: Socket) throws -> Assignment {
            let end = Date().addingTimeInterval(5)
            while Date() < end {
                if let f = try? s.receive(dontWait: true), case .assignment(let a) = try Envelope.decode(frames: f, limits: serviceDecodeLimits).body { return a }
                Thread.sleep(forTimeInterval: 0.01)
            }
            throw CocoaError(.fileReadUnknown)
        }
        let a = try dealer(), b = try dealer()
        defer { a.close(); b.close() }
        for seq in 1...3 { try a.send(Envelope(sender: "", seq: UInt64(seq), body: .register(Register(role: .device)))) }
        let first = try assignment(a), second = try assignment(a), third = try assignment(a)
        XCTAssertEqual(Set([first.nodeId, second.nodeId, third.nodeId]).count, 1)
        XCTAssertEqual(Set([first.partition, second.partition, third.partition]).count, 1)
        try b.send(Envelope(sender: "", seq: 1, body: .register(Register(role: .device))))
        let other = try assignment(b)
        XCTAssertNotEqual(other.nodeId, first.nodeId)
        XCTAssertNotEqual(other.partition, first.partition)
        let map = try XCTUnwrap(try? awaitMap(manager))
        XCTAssertEqual(map.members.filter { $0.role == .device }.count, 2)
    }

    func awaitMap(_ m: ClusterManagerService) throws -> ClusterMap {
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        Task { box.map = try? await m.snapshot(); done.signal() }
        done.wait()
        return try XCTUnwrap(box.map)
    }

    final class Box: @unchecked Sendable { var map: ClusterMap? }
}

final class LogFloodTests: XCTestCase {
    /// 20,000 garbage frames to the manager's and the aggregator's ROUTER (real processes over tcp): each service
    /// logs a bounded handful of lines about them (the rest counted), and still answers.
    func testGarbageFramesPrintABoundedNumberOfLines() throws {
        let dir = Kit.tempDir("flood")
        let config = dir.appendingPathComponent("e.yaml")
        try "name: flood\nfederation: {rounds: 1, quorum: 5}\ndata: {devices: 1}\nscenario: {devices: {count: 1}}\n".write(to: config, atomically: true, encoding: .utf8)
        let ports = try FederatedRun.freePorts(4).map { "tcp://127.0.0.1:\($0)" }
        let logs = [dir.appendingPathComponent("cm.err"), dir.appendingPathComponent("agg.err")]
        let bin = try Kit.requireExecutables()
        // Their stderr in files, to count the lines.
        var procs: [Process] = []
        for (name, args, log) in [("cluster-manager", ["--router", ports[0], "--pub", ports[1], "--config", config.path], logs[0]),
                                  ("aggregator", ["--manager", ports[0], "--router", ports[2], "--pub", ports[3], "--config", config.path,
                                                  "--synthetic-adapter", "16", "--no-eval"], logs[1])] {
            let p = Process()
            p.executableURL = bin.appendingPathComponent(name)
            p.arguments = args
            FileManager.default.createFile(atPath: log.path, contents: nil)
            p.standardError = try FileHandle(forWritingTo: log)
            try p.run()
            procs.append(p)
        }
        defer { for p in procs where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() } }
        let context = BusContext()
        for endpoint in [ports[0], ports[2]] {
            let s = try Socket(.dealer, context: context, linger: 1000)
            try s.connect(endpoint)
            for i in 0..<20_000 { try s.send([[0x0A, 0xFF, UInt8(i & 0xff), 0x13]]) }
            Thread.sleep(forTimeInterval: 2)
            s.close()
        }
        Thread.sleep(forTimeInterval: 1)
        for p in procs { kill(p.processIdentifier, SIGTERM) }
        for p in procs { p.waitUntilExit() }
        for log in logs {
            let lines = (try String(contentsOf: log, encoding: .utf8)).split(separator: "\n")
            let flood = lines.filter { $0.contains("bad_message") || $0.contains("rejected") || $0.contains("undecodable") }
            XCTAssertGreaterThan(flood.count, 0, "\(log.lastPathComponent) logged nothing about the garbage")
            XCTAssertLessThanOrEqual(flood.count, 12, "\(log.lastPathComponent): \(flood.count) lines, e.g. \(flood.prefix(3))")
        }
    }
}
