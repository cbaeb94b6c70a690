import ClusterManager
import Aggregator
import Experiments
import Wire
import FederatedRun
import Foundation
import Reports
import XCTest

/// Hierarchical + clustered over the embedded services: 4 devices (two domains, vowels/digits), 2 edges (the
/// scenario's 3 access points put devices 0, 2, 3 on edge 0 and device 1 on edge 1, so edge 0 serves both
/// clusters), the cloud keeps one adapter per cluster.
final class ClusteredHierarchicalRunTests: XCTestCase {
    struct Outcome { var summary: RunSummary; var records: [MetricRecord]; var out: String; var adapterBytes: Int; var plan: HierarchyPlan }

    /// `flat`: the same experiment as a flat clustered run (device → cloud), for comparison.
    func run(_ name: String, rounds: Int, kappa2: Int, clustered: String, processes: Bool = false, flat: Bool = false,
             extra: String = "") throws -> Outcome {
        let devices = 4
        let s = try Kit.tiny(name, devices: devices, """
        lora: {rank: 2, alpha: 4, targets: [c_attn]}
        federation: {paradigm: \(flat ? "clustered" : "hierarchical"), rounds: \(rounds), local_steps: 6, batch: 2, seq: 32, lr: 0.02, quorum: \(devices), deadline_s: 30, eval_tokens: 256}
        \(flat ? "" : "hierarchical: {edges: 2, kappa1: 1, kappa2: \(kappa2), clustered: true}")
        clustered: \(clustered)
        scenario: {devices: {count: \(devices)}, edges: {count: 3}}
        \(extra)
        """)
        let (dir, model, data, configPath, e) = (s.dir, s.model, s.data, s.configPath, s.experiment)
        XCTAssertEqual(e.isClusteredHierarchical, !flat)
        var settings = FederatedRun.Settings(experiment: e, out: dir.appendingPathComponent("out").path)
        settings.heartbeatMs = 200; settings.quiet = ProcessInfo.processInfo.environment["FI_TEST_VERBOSE"] == nil; settings.showProgress = false
        let summary = processes ? try FederatedRun.processes(settings, configPath: configPath, dataDir: data, binDir: try Kit.requireExecutables())
            : try FederatedRun.embedded(settings, dataDir: data)
        let records = try Kit.records(settings.out)
        let adapterBytes = try e.initialAdapter().flatten().count * 4
        return Outcome(summary: summary, records: records, out: settings.out, adapterBytes: adapterBytes, plan: HierarchyPlan(e))
    }

    /// The two clusters' final adapters (written by the cloud at the end) as raw files.
    func clusterAdapters(_ o: Outcome) throws -> [String: [Data]] {
        let root = URL(fileURLWithPath: o.out).appendingPathComponent("checkpoints/cloud/clusters")
        var out: [String: [Data]] = [:]
        for c in try FileManager.default.contentsOfDirectory(atPath: root.path).sorted() {
            let dir = root.appendingPathComponent(c)
            out[c] = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted().map { try Data(contentsOf: dir.appendingPathComponent($0)) }
        }
        return out
    }

