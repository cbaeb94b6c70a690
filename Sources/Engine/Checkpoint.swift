import Foundation

/// Which weight matrix of the model: the token embedding, the untied LM head, or a block's fused matrix.
enum MatrixID: Hashable, Sendable {
    case embedding, head
    case block(Projection, Int)

    func dims(_ c: ModelConfig) -> (out: Int, inp: Int) {
        switch self {
        case .embedding, .head: return (c.vocabSize, c.width)
        case .block(let m, _): return m.dims(c)
        }
    }
}

/// Where one checkpoint tensor (Hugging Face name and shape) lives in the model: a vector in the parameter arena,
/// or rows of a weight matrix. GPT-2's Conv1D matrices are stored [in, out] on disk (`transposed`).
struct TensorSite {
    enum Place {
        case vector(offset: Int)
        case matrix(MatrixID, rows: Range<Int>)
    }
    let name: String
    let shape: [Int]
    let place: Place
    var transposed = false
}

extension ModelConfig {
    /// Every tensor of a checkpoint of this shape, in file order, with HF names.
    func tensorSites(_ layout: ParameterLayout) -> [TensorSite] {
        let C = width, L = layers, V = vocabSize
        var out: [TensorSite] = []
        func vec(_ name: String, _ n: Int, _ slot: ParameterLayout.Slot, _ at: Int) {
            out.append(TensorSite(name: name, shape: [n], place: .vector(offset: slot.offset + at)))
        }
        func mat(_ name: String, _ id: MatrixID, _ rows: Range<Int>, conv1D: Bool = false) {
            let cols = id.dims(self).inp
            out.append(TensorSite(name: name, shape: conv1D ? [cols, rows.count] : [rows.count, cols],
                                  place: .matrix(id, rows: rows), transposed: conv1D))
        }
        switch architecture {
        case .gpt2:
            mat("wte.weight", .embedding, 0..<V)
            out.append(TensorSite(name: "wpe.weight", shape: [contextLength, C], place: .vector(offset: layout.wpe.offset)))
            for l in 0..<L {
                let h = "h.\(l)."
                vec(h + "ln_1.weight", C, layout.ln1w, l * C); vec(h + "ln_1.bias", C, layout.ln1b, l * C)
                mat(h + "attn.c_attn.weight", .block(.qkv, l), 0..<(3 * C), conv1D: true)
                vec(h + "attn.c_attn.bias", 3 * C, layout.qkvb, l * 3 * C)
                mat(h + "attn.c_proj.weight", .block(.attnOut, l), 0..<C, conv1D: true)
                vec(h + "attn.c_proj.bias", C, layout.attprojb, l * C)
                vec(h + "ln_2.weight", C, layout.ln2w, l * C); vec(h + "ln_2.bias", C, layout.ln2b, l * C)
                mat(h + "mlp.c_fc.weight", .block(.mlpIn, l), 0..<mlpWidth, conv1D: true)
                vec(h + "mlp.c_fc.bias", mlpWidth, layout.fcb, l * mlpWidth)
                mat(h + "mlp.c_proj.weight", .block(.mlpOut, l), 0..<C, conv1D: true)
                vec(h + "mlp.c_proj.bias", C, layout.fcprojb, l * C)
            }
            vec("ln_f.weight", C, layout.lnfw, 0); vec("ln_f.bias", C, layout.lnfb, 0)
        case .llama:
            let q = qDim, kv = kvDim, M = mlpWidth
            mat("model.embed_tokens.weight", .embedding, 0..<V)
            for l in 0..<L {
                let h = "model.layers.\(l)."
                vec(h + "input_layernorm.weight", C, layout.ln1w, l * C)
                let parts: [(String, Range<Int>)] = [("q_proj", 0..<q), ("k_proj", q..<(q + kv)), ("v_proj", (q + kv)..<(q + 2 * kv))]
                for (n, rows) in parts {
                    mat(h + "self_attn.\(n).weight", .block(.qkv, l), rows)
                    if qkvBias { vec(h + "self_attn.\(n).bias", rows.count, layout.qkvb, l * qkvDim + rows.lowerBound) }
                }
                mat(h + "self_attn.o_proj.weight", .block(.attnOut, l), 0..<C)
                if outputBias { vec(h + "self_attn.o_proj.bias", C, layout.attprojb, l * C) }
                vec(h + "post_attention_layernorm.weight", C, layout.ln2w, l * C)
                for (n, rows) in [("gate_proj", 0..<M), ("up_proj", M..<(2 * M))] {
                    mat(h + "mlp.\(n).weight", .block(.mlpIn, l), rows)
                    if mlpBias { vec(h + "mlp.\(n).bias", M, layout.fcb, l * 2 * M + rows.lowerBound) }
                }
                mat(h + "mlp.down_proj.weight", .block(.mlpOut, l), 0..<C)
                if mlpBias { vec(h + "mlp.down_proj.bias", C, layout.fcprojb, l * C) }
            }
            vec("model.norm.weight", C, layout.lnfw, 0)
            if !tiedEmbeddings { mat("lm_head.weight", .head, 0..<V) }
        }
        return out
    }
}

