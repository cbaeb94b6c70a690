import Engine
import Experiments
import FederatedRun
import Federation
import Foundation
import Reports
import XCTest

/// kill -9 of an aggregator in the middle of a round, over real processes (tcp, CURVE): the restarted process resumes
/// from its snapshot and journal, the run finishes, and its final model equals the uninterrupted run's.
final class KillRestartTests: XCTestCase {
    static let lora = "lora: {rank: 2, alpha: 4, targets: [c_attn]}"

    func body(_ paradigm: String, rounds: Int, devices: Int, extra: String = "") -> String {
        """
        \(Self.lora)
        federation: {paradigm: \(paradigm), rounds: \(rounds), local_steps: 4, batch: 2, seq: 32, lr: 0.02, quorum: \(devices), deadline_s: 60, eval_tokens: 128}
        scenario: {devices: {count: \(devices)}, edges: {count: 3}}
        \(extra)
        """
    }

    /// Final adapters (cluster → flat parameters) the final aggregator wrote.
    func finalModels(_ out: String, id: String, like template: LoRAAdapter) throws -> [String: [Float]] {
        let root = URL(fileURLWithPath: RunTopology.checkpointDir(out: out, id: id)).appendingPathComponent("clusters")
        var models: [String: [Float]] = [:]
        for c in try FileManager.default.contentsOfDirectory(atPath: root.path) where c.hasPrefix("cluster-") {
            models[c] = try LoRAAdapter.load(directory: root.appendingPathComponent(c), like: template).flatten()
        }
        return models
    }

    /// Has `id` journalled an accepted upload of an open round since its last checkpoint (it is mid-round)?
    func midRound(_ out: String, id: String) -> Bool {
        let dir = RunTopology.checkpointDir(out: out, id: id)
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir))?.filter { $0.hasSuffix(".journal") } ?? []
        return files.contains { f in
            guard let data = FileManager.default.contents(atPath: dir + "/" + f) else { return false }
            return JournalEntry.decodeJournal([UInt8](data)).entries.contains { if case .upload = $0.kind { return true }; return false }
        }
    }

    func cloudRecords(_ out: String) -> Int {
        ((try? Kit.records(out)) ?? []).filter { $0.tier == .cloud }.count
    }

    /// Runs the experiment as processes; with `kill`, SIGKILLs that aggregator once it is mid-round after `afterRecords`
    /// cloud records, and starts it again.
    func run(_ s: Kit.Setup, name: String, kill: String? = nil, afterRecords: Int = 2) throws -> (summary: RunSummary, models: [String: [Float]], killed: Bool) {
        var settings = FederatedRun.Settings(experiment: s.experiment, out: s.dir.appendingPathComponent(name).path)
        settings.heartbeatMs = 200; settings.quiet = ProcessInfo.processInfo.environment["FI_TEST_VERBOSE"] == nil; settings.showProgress = false
        let run = try ProcessRun(settings, configPath: s.configPath, dataDir: s.data, binDir: try Kit.requireExecutables())
        defer { run.stop() }
        var killed = false
        if let victim = kill {
            let end = Date().addingTimeInterval(90)
            while Date() < end && !(cloudRecords(settings.out) >= afterRecords && midRound(settings.out, id: victim)) {
                Thread.sleep(forTimeInterval: 0.005)
            }
            XCTAssertTrue(midRound(settings.out, id: victim), "\(victim) never journalled an upload after \(afterRecords) records")
            run.kill(victim)
            killed = true
            try run.restart(victim)
        }
        let summary = try run.wait()
        return (summary, try finalModels(settings.out, id: run.topology.final, like: try s.experiment.initialAdapter()), killed)
    }

    func assertSameModels(_ a: [String: [Float]], _ b: [String: [Float]], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(Set(a.keys), Set(b.keys), what, file: file, line: line)
        XCTAssertFalse(a.isEmpty, what, file: file, line: line)
        for (k, x) in a {
            guard let y = b[k], x.count == y.count else { XCTFail("\(what): \(k) missing", file: file, line: line); continue }
            let worst = zip(x, y).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1e-5, "\(what): \(k) differs by \(worst)", file: file, line: line)
        }
    }

    func check(_ name: String, devices: Int, _ body: String, kills: [String], afterRecords: Int = 2) throws {
        let s = try Kit.tiny(name, devices: devices, body)
        let reference = try run(s, name: "uninterrupted")
        for victim in kills {
            let r = try run(s, name: "killed-\(victim)", kill: victim, afterRecords: afterRecords)
            XCTAssertTrue(r.killed)
            XCTAssertEqual(r.summary.rounds, reference.summary.rounds, "\(name): \(victim)")
            assertSameModels(r.models, reference.models, "\(name): kill -9 of \(victim)")
        }
    }

    func testFedAvgAggregatorKilledMidRound() throws {
        try check("kill-fedavg", devices: 3, body("fedavg", rounds: 4, devices: 3), kills: ["aggregator"])
    }

    func testClusteredAggregatorKilledMidRound() throws {
        try check("kill-clustered", devices: 4, body("clustered", rounds: 4, devices: 4, extra: "clustered: {mode: auto, warmup_rounds: 1}"),
                  kills: ["aggregator"], afterRecords: 3)
    }

    func testAsyncAggregatorKilledMidRun() throws {
        try check("kill-async", devices: 3, body("async", rounds: 4, devices: 3, extra: "async: {mode: fedasync, eval_every: 3}"), kills: ["aggregator"])
    }

    func testHierarchicalEdgeAndCloudKilledMidRound() throws {
        try check("kill-hier", devices: 4, body("hierarchical", rounds: 6, devices: 4, extra: "hierarchical: {edges: 2, kappa1: 1, kappa2: 2}"),
                  kills: ["edge-0", "cloud"])
    }

    func testClusteredHierarchyCloudKilledMidRound() throws {
        try check("kill-hier-cl", devices: 4, body("hierarchical", rounds: 4, devices: 4, extra: """
        hierarchical: {edges: 2, kappa1: 1, kappa2: 1, clustered: true}
        clustered: {mode: auto, warmup_rounds: 1, sketch_dim: 16}
        """), kills: ["cloud", "edge-1"])
    }
}
