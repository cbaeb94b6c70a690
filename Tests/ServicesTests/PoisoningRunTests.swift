import Bus
import Experiments
import FederatedRun
import Foundation
import Messages
import Reports
import XCTest

/// A participant that answers every round with the global adapter negated and scaled by 20, claiming 1,000,000
/// samples: a compromised device with a valid key, beside three honest device-worker processes over tcp (CURVE).
final class ByzantineDevice: @unchecked Sendable {  // safe: only its own thread touches its sockets
    let context = BusContext()
    let manager: Socket
    var aggregator: Socket?
    var id = ""
    var stop = false
    var uploads = 0
    var thread: Thread?

    init(managerEndpoint: String, keys: CurveDeployment, key: String) throws {
        try context.secure(try keys.security(as: key))
        manager = try Socket(.dealer, context: context, linger: 0)
        try manager.connect(managerEndpoint)
    }

    func start() {
        let t = Thread { [self] in run() }
        thread = t
        t.start()
    }

    func run() {
        var seq: UInt64 = 0
        func send(_ s: Socket?, _ body: Body) {
            seq += 1
            try? s?.send(Envelope(sender: id, seq: seq, body: body), dontWait: true)
        }
        var lastBeat = Date.distantPast
        var announcement: RoundAnnouncement?
        var answered: Set<UInt64> = []
        while !stop {
            if Date().timeIntervalSince(lastBeat) > 0.2 {
                lastBeat = Date()
                send(manager, id.isEmpty ? .register(Register(role: .device)) : .heartbeat(Heartbeat()))
            }
            if let f = try? manager.receive(dontWait: true), let env = try? Envelope.decode(frames: f, limits: serviceDecodeLimits),
               case .assignment(let a) = env.body, aggregator == nil, !a.aggregatorEndpoint.isEmpty {
                id = a.nodeId
                let s = try? Socket(.dealer, context: context, linger: 0)
                try? s?.set(.routingId(Array(id.utf8)))
                try? s?.connect(a.aggregatorEndpoint)
                aggregator = s
                send(s, .modelRequest(ModelRequest()))
            }
            while let f = try? aggregator?.receive(dontWait: true), let env = try? Envelope.decode(frames: f, limits: serviceDecodeLimits) {
                switch env.body {
                case .round(let r): announcement = r
                case .model(let m):
                    guard let r = announcement, m.modelVersion == r.modelVersion, !answered.contains(r.round) else { continue }
                    answered.insert(r.round)
                    let poisoned = m.tensors.map { t in Messages.Tensor(name: t.name, shape: t.shape, floats: ((try? t.floats()) ?? []).map { -20 * $0 }) }
                    send(aggregator, .update(UpdateUpload(round: r.round, cluster: r.cluster, baseVersion: r.modelVersion, samples: 1_000_000,
                                                          trainLoss: 0.01, delta: poisoned)))
                    uploads += 1
                case .evalRequest(let e):
                    // Answers evaluations (no loss to report), so rounds do not wait for it.
                    send(aggregator, .evalResult(EvalResult(round: e.round, domain: "", valLoss: .nan, tokens: 0)))
                default: break
                }
            }
            Thread.sleep(forTimeInterval: 0.005)
        }
        aggregator?.close(); manager.close()
    }
}

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
            let attacker = try ByzantineDevice(managerEndpoint: run.managerEndpoint, keys: run.keys, key: "byzantine")
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