/// The safetensors files of a model folder: `model.safetensors`, or the shards `model.safetensors.index.json`
/// names. Files are memory-mapped; a tensor is read when asked for.
final class CheckpointFiles {
    let directory: URL
    private var files: [String: MappedFile] = [:]
    private(set) var entries: [String: (file: MappedFile, entry: SafeTensors.Entry)] = [:]

    init(directory: URL) throws(EngineError) {
        self.directory = directory
        let index = directory.appendingPathComponent("model.safetensors.index.json")
        if FileManager.default.fileExists(atPath: index.path) {
            let obj = try readJSONObject(index)
            guard let map = obj["weight_map"] as? [String: Any] else {
                throw .badHeader(file: index.path, detail: "weight_map must map tensor names to shard file names")
            }
            for (name, v) in map {
                guard let shard = v as? String, !shard.contains("/"), !shard.hasPrefix(".") else {
                    throw .badHeader(file: index.path, detail: "weight_map entry '\(name)' must name a shard file in the folder")
                }
                let file = try open(shard)
                guard let e = entries[name], e.file === file else {
                    throw .missingTensor(name: name, file: file.path)
                }
            }
        } else {
            _ = try open("model.safetensors")
        }
    }

    private func open(_ name: String) throws(EngineError) -> MappedFile {
        if let f = files[name] { return f }
        let f = try MappedFile(directory.appendingPathComponent(name).path)
        files[name] = f
        for (n, e) in try SafeTensors.entries(f.base, count: f.count, file: f.path) { entries[n] = (f, e) }
        return f
    }

    /// The entry for `name` (GPT-2 checkpoints may prefix names with `transformer.`), checked against `shape`.
    func entry(_ name: String, shape: [Int]) throws(EngineError) -> (file: MappedFile, entry: SafeTensors.Entry) {
        guard let found = entries[name] ?? entries["transformer." + name] else {
            throw .missingTensor(name: name, file: files.count == 1 ? files.values.first!.path : directory.path)
        }
        guard found.entry.shape == shape else { throw .shapeMismatch(name: name, expected: shape, got: found.entry.shape) }
        return found
    }

    /// Widens tensor `name` into dst, transposing [a, b] → [b, a] when asked.
    func read(_ name: String, shape: [Int], into dst: UnsafeMutablePointer<Float>, transposed: Bool = false) throws(EngineError) {
        let (file, e) = try entry(name, shape: shape)
        guard transposed else { return try SafeTensors.widen(e, from: file.base, into: dst) }
        let tmp = Arena(count: e.count)
        try SafeTensors.widen(e, from: file.base, into: tmp.base)
        let rows = shape[0], cols = shape[1]
        for i in 0..<rows { for j in 0..<cols { dst[j * rows + i] = tmp.base[i * cols + j] } }
    }
}

/// A tensor to write: its bytes are made when its turn comes, so a large checkpoint streams.
struct OutputTensor {
    let name: String
    let dtype: String
    let shape: [Int]
    let bytes: Int
    let produce: () -> [UInt8]
}

