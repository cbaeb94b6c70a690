import ClusterManager
import Experiments
import Engine
import FederatedRun
import Foundation
import Reports
import XCTest

/// Every federation paradigm on a tiny Llama-family base (GQA, RMSNorm, RoPE, SwiGLU) with LoRA on every projection
/// (PEFT names), through the same embedded services `fi run` starts: the adapter wire carries Llama adapters as it
/// carries GPT-2 ones.
final class LlamaRunTests: XCTestCase {
    static let tinyLlama = ModelConfig.llama(modelType: "qwen2", vocabSize: 256, contextLength: 32, layers: 2, heads: 4,
                                             kvHeads: 2, width: 32, mlpWidth: 64, tiedEmbeddings: true)
    static let allProjections = "{rank: 2, alpha: 4, targets: [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]}"

    func run(_ name: String, devices: Int = 4, rounds: Int, body: String) throws -> (RunSummary, [MetricRecord], String) {
        let dir = Kit.tempDir("llama-\(name)")
        let model = dir.appendingPathComponent("model")
        try LanguageModel(config: Self.tinyLlama, seed: 7).save(directory: model)
        let data = try Kit.tinyData(in: dir, devices: devices)
        let yaml = "name: llama-\(name)\nseed: 5\nmodel: \(model.path)\ndata: {devices: \(devices), manifest: \(data)}\n"
            + "lora: \(Self.allProjections)\nscenario: {devices: {count: \(devices)}, edges: {count: 2}}\n" + body
        let path = dir.appendingPathComponent("experiment.yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        var settings = FederatedRun.Settings(experiment: try Experiment.load(path: path), out: dir.appendingPathComponent("out").path)
        settings.heartbeatMs = 200; settings.quiet = true; settings.showProgress = false
        let summary = try FederatedRun.embedded(settings, dataDir: data)
        return (summary, try Kit.records(settings.out), settings.out)
    }

    func testFedAvgOnATinyLlamaLowersValidationLossAndWritesAPEFTAdapter() throws {
        let (summary, records, out) = try run("fedavg", rounds: 3, body: """
        federation: {rounds: 3, local_steps: 8, batch: 2, seq: 32, lr: 0.02, quorum: 4, deadline_s: 30, eval_tokens: 256}
        """)
        XCTAssertEqual(records.map(\.round), [0, 1, 2, 3])
        XCTAssertLessThan(Kit.meanVal(summary.finalValLoss), Kit.meanVal(records[0].valLoss))
        // the aggregator's checkpoint is a PEFT folder of the Llama adapter
        let adapter = try LoRAAdapter.load(directory: URL(fileURLWithPath: out + "/checkpoints/aggregator/clusters/cluster-0"), model: Self.tinyLlama)
        XCTAssertEqual(adapter.config.targets, [.q, .k, .v, .o, .gate, .up, .down])
        XCTAssertTrue(adapter.tensors.contains { $0.name == "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight" })
    }

    func testClusteredAsyncAndHierarchicalParadigmsRunOnATinyLlama() throws {
        let clustered = try run("clustered", rounds: 2, body: """
        federation: {paradigm: clustered, rounds: 2, local_steps: 6, batch: 2, seq: 32, lr: 0.02, quorum: 4, deadline_s: 30, eval_tokens: 256}
        clustered: {mode: auto, warmup_rounds: 1, recluster_every: 0}
        """)
        XCTAssertEqual(clustered.0.ari, 1, "clusters should match the two domains: \(clustered.0.notes)")
        let async = try run("async", rounds: 3, body: """
        federation: {paradigm: async, rounds: 3, local_steps: 3, batch: 2, seq: 32, lr: 0.02, quorum: 4, deadline_s: 30, eval_tokens: 256}
        async: {mode: fedbuff, buffer: 2, staleness: {kind: constant}, eval_every: 4}
        """)
        XCTAssertLessThan(Kit.meanVal(async.0.finalValLoss), Kit.meanVal(async.1[0].valLoss))
        let hier = try run("hier", rounds: 2, body: """
        federation: {paradigm: hierarchical, rounds: 2, local_steps: 6, batch: 2, seq: 32, lr: 0.02, quorum: 4, deadline_s: 30, eval_tokens: 256}
        hierarchical: {edges: 2, kappa1: 1, kappa2: 2}
        """)
        XCTAssertEqual(hier.1.filter { $0.tier == .cloud }.map(\.round), [0, 1])
        XCTAssertLessThan(Kit.meanVal(hier.0.finalValLoss), Kit.meanVal(hier.1[0].valLoss))
    }
}
