import Experiments
import Federation
import FederatedRun
import Foundation
import Reports
import XCTest

/// `privacy:` through the real services: DP with ε in every record and the summary, secure aggregation embedded and
/// over processes, and the configuration errors that name their keys.
final class PrivacyRunTests: XCTestCase {
    func setup(_ name: String, devices: Int, rounds: Int, privacy: String, extra: String = "", deadline: Double = 30) throws -> Kit.Setup {
        try Kit.tiny(name, devices: devices, """
        lora: {rank: 2, alpha: 4, targets: [c_attn]}
        federation: {rounds: \(rounds), local_steps: 4, batch: 2, seq: 32, lr: 0.02, quorum: \(devices), deadline_s: \(deadline), eval_tokens: 256}
        privacy: \(privacy)
        \(extra)
        """)
    }

    func settings(_ s: Kit.Setup) -> FederatedRun.Settings {
        var settings = FederatedRun.Settings(experiment: s.experiment, out: s.dir.appendingPathComponent("out").path)
        settings.heartbeatMs = 200; settings.quiet = true; settings.showProgress = false
        return settings
    }

    /// ε as the accountant computes it for `rounds` rounds of every device at σ.
    func expectedEpsilon(sigma: Double, rounds: Int) -> Double {
        var a = RDPAccountant()
        a.compose(q: 1, sigma: sigma, count: rounds)
        return a.epsilon(delta: 1e-5).epsilon
    }

    func testCentralDPRunReportsEpsilonAfterEveryRound() throws {
        let s = try setup("dp-central", devices: 3, rounds: 2, privacy: "{clip: 0.5, noise_multiplier: 1.5, delta: 1e-5}")
        let st = settings(s)
        let summary = try FederatedRun.embedded(st, dataDir: s.data)
        let records = try Kit.records(st.out)
        XCTAssertEqual(records.map(\.round), [0, 1, 2])
        XCTAssertEqual(records.map(\.epsilon), [0, expectedEpsilon(sigma: 1.5, rounds: 1), expectedEpsilon(sigma: 1.5, rounds: 2)])
        XCTAssertEqual(Double(summary.notes["dp_epsilon"] ?? "") ?? 0, expectedEpsilon(sigma: 1.5, rounds: 2), accuracy: 1e-3)
        XCTAssertEqual(summary.notes["dp_mode"], "central")
        XCTAssertTrue(summary.finalValLoss.values.allSatisfy(\.isFinite))
    }

    /// Secure aggregation with distributed DP, embedded: every device's update arrives masked and the run finishes
    /// with ε. Six devices on one host of two trainers: the devices waiting for a trainer still make the keys step.
    func testSecureAggregationWithDistributedNoiseRunsEmbedded() throws {
        let s = try setup("secagg", devices: 6, rounds: 2, privacy: "{clip: 0.5, noise_multiplier: 1, mode: distributed, secure_aggregation: true}")
        let st = settings(s)
        let summary = try FederatedRun.embedded(st, dataDir: s.data)
        let records = try Kit.records(st.out)
        XCTAssertEqual(records.map(\.round), [0, 1, 2])
        XCTAssertEqual(records[1].participants, 6)
        XCTAssertEqual(records[1].dropped, 0)
        XCTAssertEqual(records[2].dropped, 0)
        XCTAssertEqual(records.last?.epsilon ?? 0, expectedEpsilon(sigma: 1, rounds: 2), accuracy: 1e-9)
        XCTAssertEqual(summary.notes["rejected"], "0", "\(summary.notes)")
        XCTAssertTrue(summary.finalValLoss.values.allSatisfy(\.isFinite))
    }

    /// The same over the real executables (cluster manager, aggregator, device workers as processes, with CURVE).
    func testSecureAggregationAndDPRunOverProcessesReportEpsilon() throws {
        let bin = try Kit.requireExecutables()
        let s = try setup("secagg-proc", devices: 3, rounds: 2, privacy: "{clip: 0.5, noise_multiplier: 1, mode: distributed, secure_aggregation: true}")
        let st = settings(s)
        let summary = try FederatedRun.processes(st, configPath: s.configPath, dataDir: s.data, binDir: bin)
        let records = try Kit.records(st.out)
        XCTAssertEqual(records.map(\.round), [0, 1, 2])
        XCTAssertEqual(records[2].participants, 3)
        XCTAssertEqual(records[2].dropped, 0)
        XCTAssertEqual(records.last?.epsilon ?? 0, expectedEpsilon(sigma: 1, rounds: 2), accuracy: 1e-9)
        XCTAssertEqual(summary.notes["dp_mode"], "distributed")
    }

