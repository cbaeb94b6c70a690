import Engine
import Foundation
import XCTest

final class CheckpointTests: XCTestCase {
    func testModelSaveLoadRoundTripsEveryParameterAndTheConfig() throws {
        let m = try Fixture.model()
        let dir = Fixture.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try m.save(directory: dir)
        let loaded = try LanguageModel.load(directory: dir)
        XCTAssertEqual(loaded.config, m.config)
        XCTAssertEqual(Array(loaded.parameters), Array(m.parameters))
        // HF Conv1D layout on disk: c_attn weight is [in, out]
        let tensors = try SafeTensors.read(dir.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(tensors["h.0.attn.c_attn.weight"]?.shape, [8, 24])
        XCTAssertEqual(tensors["h.1.mlp.c_proj.weight"]?.shape, [32, 8])
    }

    func testLoaderAcceptsTransformerPrefixAndF16() throws {
        let m = try Fixture.model()
        let dir = Fixture.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try m.save(directory: dir)
        let url = dir.appendingPathComponent("model.safetensors")
        let tensors = try SafeTensors.read(url)
        try SafeTensors.write(tensors.values.map { NamedTensor(name: "transformer." + $0.name, shape: $0.shape, values: $0.values) }, to: url)
        let reloaded = try LanguageModel.load(directory: dir)  // keep the owner alive while reading its buffer
        XCTAssertEqual(Array(reloaded.parameters), Array(m.parameters))
        // an F16 tensor written by hand decodes to the same values
        let half: [Float16] = [1, -2.5, 0.125]
        var header = Data(#"{"x":{"dtype":"F16","shape":[3],"data_offsets":[0,6]}}"#.utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        var file = Data()
        var n = UInt64(header.count).littleEndian
        withUnsafeBytes(of: &n) { file.append(contentsOf: $0) }
        file.append(header)
        half.withUnsafeBufferPointer { file.append(contentsOf: UnsafeRawBufferPointer($0)) }
        XCTAssertEqual(try SafeTensors.decode(file, file: "f16")["x"]?.values, [1, -2.5, 0.125])
    }

    func testAdapterPEFTRoundTripAndFlatVector() throws {
        let m = try Fixture.model()
        try m.attachLoRA(LoRAConfig(rank: 2, alpha: 8, targets: [.attnQKV, .attnProj, .mlpFC]), seed: 3)
        let a = m.adapterParameters!
        for i in 0..<a.count { a[i] = Float(i) * 1e-3 }
        let adapter = try m.adapter()
        XCTAssertEqual(adapter.tensors.first?.name, "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight")
        XCTAssertEqual(adapter.tensors.first?.shape, [2, 8])
        XCTAssertEqual(adapter.tensors[1].shape, [24, 2])
        XCTAssertEqual(adapter.flatten(), Array(a))
        let dir = Fixture.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try adapter.save(directory: dir, baseModel: "tiny")
        let loaded = try LoRAAdapter.load(directory: dir, model: Fixture.micro)
        XCTAssertEqual(loaded, adapter)
        var copy = loaded
        try copy.load(flat: loaded.flatten().map { $0 * 2 })
        XCTAssertEqual(copy.tensors[3].values, loaded.tensors[3].values.map { $0 * 2 })
        XCTAssertThrowsError(try copy.load(flat: [1, 2, 3]))
        let other = try Fixture.model()
        try other.setAdapter(copy)
        XCTAssertEqual(try other.adapter(), copy)
    }

    func testWrongShapeIsRejectedNamingTheTensor() throws {
        let m = try Fixture.model()
        let dir = Fixture.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try m.save(directory: dir)
        let url = dir.appendingPathComponent("model.safetensors")
        var tensors = try SafeTensors.read(url)
        tensors["ln_f.bias"] = NamedTensor(name: "ln_f.bias", shape: [7], values: [Float](repeating: 0, count: 7))
        try SafeTensors.write(Array(tensors.values), to: url)
        XCTAssertThrowsError(try LanguageModel.load(directory: dir)) { error in
            XCTAssertEqual(error as? EngineError, .shapeMismatch(name: "ln_f.bias", expected: [8], got: [7]))
        }
    }

    func testMissingTensorIsRejectedNamingTheTensor() throws {
        let m = try Fixture.model()
        let dir = Fixture.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try m.save(directory: dir)
        let url = dir.appendingPathComponent("model.safetensors")
        var tensors = try SafeTensors.read(url)
        tensors["h.1.mlp.c_fc.bias"] = nil
        try SafeTensors.write(Array(tensors.values), to: url)
        XCTAssertThrowsError(try LanguageModel.load(directory: dir)) { error in
            XCTAssertEqual(error as? EngineError, .missingTensor(name: "h.1.mlp.c_fc.bias", file: url.path))
        }
        // adapters too
        try m.attachLoRA(LoRAConfig(rank: 1, alpha: 1), seed: 0)
        var adapter = try m.adapter()
        adapter.tensors.removeLast()
        try adapter.save(directory: dir)
        XCTAssertThrowsError(try LoRAAdapter.load(directory: dir, model: Fixture.micro)) { error in
            guard case .missingTensor(let name, _)? = error as? EngineError else { return XCTFail("\(error)") }
            XCTAssertEqual(name, "base_model.model.transformer.h.1.attn.c_proj.lora_B.weight")
        }
    }

    func testTruncatedFilesAndBadJSONAreRejectedWithTypedErrors() throws {
        let m = try Fixture.model()
        let dir = Fixture.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try m.save(directory: dir)
        let url = dir.appendingPathComponent("model.safetensors")
        let data = try Data(contentsOf: url)
        try data.prefix(data.count - 10).write(to: url)
        XCTAssertThrowsError(try LanguageModel.load(directory: dir)) { error in
            guard case .truncatedFile? = error as? EngineError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try SafeTensors.decode(Data([1, 2, 3]), file: "short")) { error in
            guard case .truncatedFile? = error as? EngineError else { return XCTFail("\(error)") }
        }
        var bad = Data([4, 0, 0, 0, 0, 0, 0, 0]); bad.append(Data("{no}".utf8))
        XCTAssertThrowsError(try SafeTensors.decode(bad, file: "bad")) { error in
            XCTAssertEqual(error as? EngineError, .badHeader(file: "bad", detail: "header is not valid JSON"))
        }
        try Data("{\"n_embd\": 8}".utf8).write(to: dir.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try LanguageModel.load(directory: dir)) { error in
            guard case .badConfig? = error as? EngineError else { return XCTFail("\(error)") }
        }
    }
}
