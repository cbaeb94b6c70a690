import Foundation

/// Model folders in Hugging Face layout: config.json + model.safetensors (GPT-2 names, Conv1D weights
/// stored [in, out]); adapters in PEFT layout: adapter_config.json + adapter_model.safetensors.
extension LanguageModel {
    static let conv1D: Set<String> = ["attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"]

    /// Reads config.json (n_embd, n_layer, n_head, n_positions or n_ctx, vocab_size, layer_norm_epsilon).
    public static func loadConfig(_ directory: URL) throws(EngineError) -> ModelConfig {
        let url = directory.appendingPathComponent("config.json")
        let obj = try readJSONObject(url)
        func int(_ keys: [String]) throws(EngineError) -> Int {
            for k in keys { if let v = obj[k] as? NSNumber { return v.intValue } }
            throw .badConfig("\(url.path) lacks \(keys.joined(separator: " or "))")
        }
        let config = ModelConfig(vocabSize: try int(["vocab_size"]), contextLength: try int(["n_positions", "n_ctx"]),
                                layers: try int(["n_layer"]), heads: try int(["n_head"]), width: try int(["n_embd"]),
                                layerNormEpsilon: (obj["layer_norm_epsilon"] as? NSNumber)?.floatValue ?? 1e-5)
        try config.validate()
        return config
    }

    /// Loads config.json + model.safetensors; accepts names with or without the `transformer.` prefix.
    public static func load(directory: URL) throws(EngineError) -> LanguageModel {
        let config = try loadConfig(directory)
        let model = try LanguageModel(config: config, seed: 0)
        let file = directory.appendingPathComponent("model.safetensors")
        let tensors = try SafeTensors.read(file)
        for (name, shape, offset) in model.namedSlots() {
            guard let t = tensors[name] ?? tensors["transformer." + name] else { throw .missingTensor(name: name, file: file.path) }
            let suffix = name.split(separator: ".").dropFirst(2).joined(separator: ".")
            let isConv = name.hasPrefix("h.") && conv1D.contains(suffix)
            let expected = isConv ? [shape[1], shape[0]] : shape
            guard t.shape == expected else { throw .shapeMismatch(name: name, expected: expected, got: t.shape) }
            let dst = model.params.base + offset
            if isConv {
                let rows = shape[1], cols = shape[0]  // file [in, out] → ours [out, in]
                for i in 0..<rows { for j in 0..<cols { dst[j * rows + i] = t.values[i * cols + j] } }
            } else {
                t.values.withUnsafeBufferPointer { dst.update(from: $0.baseAddress!, count: $0.count) }
            }
        }
        return model
    }

    /// Writes config.json and model.safetensors (HF GPT-2 names and layouts), creating the folder.
    public func save(directory: URL) throws(EngineError) {
        try makeDirectory(directory)
        let c = config
        let json: [String: Any] = [
            "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
            "vocab_size": c.vocabSize, "n_positions": c.contextLength, "n_ctx": c.contextLength,
            "n_embd": c.width, "n_layer": c.layers, "n_head": c.heads, "layer_norm_epsilon": Double(c.layerNormEpsilon),
            "activation_function": "gelu_new", "tie_word_embeddings": true,
        ]
        try writeJSON(json, to: directory.appendingPathComponent("config.json"))
        var tensors: [NamedTensor] = []
        for (name, shape, offset) in namedSlots() {
            let src = params.base + offset
            let suffix = name.split(separator: ".").dropFirst(2).joined(separator: ".")
            if name.hasPrefix("h.") && Self.conv1D.contains(suffix) {
                let rows = shape[0], cols = shape[1]  // ours [out, in] → file [in, out]
                var v = [Float](repeating: 0, count: rows * cols)
                for i in 0..<rows { for j in 0..<cols { v[j * rows + i] = src[i * cols + j] } }
                tensors.append(NamedTensor(name: name, shape: [cols, rows], values: v))
            } else {
                tensors.append(NamedTensor(name: name, shape: shape, values: Array(UnsafeBufferPointer(start: src, count: shape.reduce(1, *)))))
            }
        }
        try SafeTensors.write(tensors, to: directory.appendingPathComponent("model.safetensors"), metadata: ["format": "pt"])
    }
}