    /// DP in the other paradigms, embedded: per cluster (clustered), at the edges (hierarchical; the cloud reports the
    /// edges' ε), per buffer (FedBuff). Every evaluated record carries ε, and it only grows.
    func testDPRunsInEveryParadigmThroughTheServices() throws {
        let cases: [(String, Int, String, String)] = [
            ("clustered", 4, "{clip: 0.5, noise_multiplier: 1.2}",
             "federation: {paradigm: clustered, rounds: 2, local_steps: 3, batch: 2, seq: 32, lr: 0.02, quorum: 4, deadline_s: 30, eval_tokens: 256}\n" +
             "clustered: {mode: auto, warmup_rounds: 1, recluster_every: 0}"),
            ("hierarchical", 4, "{clip: 0.5, noise_multiplier: 1.2}",
             "federation: {paradigm: hierarchical, rounds: 2, local_steps: 3, batch: 2, seq: 32, lr: 0.02, quorum: 4, deadline_s: 30, eval_tokens: 256}\n" +
             "hierarchical: {edges: 2, kappa1: 1, kappa2: 1}\nscenario: {devices: {count: 4}, edges: {count: 2}}"),
            ("fedbuff", 2, "{clip: 0.5, noise_multiplier: 1.2}",
             "federation: {paradigm: async, rounds: 4, local_steps: 3, batch: 2, seq: 32, lr: 0.02, quorum: 2, deadline_s: 30, eval_tokens: 256}\n" +
             "async: {mode: fedbuff, buffer: 2, eval_every: 2}"),
            ("ifca-secagg", 4, "{clip: 0.5, noise_multiplier: 1, mode: distributed, secure_aggregation: true}",
             "federation: {paradigm: clustered, rounds: 2, local_steps: 3, batch: 2, seq: 32, lr: 0.02, quorum: 4, deadline_s: 30, eval_tokens: 256}\n" +
             "clustered: {mode: auto, method: ifca, k: 2}"),
        ]
        for (name, devices, privacy, federation) in cases {
            let s = try Kit.tiny("dp-\(name)", devices: devices, "lora: {rank: 2, alpha: 4, targets: [c_attn]}\n\(federation)\nprivacy: \(privacy)")
            let st = settings(s)
            let summary = try FederatedRun.embedded(st, dataDir: s.data)
            let records = try Kit.records(st.out).filter { !$0.valLoss.isEmpty && $0.round > 0 && $0.tier != .edge }
            let eps = records.compactMap(\.epsilon)
            XCTAssertFalse(eps.isEmpty, "\(name): no ε in \(records.count) records")
            XCTAssertEqual(eps.count, records.count, "\(name): a record without ε")
            XCTAssertGreaterThan(eps.first ?? 0, 0, name)
            XCTAssertEqual(eps, eps.sorted(), "\(name): ε only grows")
            XCTAssertTrue(summary.finalValLoss.values.allSatisfy(\.isFinite), name)
            XCTAssertEqual(summary.notes["rejected"] ?? "0", "0", "\(name): \(summary.notes)")
        }
    }

    /// A device process that sends its shares in round 1 and then exits (a phone losing power mid-round): the
    /// aggregator unmasks the other three's sum from the shares they reveal, and charges the noise share that died.
    func testADeviceProcessExitingAfterSharingLeavesTheOthersSecureSum() throws {
        let bin = try Kit.requireExecutables()
        let s = try setup("secagg-drop", devices: 4, rounds: 1, privacy: "{clip: 0.5, noise_multiplier: 1, mode: distributed, secure_aggregation: true}",
                          deadline: 4)
        let st = settings(s)
        let run = try ProcessRun(st, configPath: s.configPath, dataDir: s.data, binDir: bin, deviceWorkers: 3)
        defer { run.stop() }
        var extra = ChildProcesses()
        defer { extra.killAll() }
        let dying = try extra.spawn("device-worker", bin, ["--manager", run.managerEndpoint, "--model", s.model, "--data", s.data,
                                                          "--config", s.configPath, "--heartbeat-ms", "\(st.heartbeatMs)", "--quiet",
                                                          "--exit-after-sharing", "1"] + run.keys.clientArguments("device-3"))
        let summary = try run.wait()
        XCTAssertFalse(dying.isRunning, "the fourth device exited after sharing")
        let records = try Kit.records(st.out)
        XCTAssertEqual(records.map(\.round), [0, 1])
        XCTAssertEqual(records[1].participants, 4, "four were sampled")
        XCTAssertEqual(records[1].dropped, 1, "one masked input never came")
        // Three of four noise shares were summed: σ·√(3/4) is what the release had.
        XCTAssertEqual(records[1].epsilon ?? 0, expectedEpsilon(sigma: (0.75).squareRoot(), rounds: 1), accuracy: 1e-9)
        XCTAssertEqual(summary.notes["rejected"] ?? "0", "0", "\(summary.notes)")
        XCTAssertTrue(summary.finalValLoss.values.allSatisfy(\.isFinite))
        // The noised sum moved the model (σ = 1 on three clipped updates of one round may not lower the loss yet).
        XCTAssertNotEqual(Kit.meanVal(summary.finalValLoss), Kit.meanVal(records[0].valLoss), "the survivors' sum was applied")
    }

