import Bus
import Experiments
import FederatedRun
import Foundation
import Messages
import Reports
import XCTest

final class PoisoningRunTests: XCTestCase {
    func body(_ strategy: String, devices: Int) -> String {
        """
        lora: {rank: 2, alpha: 4, targets: [c_attn]}
        federation: {rounds: 4, local_steps: 8, batch: 2, seq: 32, lr: 0.02, quorum: \(devices), deadline_s: 60, eval_tokens: 256, strategy: \(strategy), max_norm: 2, byzantine: 1}
        scenario: {devices: {count: 4}}
        """
    }

    /// Robust strategies keep the attack out: the final mean validation loss stays within 2% of the same strategy's run
    /// without the attacker; FedAvg (capped at half the weight) is driven far off.
    func testInflatedSignFlippedUploadsAgainstEachRobustStrategy() throws {
        var rows: [String] = []
        for strategy in ["krum", "multi_krum", "trimmed_mean", "median", "norm_bounded", "fedavg"] {
            // Without the attacker: three honest devices, embedded (the same service code).
            let clean = try Kit.tiny("poison-clean-\(strategy)", devices: 3, body(strategy, devices: 3))
            var cs = FederatedRun.Settings(experiment: clean.experiment, out: clean.dir.appendingPathComponent("out").path)
            cs.heartbeatMs = 200; cs.quiet = true; cs.showProgress = false
            let cleanLoss = Kit.meanVal(try FederatedRun.embedded(cs, dataDir: clean.data).finalValLoss)

            // With it: the same three honest workers as processes plus the attacker; rounds wait for all four.
            let s = try Kit.tiny("poison-\(strategy)", devices: 3, body(strategy, devices: 4))
            var settings = FederatedRun.Settings(experiment: s.experiment, out: s.dir.appendingPathComponent("out").path)
            settings.heartbeatMs = 200; settings.quiet = true; settings.showProgress = false
            let run = try ProcessRun(settings, configPath: s.configPath, dataDir: s.data, binDir: try Kit.requireExecutables(), deviceWorkers: 3,
                                     extraClients: ["byzantine"])
            defer { run.stop() }
            let attacker = try ByzantineParticipant(managerEndpoint: run.managerEndpoint, keys: run.keys, key: "byzantine")
            attacker.start()
            defer { attacker.stop = true }
            let summary = try run.wait()
            let attackedLoss = Kit.meanVal(summary.finalValLoss)
            XCTAssertEqual(attacker.uploads, 4, "\(strategy): the attacker answered every round")
            rows.append(String(format: "%@: clean %.4f attacked %.4f (%.3fx)", strategy, cleanLoss, attackedLoss, attackedLoss / cleanLoss))
            if strategy == "fedavg" {
                XCTAssertGreaterThan(attackedLoss, 1.04 * cleanLoss, "FedAvg is not robust: \(rows.last!)")
            } else {
                XCTAssertLessThanOrEqual(abs(attackedLoss / cleanLoss - 1), 0.02, rows.last!)
            }
        }
        print("poisoning: " + rows.joined(separator: "; "))
    }
}