    func testOracleClusteredHierarchyKeepsOneAdapterPerDomainAcrossBothTiers() throws {
        let o = try run("hc-oracle", rounds: 2, kappa2: 1, clustered: "{mode: oracle}")
        let cloud = o.records.filter { $0.tier == .cloud }, edges = o.records.filter { $0.tier == .edge }
        XCTAssertEqual(cloud.map(\.round), [0, 1, 2])
        XCTAssertEqual(o.summary.rounds, 2)
        XCTAssertEqual(o.summary.ari, 1, "notes: \(o.summary.notes)")
        XCTAssertEqual(o.summary.notes["k"], "2")
        XCTAssertEqual(o.summary.notes["sketch_bytes"], "0", "oracle clusters: no sketches cross the backhaul")
        // Cloud records carry the device → cluster map: two clusters of two devices.
        let map = try XCTUnwrap(cloud.last?.clusters)
        XCTAssertEqual(map.count, 4)
        XCTAssertEqual(Set(map.values).count, 2)
        XCTAssertEqual(Dictionary(grouping: map.keys, by: { map[$0]! }).values.map(\.count).sorted(), [2, 2])
        XCTAssertEqual(o.plan.deviceEdges, [0, 1, 0, 0])
        // Each edge aggregated its devices every edge round (κ2 = 1: one per cloud round).
        for k in 0..<2 {
            let mine = edges.filter { $0.edge == k }
            XCTAssertEqual(mine.map(\.round), [1, 2], "edge \(k)")
            XCTAssertTrue(mine.allSatisfy { $0.bytesUp > 0 && $0.bytesDown > 0 && $0.participants == o.plan.devices(ofEdge: k) }, "edge \(k)")
        }
        // Cloud-bound: one upload per (edge, cluster of its devices) per cloud round; edge 0 serves both clusters.
        let pairs = (0..<2).map { k in Set((0..<4).filter { o.plan.deviceEdges[$0] == k }.map { map["device-\($0)"]! }).count }
        XCTAssertEqual(pairs, [2, 1])
        let cloudBound = cloud.reduce(0) { $0 + $1.bytesUp }
        XCTAssertGreaterThanOrEqual(cloudBound, 2 * 3 * o.adapterBytes)
        XCTAssertLessThanOrEqual(cloudBound, 2 * 3 * (o.adapterBytes + 512))
        XCTAssertGreaterThan(edges.reduce(0) { $0 + $1.bytesUp }, 2 * 4 * o.adapterBytes, "device → edge: every device every edge round")
        // Two clusters, two different final adapters; loss falls; sim time advances.
        let adapters = try clusterAdapters(o)
        XCTAssertEqual(adapters.count, 2)
        XCTAssertNotEqual(adapters.values.first, adapters.values.dropFirst().first)
        XCTAssertEqual(Set(cloud[0].valLoss.keys), ["vowels", "digits"])
        XCTAssertLessThan(Kit.meanVal(o.summary.finalValLoss), Kit.meanVal(cloud[0].valLoss))
        XCTAssertGreaterThan(cloud[2].simTimeSeconds, cloud[1].simTimeSeconds)
        print("hc-oracle: ari \(o.summary.ari ?? -1) val \(cloud[0].valLoss) → \(o.summary.finalValLoss); cloud bytes up \(cloudBound) down \(cloud.reduce(0) { $0 + $1.bytesDown }); edge bytes up \(edges.reduce(0) { $0 + $1.bytesUp }) down \(edges.reduce(0) { $0 + $1.bytesDown }); adapter \(o.adapterBytes)")
    }

    func testAutoClusteredHierarchyFindsTheDomainsFromRelayedSketches() throws {
        let o = try run("hc-auto", rounds: 3, kappa2: 1, clustered: "{mode: auto, warmup_rounds: 1, recluster_every: 0, sketch_dim: 16}")
        let cloud = o.records.filter { $0.tier == .cloud }
        XCTAssertEqual(cloud.map(\.round), [0, 1, 2, 3])
        XCTAssertEqual(o.summary.ari, 1, "notes: \(o.summary.notes)")
        XCTAssertEqual(o.summary.notes["k"], "2")
        // Warm-up: everyone in cluster 0 after the round-0 evaluation; split after cloud round 1.
        XCTAssertEqual(Set(try XCTUnwrap(cloud[0].clusters ?? [:]).values).count, 0)
        XCTAssertEqual(Set(try XCTUnwrap(cloud[1].clusters).values).count, 2)
        XCTAssertEqual(cloud[3].clusters, cloud[1].clusters, "ids stay stable")
        // Sketches crossed the backhaul once (cloud round 1), one per device, far smaller than adapters.
        let sketchBytes = try XCTUnwrap(o.summary.notes["sketch_bytes"].flatMap(Int.init))
        XCTAssertGreaterThan(sketchBytes, 4 * 16 * 4)
        XCTAssertLessThan(sketchBytes, 4 * o.adapterBytes)
        XCTAssertEqual(try clusterAdapters(o).count, 2)
        XCTAssertLessThan(Kit.meanVal(o.summary.finalValLoss), Kit.meanVal(cloud[0].valLoss))
        print("hc-auto: ari \(o.summary.ari ?? -1) sketch bytes \(sketchBytes) val \(cloud[0].valLoss) → \(o.summary.finalValLoss); cloud bytes up \(cloud.reduce(0) { $0 + $1.bytesUp }); notes \(o.summary.notes)")
    }

