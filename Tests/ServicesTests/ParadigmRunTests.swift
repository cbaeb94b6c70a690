import ClusterManager
import Aggregator
import Messages
import Experiments
import Wire
import Federation
import FederatedRun
import Foundation
import Reports
import XCTest

/// Clustered, asynchronous, compressed and exact-LoRA runs over the embedded services, on the tiny model and the
/// two-domain synthetic data (devices alternate vowels/digits).
final class ParadigmRunTests: XCTestCase {
    struct Outcome { var summary: RunSummary; var records: [MetricRecord]; var out: String }

    func run(_ name: String, devices: Int, rounds: Int, paradigm: String = "fedavg", steps: Int = 6,
             lora: String = "{rank: 2, alpha: 4, targets: [c_attn]}", extra: String = "") throws -> Outcome {
        let s = try Kit.tiny(name, devices: devices, """
        lora: \(lora)
        federation: {paradigm: \(paradigm), rounds: \(rounds), local_steps: \(steps), batch: 2, seq: 32, lr: 0.02, quorum: \(devices), deadline_s: 30, eval_tokens: 256}
        \(extra)
        """)
        let (dir, data, e) = (s.dir, s.data, s.experiment)
        var settings = FederatedRun.Settings(experiment: e, out: dir.appendingPathComponent("out").path)
        settings.heartbeatMs = 200; settings.quiet = true; settings.showProgress = false
        let summary = try FederatedRun.embedded(settings, dataDir: data)
        let records = try Kit.records(settings.out)
        return Outcome(summary: summary, records: records, out: settings.out)
    }

    func testClusteredRunRecoversTwoDomainsAndDevicesTrainTheirClusterAdapter() throws {
        let r = try run("clustered", devices: 4, rounds: 2, paradigm: "clustered",
                        extra: "clustered: {mode: auto, warmup_rounds: 1, recluster_every: 0}")
        XCTAssertEqual(r.summary.ari, 1, "clusters should match the two domains; notes: \(r.summary.notes)")
        let last = try XCTUnwrap(r.records.last?.clusters)
        XCTAssertEqual(Set(last.values).count, 2)
        // Every upload named the cluster the device is in (one naming another is rejected as wrong_cluster).
        XCTAssertEqual(r.summary.notes["rejected"], "0")
        XCTAssertEqual(r.summary.notes["k"], "2")
        XCTAssertEqual(r.records.map(\.round), [0, 1, 2])
    }

    func testAsyncRunAppliesUpdatesInSimArrivalOrderWhileAStragglerTrains() throws {
        let r = try run("async", devices: 4, rounds: 5, paradigm: "async", steps: 3, extra: """
        async: {mode: fedasync, alpha: 0.6, staleness: {kind: polynomial, a: 0.5}, eval_every: 4}
        scenario: {devices: {count: 4, compute: {flopsPerSecond: 1.0e6, stragglerFraction: 0.25, stragglerSlowdown: 4}}}
        """)
        let lines = try String(contentsOfFile: r.out + "/updates.jsonl", encoding: .utf8).split(separator: "\n")
        let updates = try lines.map { try JSONDecoder().decode(AsyncUpdateRecord.self, from: Data($0.utf8)) }
        XCTAssertEqual(updates.count, 20, "budget = rounds × devices applications")
        let arrivals: [Double] = updates.map { $0.arrival }
        XCTAssertEqual(arrivals, arrivals.sorted(), "applied in sim-arrival order")
        var firstArrival: [String: Double] = [:]
        for u in updates where firstArrival[u.device] == nil { firstArrival[u.device] = u.arrival }
        let straggler = try XCTUnwrap(firstArrival.max { $0.value < $1.value }?.key)
        let before = updates.filter { $0.arrival < firstArrival[straggler]! }
        XCTAssertGreaterThanOrEqual(before.count, 6, "fast devices keep applying while the straggler computes: \(updates)")
        XCTAssertTrue(before.allSatisfy { $0.device != straggler })
        XCTAssertGreaterThan(updates.first { $0.device == straggler }!.staleness, 3, "the straggler's update is stale when applied")
        XCTAssertTrue(updates.allSatisfy { $0.outcome == "applied" })
        XCTAssertEqual(r.records.first?.round, 0)
        XCTAssertLessThan(Kit.meanVal(r.summary.finalValLoss), Kit.meanVal(r.records[0].valLoss))
    }

    func testCompressedUploadsShrinkBytesUp() throws {
        let lora = "{rank: 8, alpha: 16, targets: [c_attn, c_proj]}"
        var bytes: [String: Int] = [:]
        for codec in ["fp32", "fp16", "int8"] {
            let r = try run("codec-\(codec)", devices: 2, rounds: 1, steps: 2, lora: lora, extra: "compression: {codec: \(codec)}")
            bytes[codec] = try XCTUnwrap(r.records.first { $0.round == 1 }).bytesUp
        }
        let half = Double(bytes["fp16"]!) / Double(bytes["fp32"]!), quarter = Double(bytes["int8"]!) / Double(bytes["fp32"]!)
        XCTAssertEqual(half, 0.5, accuracy: 0.06, "fp16/fp32 bytes_up \(bytes)")
        XCTAssertEqual(quarter, 0.25, accuracy: 0.08, "int8/fp32 bytes_up \(bytes)")
    }