extension LoRAAdapter {
    /// Writes adapter_config.json + adapter_model.safetensors (PEFT layout).
    public func save(directory: URL, baseModel: String = "") throws(EngineError) {
        try makeDirectory(directory)
        let json: [String: Any] = [
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": config.rank, "lora_alpha": Double(config.alpha),
            "target_modules": config.targets.map(\.rawValue), "base_model_name_or_path": baseModel,
            "fan_in_fan_out": true, "lora_dropout": 0.0, "bias": "none",
        ]
        try writeJSON(json, to: directory.appendingPathComponent("adapter_config.json"))
        try SafeTensors.write(tensors, to: directory.appendingPathComponent("adapter_model.safetensors"))
    }

    /// Reads a PEFT adapter folder for a model of `layers` blocks and width `width`.
    public static func load(directory: URL, layers: Int, width: Int) throws(EngineError) -> LoRAAdapter {
        let cfgURL = directory.appendingPathComponent("adapter_config.json")
        let obj = try readJSONObject(cfgURL)
        if let type = obj["peft_type"] as? String, type != "LORA" {
            throw .badConfig("\(cfgURL.path) has peft_type \(type); only LORA adapters are supported")
        }
        guard let r = (obj["r"] as? NSNumber)?.intValue, r > 0 else { throw .badConfig("\(cfgURL.path) lacks a positive integer r") }
        let alpha = (obj["lora_alpha"] as? NSNumber)?.floatValue ?? Float(r)
        let modules: [String]
        if let list = obj["target_modules"] as? [String] { modules = list }
        else if let one = obj["target_modules"] as? String { modules = [one] }
        else { throw .badConfig("\(cfgURL.path) lacks target_modules") }
        let config = LoRAConfig(rank: r, alpha: alpha, targets: try LoRATarget.parse(modules))
        let file = directory.appendingPathComponent("adapter_model.safetensors")
        let stored = try SafeTensors.read(file)
        var tensors: [NamedTensor] = []
        for l in 0..<layers {
            for t in config.targets {
                let d = t.dims(width)
                for (isA, shape) in [(true, [r, d.inp]), (false, [d.out, r])] {
                    let name = key(layer: l, target: t, isA: isA)
                    // PEFT may keep the adapter name in the key ("lora_A.default.weight").
                    let alt = name.replacingOccurrences(of: ".weight", with: ".default.weight")
                    guard let found = stored[name] ?? stored[alt] else { throw .missingTensor(name: name, file: file.path) }
                    guard found.shape == shape else { throw .shapeMismatch(name: name, expected: shape, got: found.shape) }
                    tensors.append(NamedTensor(name: name, shape: shape, values: found.values))
                }
            }
        }
        return LoRAAdapter(config: config, layers: layers, tensors: tensors)
    }
}

func readJSONObject(_ url: URL) throws(EngineError) -> [String: Any] {
    let data: Data
    do { data = try Data(contentsOf: url) } catch { throw .io(file: url.path, detail: "cannot read (\(error.localizedDescription))") }
    guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
        throw .badHeader(file: url.path, detail: "not a JSON object")
    }
    return obj
}

func writeJSON(_ obj: [String: Any], to url: URL) throws(EngineError) {
    do {
        let data = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: url)
    } catch { throw .io(file: url.path, detail: "\(error.localizedDescription)") }
}

func makeDirectory(_ url: URL) throws(EngineError) {
    do { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) } catch {
        throw .io(file: url.path, detail: "cannot create directory (\(error.localizedDescription))")
    }
}

/// So command-line tools print the description rather than the enum case.
extension EngineError: LocalizedError {
    public var errorDescription: String? { description }
}