/// Writes tensors as `model.safetensors`, or as shards of at most `shardBytes` with `model.safetensors.index.json`.
func writeCheckpoint(_ tensors: [OutputTensor], to directory: URL, shardBytes: Int?) throws(EngineError) {
    try makeDirectory(directory)
    var shards: [[OutputTensor]] = [[]]
    var size = 0
    for t in tensors {
        if let limit = shardBytes, size > 0, size + t.bytes > limit { shards.append([]); size = 0 }
        shards[shards.count - 1].append(t)
        size += t.bytes
    }
    let names = shards.count == 1 ? ["model.safetensors"]
        : (1...shards.count).map { String(format: "model-%05d-of-%05d.safetensors", $0, shards.count) }
    for (shard, name) in zip(shards, names) {
        let w = try SafeTensorsWriter(url: directory.appendingPathComponent(name),
                                      tensors: shard.map { .init(name: $0.name, dtype: $0.dtype, shape: $0.shape, bytes: $0.bytes) },
                                      metadata: ["format": "pt"])
        for t in shard {
            let bytes = t.produce()
            do { try bytes.withUnsafeBytes { try w.append(t.name, $0) } } catch let e as EngineError { throw e } catch {
                throw .io(file: directory.path, detail: "\(error)")
            }
        }
        try w.close()
    }
    let index = directory.appendingPathComponent("model.safetensors.index.json")
    if shards.count > 1 {
        var map: [String: String] = [:]
        for (shard, name) in zip(shards, names) { for t in shard { map[t.name] = name } }
        try writeJSON(["metadata": ["total_size": tensors.reduce(0) { $0 + $1.bytes }], "weight_map": map], to: index)
    } else {
        try? FileManager.default.removeItem(at: index)
    }
}

/// Model folders in Hugging Face layout: config.json + model.safetensors (or shards with an index), GPT-2 or
/// Llama-family names; adapters in PEFT layout: adapter_config.json + adapter_model.safetensors.
extension LanguageModel {
    /// Reads config.json: GPT-2 or a Llama-family model type.
    public static func loadConfig(_ directory: URL) throws(EngineError) -> ModelConfig {
        let url = directory.appendingPathComponent("config.json")
        return try ModelConfig.parse(json: try readJSONObject(url), file: url.path)
    }

    /// Loads config.json + the safetensors weights (single file or sharded).
    public static func load(directory: URL) throws(EngineError) -> LanguageModel {
        let config = try loadConfig(directory)
        if let format = try quantizationFormat(directory) { return try loadQuantized(directory: directory, config: config, format: format) }
        let model = try LanguageModel(zeroed: config)
        let files = try CheckpointFiles(directory: directory)
        for site in config.tensorSites(model.layout) {
            try files.read(site.name, shape: site.shape, into: model.pointer(site), transposed: site.transposed)
        }
        return model
    }

    /// Where a tensor site's values start in the fp32 parameter arena.
    func pointer(_ site: TensorSite) -> UnsafeMutablePointer<Float> {
        switch site.place {
        case .vector(let offset): return params.base + offset
        case .matrix(let id, let rows): return denseMatrix(id) + rows.lowerBound * id.dims(config).inp
        }
    }

    func denseMatrix(_ id: MatrixID) -> UnsafeMutablePointer<Float> {
        switch id {
        case .embedding: return p.wte
        case .head: return headMatrix()
        case .block(let m, let l): return denseMatrix(m, layer: l)
        }
    }

    /// Writes config.json and the weights (HF names and layouts) as F32, in shards of at most `shardBytes` when given.
    public func save(directory: URL, shardBytes: Int? = nil) throws(EngineError) {
        if let quant { return try saveQuantized(quant, directory: directory, shardBytes: shardBytes) }
        try makeDirectory(directory)
        try writeJSON(config.json, to: directory.appendingPathComponent("config.json"))
        let tensors = config.tensorSites(layout).map { site in
            OutputTensor(name: site.name, dtype: "F32", shape: site.shape, bytes: 4 * site.shape.reduce(1, *)) {
                let n = site.shape.reduce(1, *), src = self.pointer(site)
                var v = [Float](repeating: 0, count: n)
                if site.transposed {
                    let rows = site.shape[1], cols = site.shape[0]  // ours [out, in] → file [in, out]
                    for i in 0..<rows { for j in 0..<cols { v[j * rows + i] = src[i * cols + j] } }
                } else {
                    v.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: src, count: n) }
                }
                return v.withUnsafeBytes { [UInt8]($0) }
            }
        }
        try writeCheckpoint(tensors, to: directory, shardBytes: shardBytes)
    }
}

