import Engine
import Foundation
import XCTest

/// Tiny llama (GQA, untied head, llama3 RoPE scaling), qwen2 (q/k/v bias, tied head, YaRN) and mistral (sliding
/// window, head_dim, linear RoPE scaling) checkpoints saved by Hugging Face transformers, with the float64 logits
/// transformers computed for them (Fixtures/make_llama_fixtures.py): the engine must load them as they are and match.
final class LlamaReferenceTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    struct Expected: Decodable { let tokens: [Int32]; let logits: [Double] }

    static func expected(_ name: String) throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: fixtures.appendingPathComponent(name).appendingPathComponent("expected.json")))
    }

    /// max |engine − reference| / max |reference|
    func relativeError(_ model: LanguageModel, _ e: Expected) throws -> Double {
        let logits = try model.logits(tokens: e.tokens, cache: KVCache(config: model.config, layers: 0..<model.config.layers), startPosition: 0)
        XCTAssertEqual(logits.count, e.logits.count)
        let scale = e.logits.map(abs).max()!
        let err = zip(logits, e.logits).map { abs(Double($0) - $1) }.max()! / scale
        print("reference logits \(model.config.modelType)\(model.loraConfig == nil ? "" : " + PEFT adapter"): max |Δ| / max |ref| = \(err)")
        return err
    }

    func testLogitsMatchTransformersForLlamaQwen2AndMistralWithin1e4Relative() throws {
        for name in ["llama", "qwen2", "mistral"] {
            let model = try LanguageModel.load(directory: Self.fixtures.appendingPathComponent(name))
            XCTAssertEqual(model.config.modelType, name)
            XCTAssertLessThanOrEqual(try relativeError(model, Self.expected(name)), 1e-4, name)
        }
        let qwen = try LanguageModel.loadConfig(Self.fixtures.appendingPathComponent("qwen2"))
        XCTAssertTrue(qwen.qkvBias && qwen.tiedEmbeddings && !qwen.outputBias)
        XCTAssertEqual(try LanguageModel.loadConfig(Self.fixtures.appendingPathComponent("mistral")).slidingWindow, 4)
    }

    func testShardedCheckpointLoadsTheSameWeightsAsTheSingleFile() throws {
        let single = try LanguageModel.load(directory: Self.fixtures.appendingPathComponent("llama"))
        let sharded = try LanguageModel.load(directory: Self.fixtures.appendingPathComponent("llama-sharded"))
        XCTAssertEqual(Array(sharded.parameters), Array(single.parameters))
        // and our own sharded writer round-trips
        let dir = Fixture.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try single.save(directory: dir, shardBytes: 20_000)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("model.safetensors.index.json").path))
        let reloaded = try LanguageModel.load(directory: dir)  // keep the owner alive while reading its buffer
        XCTAssertEqual(Array(reloaded.parameters), Array(single.parameters))
    }

    func testPEFTAdapterOnEveryProjectionMatchesTransformersLogits() throws {
        let model = try LanguageModel.load(directory: Self.fixtures.appendingPathComponent("llama"))
        let adapter = try LoRAAdapter.load(directory: Self.fixtures.appendingPathComponent("llama-peft"), model: model.config)
        XCTAssertEqual(adapter.config.targets, [.q, .k, .v, .o, .gate, .up, .down])
        XCTAssertEqual(adapter.tensors.first?.name, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")
        try model.setAdapter(adapter)
        XCTAssertLessThanOrEqual(try relativeError(model, Self.expected("llama-peft")), 1e-4)
    }

    func testBadIndexAndUnsupportedConfigsAreTypedErrorsNamingTheFileAndField() throws {
        let dir = Fixture.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let src = Self.fixtures.appendingPathComponent("llama-sharded")
        for f in try FileManager.default.contentsOfDirectory(atPath: src.path) {
            try FileManager.default.copyItem(at: src.appendingPathComponent(f), to: dir.appendingPathComponent(f))
        }
        // a shard missing
        let shard = dir.appendingPathComponent("model-00002-of-00004.safetensors")
        try FileManager.default.removeItem(at: shard)
        XCTAssertThrowsError(try LanguageModel.load(directory: dir)) { error in
            guard case .io(let file, _)? = error as? EngineError else { return XCTFail("\(error)") }
            XCTAssertEqual(file, shard.path)
        }
        // an index that is not an object of names
        try Data(#"{"weight_map": ["x"]}"#.utf8).write(to: dir.appendingPathComponent("model.safetensors.index.json"))
        XCTAssertThrowsError(try LanguageModel.load(directory: dir)) { error in
            guard case .badHeader(let file, _)? = error as? EngineError else { return XCTFail("\(error)") }
            XCTAssertTrue(file.hasSuffix("model.safetensors.index.json"))
        }
        // configs the engine cannot run
        let cases: [(String, String)] = [
            (#"{"model_type": "falcon"}"#, "model_type falcon"),
            (#"{"model_type": "llama", "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 4, "max_position_embeddings": 8, "hidden_act": "gelu"}"#, "hidden_act gelu"),
            (#"{"model_type": "llama", "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 4, "max_position_embeddings": 8, "rope_scaling": {"rope_type": "longrope"}}"#, "rope_scaling type longrope"),
            (#"{"model_type": "llama", "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 3, "vocab_size": 4, "max_position_embeddings": 8}"#, "num_key_value_heads 3"),
            (#"{"model_type": "llama", "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 4, "max_position_embeddings": 8}"#, "lacks intermediate_size"),
            (#"{"model_type": "llama", "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 4, "max_position_embeddings": 8, "rope_scaling": {"rope_type": "llama3", "factor": 8}}"#, "needs low_freq_factor"),
        ]
        for (json, fragment) in cases {
            try Data(json.utf8).write(to: dir.appendingPathComponent("config.json"))
            XCTAssertThrowsError(try LanguageModel.loadConfig(dir)) { error in
                guard case .badConfig(let message)? = error as? EngineError else { return XCTFail("\(error)") }
                XCTAssertTrue(message.contains(fragment) && message.contains("config.json"), message)
            }
        }
    }
}
