import Engine
import Experiments
import FederatedRun
import Foundation
import Reports
import XCTest

/// Every strategy, server optimizer, FedProx and clustering method is selected from the experiment file and runs
/// through the services (embedded: the same service code `fi run` starts).
final class SelectionRunTests: XCTestCase {
    struct Outcome { var summary: RunSummary; var records: [MetricRecord]; var final: [Float]; var initial: [Float] }

    func run(_ name: String, devices: Int = 4, rounds: Int = 3, paradigm: String = "fedavg", federation: String = "", extra: String = "") throws -> Outcome {
        let s = try Kit.tiny(name, devices: devices, """
        lora: {rank: 2, alpha: 4, targets: [c_attn]}
        federation: {paradigm: \(paradigm), rounds: \(rounds), local_steps: 6, batch: 2, seq: 32, lr: 0.02, quorum: \(devices), deadline_s: 20, eval_tokens: 256\(federation)}
        scenario: {devices: {count: \(devices)}}
        \(extra)
        """)
        var settings = FederatedRun.Settings(experiment: s.experiment, out: s.dir.appendingPathComponent("out").path)
        settings.heartbeatMs = 200; settings.quiet = true; settings.showProgress = false
        let summary = try FederatedRun.embedded(settings, dataDir: s.data)
        let initial = try s.experiment.initialAdapter()
        let dir = URL(fileURLWithPath: RunTopology.checkpointDir(out: settings.out, id: "aggregator")).appendingPathComponent("clusters/cluster-0")
        let final = try LoRAAdapter.load(directory: dir, like: initial).flatten()
        return Outcome(summary: summary, records: try Kit.records(settings.out), final: final, initial: initial.flatten())
    }

    func testEachStrategyIsSelectedAndLowersTheLoss() throws {
        for (name, keys) in [("fedavg", ""), ("median", ""), ("trimmed_mean", ", trim_fraction: 0.25"), ("krum", ", byzantine: 1"),
                             ("multi_krum", ", byzantine: 1"), ("norm_bounded", ", max_norm: 5")] {
            let o = try run("strategy-\(name)", federation: ", strategy: \(name)\(keys)")
            XCTAssertEqual(o.summary.notes["strategy"], name)
            XCTAssertEqual(o.records.last?.participants, 4, name)
            XCTAssertLessThan(Kit.meanVal(o.summary.finalValLoss), Kit.meanVal(o.records[0].valLoss), name)
        }
    }

    func testEachServerOptimizerIsSelectedAndSteps() throws {
        var finals: [String: [Float]] = [:]
        for (name, keys) in [("fedavgm", ", server_lr: 1, server_beta1: 0.5"), ("fedadam", ", server_lr: 0.01"), ("fedyogi", ", server_lr: 0.01")] {
            let o = try run("server-\(name)", federation: ", server_optimizer: \(name)\(keys)")
            XCTAssertEqual(o.summary.notes["server_optimizer"], name)
            XCTAssertLessThan(Kit.meanVal(o.summary.finalValLoss), Kit.meanVal(o.records[0].valLoss), name)
            finals[name] = o.final
        }
        XCTAssertNotEqual(finals["fedadam"], finals["fedyogi"], "Yogi's second moment differs from Adam's")
    }

    /// FedProx's μ travels in the task: a strong proximal term keeps each device's adapter near the global, so the
    /// run moves the global less than plain local training does.
    func testProximalMuRestrainsTheLocalUpdates() throws {
        func distance(_ o: Outcome) -> Double { zip(o.final, o.initial).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }.squareRoot() }
        let plain = try run("prox-0", rounds: 2)
        let prox = try run("prox-50", rounds: 2, federation: ", proximal_mu: 50")
        XCTAssertLessThan(distance(prox), 0.8 * distance(plain), "μ = 50 moved the global \(distance(prox)), μ = 0 \(distance(plain))")
    }

    func testEachClusteringMethodFindsTheTwoDomains() throws {
        for (method, extra) in [("cosine", ""), ("cfl", ""), ("ifca", ", k: 2")] {
            let o = try run("method-\(method)", rounds: 4, paradigm: "clustered", extra: "clustered: {mode: auto, warmup_rounds: 1, method: \(method)\(extra)}")
            XCTAssertEqual(o.summary.notes["k"], "2", "\(method): \(o.summary.notes)")
            XCTAssertEqual(o.summary.ari ?? 0, 1, accuracy: 1e-9, "\(method): \(o.summary.notes)")
            XCTAssertLessThan(Kit.meanVal(o.summary.finalValLoss), Kit.meanVal(o.records[0].valLoss), method)
        }
    }
}