    func testWithKappasOfOneTheTwoTierFedAvgEqualsFlatClusteredFederation() throws {
        // κ1 = κ2 = 1: the edge's per-cluster FedAvg followed by the cloud's sample-weighted FedAvg of the edge
        // deltas is the flat per-cluster FedAvg, and devices train the same steps on the same models.
        let hier = try run("hc-eq", rounds: 2, kappa2: 1, clustered: "{mode: oracle}")
        let flat = try run("hc-eq-flat", rounds: 2, kappa2: 1, clustered: "{mode: oracle}", flat: true)
        let h = hier.records.filter { $0.tier == .cloud }, f = flat.records
        XCTAssertEqual(h.map(\.round), f.map(\.round))
        for (a, b) in zip(h, f) {
            XCTAssertEqual(Set(a.valLoss.keys), Set(b.valLoss.keys))
            for (k, v) in a.valLoss { XCTAssertEqual(v, b.valLoss[k] ?? 0, accuracy: 1e-4, "round \(a.round) \(k)") }
        }
        XCTAssertEqual(hier.summary.ari, flat.summary.ari)
    }

    func testSeparateProcessesClusteredHierarchyOverTCP() throws {
        let o = try run("hc-proc", rounds: 2, kappa2: 1, clustered: "{mode: auto, warmup_rounds: 1, sketch_dim: 16}", processes: true)
        let cloud = o.records.filter { $0.tier == .cloud }
        XCTAssertEqual(cloud.map(\.round), [0, 1, 2])
        XCTAssertEqual(Set(o.records.filter { $0.tier == .edge }.compactMap(\.edge)), [0, 1])
        XCTAssertEqual(o.summary.ari, 1, "notes: \(o.summary.notes)")
        XCTAssertEqual(Set(try XCTUnwrap(cloud.last?.clusters).values).count, 2)
        XCTAssertLessThan(Kit.meanVal(o.summary.finalValLoss), Kit.meanVal(cloud[0].valLoss))
    }

    /// product_svd combines exactly at the edges and in the cloud (math in ClusteredFederationTests).
    func testExactLoRAClusteredHierarchyTrainsAndReportsTheNaiveGap() throws {
        let o = try run("hc-svd", rounds: 2, kappa2: 1, clustered: "{mode: oracle}", extra: "lora_aggregation: product_svd")
        let cloud = o.records.filter { $0.tier == .cloud }
        XCTAssertEqual(cloud.map(\.round), [0, 1, 2])
        XCTAssertEqual(o.summary.ari, 1, "notes: \(o.summary.notes)")
        XCTAssertGreaterThan(try XCTUnwrap(o.summary.notes["naive_product_gap_mean"].flatMap(Double.init)), 0, "\(o.summary.notes)")
        XCTAssertLessThan(Kit.meanVal(o.summary.finalValLoss), Kit.meanVal(cloud[0].valLoss))
    }

    func testMalformedClusteredHierarchyNamesTheKey() {
        let base = "scenario: {devices: {count: 2}}\nfederation: {paradigm: hierarchical}\n"
        let cases: [(String, String)] = [
            ("hierarchical: {clustered: \"yes\"}", "hierarchical.clustered"),
            ("hierarchical: {clustered: 1}", "hierarchical.clustered"),
            ("hierarchical: {clustered: true}\nclustered: {mode: kmeans}", "clustered.mode"),
            ("hierarchical: {clustered: true}\nclustered: {warmup_rounds: 0}", "clustered.warmup_rounds"),
        ]
        for (yaml, key) in cases {
            XCTAssertThrowsError(try Experiment.parse(yaml: base + yaml), yaml) { error in
                XCTAssertTrue(error is ExperimentError, "\(yaml): \(error)")
                XCTAssertTrue("\(error)".contains("'\(key)'"), "\(yaml): \(error)")
            }
        }
        XCTAssertFalse(try Experiment.parse(yaml: base + "hierarchical: {edges: 2}").isClusteredHierarchical)
        let paper = try? Experiment.load(path: "examples/paper/hierarchical-clustered.yaml")
        XCTAssertEqual(paper?.isClusteredHierarchical, true)
        XCTAssertEqual(paper?.clustered.mode, "auto")
    }
}