extension LoRAAdapter {
    /// Writes adapter_config.json + adapter_model.safetensors (PEFT layout).
    public func save(directory: URL, baseModel: String = "") throws(EngineError) {
        try makeDirectory(directory)
        let json: [String: Any] = [
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": config.rank, "lora_alpha": Double(config.alpha),
            "target_modules": config.targets.map { $0.architecture == .gpt2 ? $0.rawValue : String($0.rawValue.split(separator: ".").last!) },
            "base_model_name_or_path": baseModel,
            "fan_in_fan_out": config.targets.first?.architecture == .gpt2, "lora_dropout": 0.0, "bias": "none",
        ]
        try writeJSON(json, to: directory.appendingPathComponent("adapter_config.json"))
        try SafeTensors.write(tensors, to: directory.appendingPathComponent("adapter_model.safetensors"))
    }

    /// Reads a PEFT adapter folder holding the same tensors (names, shapes) as `template`: an aggregator's
    /// checkpoint of the adapter it started from. Rank, alpha and targets come from the folder and must match.
    public static func load(directory: URL, like template: LoRAAdapter) throws(EngineError) -> LoRAAdapter {
        let (config, stored, file) = try readFolder(directory, architecture: template.config.targets.first?.architecture ?? .gpt2)
        guard config == template.config else {
            throw .badConfig("\(directory.path) holds a rank \(config.rank) adapter of \(config.targets.map(\.rawValue)); expected rank \(template.config.rank) of \(template.config.targets.map(\.rawValue))")
        }
        var out = template
        for i in out.tensors.indices {
            let t = out.tensors[i]
            let found = try lookup(stored, t.name, file: file)
            guard found.shape == t.shape else { throw .shapeMismatch(name: t.name, expected: t.shape, got: found.shape) }
            out.tensors[i].values = found.values
        }
        return out
    }

    /// adapter_config.json (resolved for `architecture`) and the tensors of a PEFT folder.
    static func readFolder(_ directory: URL, architecture: Architecture) throws(EngineError) -> (LoRAConfig, [String: NamedTensor], String) {
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
        let config = LoRAConfig(rank: r, alpha: alpha, targets: try LoRATarget.resolve(try LoRATarget.parse(modules), for: architecture))
        let file = directory.appendingPathComponent("adapter_model.safetensors")
        return (config, try SafeTensors.read(file), file.path)
    }

    /// A PEFT key, also in the form that keeps the adapter name ("lora_A.default.weight").
    static func lookup(_ stored: [String: NamedTensor], _ name: String, file: String) throws(EngineError) -> NamedTensor {
        let alt = name.replacingOccurrences(of: ".weight", with: ".default.weight")
        guard let found = stored[name] ?? stored[alt] else { throw .missingTensor(name: name, file: file) }
        return found
    }

    /// Reads a PEFT adapter folder for a model of shape `model`.
    public static func load(directory: URL, model: ModelConfig) throws(EngineError) -> LoRAAdapter {
        let (config, stored, file) = try readFolder(directory, architecture: model.architecture)
        let r = config.rank
        var tensors: [NamedTensor] = []
        for l in 0..<model.layers {
            for t in config.targets {
                let d = t.dims(model)
                for (isA, shape) in [(true, [r, d.inp]), (false, [d.out, r])] {
                    let name = key(layer: l, target: t, isA: isA)
                    let found = try lookup(stored, name, file: file)
                    guard found.shape == shape else { throw .shapeMismatch(name: name, expected: shape, got: found.shape) }
                    tensors.append(NamedTensor(name: name, shape: shape, values: found.values))
                }
            }
        }
        return LoRAAdapter(config: config, layers: model.layers, tensors: tensors)
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