    /// Clustering under secure aggregation: the aggregator cannot cluster deltas it never sees, so IFCA's seeding
    /// round asks each device for a sketch of its clipped update (clipped again and noised at σ·C), the models start
    /// equal, devices train the sketch's cluster for one round and choose by loss after. Same data, same run: cosine
    /// and IFCA in the clear against IFCA under secure aggregation without and with DP noise; the printed line is the
    /// ARI and loss each costs.
    func testClusteringUnderSecureAggregationReportsItsARIAndLossCost() throws {
        func run(_ name: String, _ clustered: String, privacy: String?) throws -> RunSummary {
            let s = try Kit.tiny("cost-\(name)", devices: 4, """
            lora: {rank: 2, alpha: 4, targets: [c_attn]}
            federation: {paradigm: clustered, rounds: 3, local_steps: 3, batch: 2, seq: 32, lr: 0.02, quorum: 4, deadline_s: 30, eval_tokens: 256}
            clustered: \(clustered)
            \(privacy.map { "privacy: \($0)" } ?? "")
            """)
            return try FederatedRun.embedded(settings(s), dataDir: s.data)
        }
        let cosine = try run("cosine", "{mode: auto, warmup_rounds: 1, recluster_every: 0}", privacy: nil)
        let ifca = try run("ifca", "{mode: auto, method: ifca, k: 2}", privacy: nil)
        let secure = try run("ifca-secagg", "{mode: auto, method: ifca, k: 2}", privacy: "{clip: 100, secure_aggregation: true}")
        let noised = try run("ifca-secagg-dp", "{mode: auto, method: ifca, k: 2}",
                             privacy: "{clip: 0.5, noise_multiplier: 1, mode: distributed, secure_aggregation: true}")
        let line = [("cosine (clear)", cosine), ("ifca (clear)", ifca), ("ifca + secagg", secure), ("ifca + secagg + dp σ=1", noised)].map {
            String(format: "%@: ARI %.3f loss %.4f", $0.0, $0.1.ari ?? .nan, Kit.meanVal($0.1.finalValLoss))
        }.joined(separator: "; ")
        print("clustering under secure aggregation: " + line)
        XCTAssertEqual(cosine.ari ?? 0, 1, accuracy: 1e-9, "two domains, cleanly separated in the clear: \(line)")
        XCTAssertEqual(secure.ari ?? 0, 1, accuracy: 1e-9, "exact sketches separate the domains too: \(line)")
        XCTAssertLessThan(Kit.meanVal(secure.finalValLoss), Kit.meanVal(ifca.finalValLoss) * 1.03, line)
        // The sketch is a release: the seeding round is charged twice.
        var a = RDPAccountant()
        a.compose(q: 1, sigma: 1, count: 4)
        XCTAssertEqual(Double(noised.notes["dp_epsilon"] ?? "") ?? 0, a.epsilon(delta: 1e-5).epsilon, accuracy: 1e-3, line)
    }