    func testProductSVDRunsAndReportsTheNaiveGap() throws {
        let r = try run("svd", devices: 2, rounds: 2, extra: "lora_aggregation: product_svd")
        let gap = try XCTUnwrap(r.summary.notes["naive_product_gap_mean"].flatMap(Double.init))
        XCTAssertGreaterThan(gap, 0, "two different devices: mean(B)·mean(A) differs from mean(BA)")
        XCTAssertLessThan(Kit.meanVal(r.summary.finalValLoss), Kit.meanVal(r.records[0].valLoss))
    }

    /// Exact LoRA applies on arrival too (FedAsync mixes, FedBuff steps the products; the math is in LoRATests).
    func testAsyncRunsWithExactLoRA() throws {
        for (mode, buffer) in [("fedbuff", 2), ("fedasync", 1)] {
            let r = try run("async-svd-\(mode)", devices: 2, rounds: 3, paradigm: "async", steps: 3, extra: """
            lora_aggregation: product_svd
            async: {mode: \(mode), buffer: \(buffer), eval_every: 2}
            """)
            XCTAssertEqual(r.summary.notes["lora_aggregation"], "product_svd")
            XCTAssertEqual(r.summary.notes["applied"], "6", "\(mode): \(r.summary.notes)")
            XCTAssertEqual(r.summary.notes["rejected_async"], "0", "\(mode): \(r.summary.notes)")
            XCTAssertLessThan(Kit.meanVal(r.summary.finalValLoss), Kit.meanVal(r.records[0].valLoss), mode)
        }
    }

    func testProductSVDGlobalIsTheRefactorisedMeanProduct() throws {
        // Two rank-2 adapters on one 6×5 pair whose products have rank 1 (A's second row 0): the weighted mean of the
        // products has rank ≤ 2 = r, so the re-factorised aggregate's B·A equals it.
        let layout = try ParameterLayout([.init(name: "x.lora_A.weight", shape: [2, 5]), .init(name: "x.lora_B.weight", shape: [6, 2])])
        var a1: [Float] = (0..<22).map { i in Float(sin(Double(i))) }
        var a2: [Float] = (0..<22).map { i in Float(cos(Double(i) * 0.7)) }
        for i in 5..<10 { a1[i] = 0; a2[i] = 0 }
        let out = try aggregateLoRA([a1, a2], weights: [0.25, 0.75], layout: layout, mode: .productSVD, global: a1)
        func product(_ v: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: 30)
            for i in 0..<6 { for j in 0..<5 { for k in 0..<2 { out[i * 5 + j] += v[10 + i * 2 + k] * v[k * 5 + j] } } }
            return out
        }
        let p1 = product(a1), p2 = product(a2)
        let want: [Float] = (0..<30).map { i in 0.25 * p1[i] + 0.75 * p2[i] }
        for (g, w) in zip(product(out), want) { XCTAssertEqual(g, w, accuracy: 1e-4) }
    }

    func testMalformedParadigmSectionsNameTheKey() {
        let cases: [(String, String)] = [
            ("clustered: {mode: kmeans}", "clustered.mode"),
            ("clustered: {warmup_rounds: 0}", "clustered.warmup_rounds"),
            ("clustered: {shuffle: 1}", "clustered.shuffle"),
            ("async: {mode: fedfast}", "async.mode"),
            ("async: {alpha: 1.5}", "async.alpha"),
            ("async: {staleness: {kind: linear}}", "async.staleness.kind"),
            ("async: {buffer: 0}", "async.buffer"),
            ("compression: {codec: zip}", "compression.codec"),
            ("compression: {topk_fraction: 2}", "compression.topk_fraction"),
            ("lora_aggregation: svd", "lora_aggregation"),
            ("async: 3", "async"),
        ]
        for (yaml, key) in cases {
            XCTAssertThrowsError(try Experiment.parse(yaml: "scenario: {devices: {count: 2}}\n" + yaml), yaml) { error in
                XCTAssertTrue("\(error)".contains("'\(key)'"), "\(yaml): \(error)")
            }
        }
        XCTAssertNoThrow(try Experiment.load(path: "examples/paper/clustered.yaml"))
        XCTAssertNoThrow(try Experiment.load(path: "examples/paper/async.yaml"))
    }
}

final class ClusterMapUpdateTests: XCTestCase {
    func testAggregatorSetsDeviceClustersAndTheMapVersionMoves() {
        var d = Directory(partitions: 2)
        _ = d.register(Register(role: .cloudAggregator, nodeId: "agg", endpoint: "inproc://a"))
        let a = d.register(Register(role: .device, nodeId: "", domainHint: ""))
        let b = d.register(Register(role: .device, nodeId: "", domainHint: ""))
        let seq = d.mapSeq
        XCTAssertFalse(d.setClusters(by: a.nodeId, [b.nodeId: 3]), "a device cannot move others")
        XCTAssertTrue(d.setClusters(by: "agg", [a.nodeId: 0, b.nodeId: 1]))
        XCTAssertEqual(d.mapSeq, seq + 1)
        XCTAssertEqual(d.map().members.first { $0.nodeId == b.nodeId }?.cluster, 1)
        XCTAssertFalse(d.setClusters(by: "agg", [a.nodeId: 0, b.nodeId: 1]), "no change, no new map")
        XCTAssertEqual(d.mapSeq, seq + 1)
    }
}