    func testPrivacyConfigurationErrorsNameTheirKeys() {
        let base = "scenario: {devices: {count: 4}}\n"
        let cases: [(String, String)] = [
            ("privacy: {noise_multiplier: 1}", "privacy.clip"),
            ("privacy: {clip: 1}", "privacy.noise_multiplier"),
            ("privacy: {clip: -1, noise_multiplier: 1}", "privacy.clip"),
            ("privacy: {clip: 1, noise_multiplier: 1, mode: local}", "privacy.mode"),
            ("privacy: {clip: 1, noise_multiplier: 1, delta: 2}", "privacy.delta"),
            ("privacy: {clip: 1, noise_multiplier: 1, epsilon: 3}", "privacy.epsilon"),
            ("privacy: {clip: 1, noise_multiplier: 1, adaptive_clip: {quantile: 1.5}}", "privacy.adaptive_clip.quantile"),
            ("privacy: {clip: 1, noise_multiplier: 1, adaptive_clip: {count_noise: 0.1}}", "privacy.adaptive_clip.count_noise"),
            ("privacy: {clip: 1, secure_aggregation: {max_group: 300}}", "privacy.secure_aggregation.max_group"),
            ("privacy: {clip: 1, target_epsilon: 0.0001}\nfederation: {rounds: 1000}", "privacy.target_epsilon"),
            ("privacy: 3", "privacy"),
        ]
        for (yaml, key) in cases {
            XCTAssertThrowsError(try Experiment.parse(yaml: base + yaml), yaml) { error in
                XCTAssertTrue("\(error)".contains("'\(key)'"), "\(yaml): \(error)")
            }
        }
        // Combinations the privacy stage cannot run name both keys.
        let conflicts: [(String, [String])] = [
            ("federation: {strategy: krum, byzantine: 1}\nprivacy: {clip: 1, secure_aggregation: true}", ["privacy.secure_aggregation", "federation.strategy"]),
            ("federation: {strategy: median}\nprivacy: {clip: 1, noise_multiplier: 1}", ["privacy", "federation.strategy"]),
            ("lora_aggregation: product_svd\nprivacy: {clip: 1, noise_multiplier: 1}", ["privacy", "lora_aggregation"]),
            ("federation: {paradigm: async}\nprivacy: {clip: 1, noise_multiplier: 1}", ["privacy", "async.mode"]),
            ("compression: {codec: int8}\nprivacy: {clip: 1, secure_aggregation: true}", ["privacy.secure_aggregation", "compression.codec"]),
            ("federation: {paradigm: clustered}\nclustered: {method: cosine}\nprivacy: {clip: 1, secure_aggregation: true}",
             ["privacy.secure_aggregation", "clustered.method"]),
            ("simulation: true\nprivacy: {clip: 1, noise_multiplier: 1, mode: distributed}", ["privacy.mode", "simulation"]),
        ]
        for (yaml, keys) in conflicts {
            XCTAssertThrowsError(try Experiment.parse(yaml: base + yaml), yaml) { error in
                guard case ExperimentError.conflict(let got, _) = error else { return XCTFail("\(yaml): \(error)") }
                XCTAssertEqual(got, keys, yaml)
            }
        }
        // The shipped example parses: σ chosen for its 10 rounds within ε = 8, noise shares on the devices, SecAgg.
        let example = try? Experiment.load(path: "examples/privacy.yaml")
        XCTAssertEqual(example?.privacy?.mode, .distributed)
        XCTAssertNotNil(example?.privacy?.secure)
        XCTAssertGreaterThan(example?.privacy?.noiseMultiplier ?? 0, 0)
        // A target alone chooses σ for the planned rounds: 10 rounds of all 4 devices within ε = 8.
        let e = try? Experiment.parse(yaml: base + "federation: {rounds: 10}\nprivacy: {clip: 1, target_epsilon: 8}")
        let sigma = e?.privacy?.noiseMultiplier ?? 0
        var a = RDPAccountant()
        a.compose(q: 1, sigma: sigma, count: 10)
        XCTAssertLessThanOrEqual(a.epsilon(delta: 1e-5).epsilon, 8)
        XCTAssertGreaterThan(sigma, 1)
    }

    func testPrivacyEpsilonCommandPrintsTheAccountantsEpsilonAndRejectsBadInput() throws {
        let (status, out, _) = try Kit.runExecutableOutput("fi", ["privacy", "epsilon", "--q", "0.1", "--sigma", "1", "--rounds", "100",
                                                                   "--delta", "1e-5", "--json"])
        XCTAssertEqual(status, 0)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        var a = RDPAccountant()
        a.compose(q: 0.1, sigma: 1, count: 100)
        XCTAssertEqual(json["epsilon"] as? Double ?? 0, a.epsilon(delta: 1e-5).epsilon, accuracy: 1e-9)
        for bad in [["--q", "0", "--sigma", "1", "--rounds", "1"], ["--q", "0.1", "--sigma", "-1", "--rounds", "1"],
                    ["--q", "0.1", "--sigma", "1", "--rounds", "0"], ["--q", "0.1", "--sigma", "1", "--rounds", "1", "--delta", "1"],
                    ["--q", "x", "--sigma", "1", "--rounds", "1"]] {
            let (s, _, err) = try Kit.runExecutableOutput("fi", ["privacy", "epsilon"] + bad)
            XCTAssertNotEqual(s, 0, "\(bad)")
            XCTAssertTrue(err.contains("--"), "\(bad): \(err)")
        }
    }
}
