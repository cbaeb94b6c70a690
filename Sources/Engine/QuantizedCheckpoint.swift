import CKernels
import Foundation

/// Quantized model folders (`fi quantize`): config.json with `"quantization_config": {"quant_method": "fi",
/// "bits": 8|4, "group_size": g}` and, per Hugging Face matrix name N (stored [out, in], also for GPT-2):
/// int8: N as I8 [out, in] and N_scale F32 [out]; 4-bit: N as U8 [out, in/2] (per 32 inputs, 16 bytes: low nibbles
/// inputs 0…15, high nibbles 16…31), N_scale and N_min F16 [out, in/g]. Norms, biases and positions stay F32.
/// Codes are used in place from the memory-mapped file, so a node touches only the pages of what it runs.
extension LanguageModel {
    /// A copy with every matrix (token embedding, head, the four matrices of each block) quantized; norms, biases and
    /// learned positions stay fp32. The attached adapter is copied.
    public func quantized(_ format: QuantFormat) throws(EngineError) -> LanguageModel {
        guard quant == nil else { throw .badInput("the model is already quantized (\(quant!.format))") }
        var parts: [MatrixID: [QuantizedRows]] = [:]
        for site in config.tensorSites(layout) {
            guard case .matrix(let id, let rows) = site.place else { continue }
            let cols = id.dims(config).inp
            try format.check(cols: cols, name: site.name)
            try checkFinite(denseMatrix(id) + rows.lowerBound * cols, count: rows.count * cols, name: site.name, format: format)
            parts[id, default: []].append(QuantizedMatrix.quantize(denseMatrix(id) + rows.lowerBound * cols, rows: rows, cols: cols, format: format))
        }
        let weights = QuantizedWeights.assemble(config: config, format: format, parts: parts)
        let model = try LanguageModel(zeroed: config, quant: weights)
        for (from, to) in zip(config.tensorSites(layout), config.tensorSites(model.layout)) {
            guard case .vector(let a) = from.place, case .vector(let b) = to.place else { continue }
            (model.params.base + b).update(from: params.base + a, count: from.shape.reduce(1, *))
        }
        if let lora { try model.setAdapter(lora.adapter(layers: config.layers)) }
        return model
    }

    private func checkFinite(_ w: UnsafePointer<Float>, count: Int, name: String, format: QuantFormat) throws(EngineError) {
        let limit: Float = format == .int8 ? .greatestFiniteMagnitude : 65504
        for i in 0..<count where !(abs(w[i]) <= limit) {
            throw .badInput("tensor '\(name)' holds \(w[i]); \(format) needs finite values\(format == .int8 ? "" : " within fp16 range")")
        }
    }

    /// The `quantization_config` of a model folder's config.json, nil for an fp32 model.
    public static func quantizationFormat(_ directory: URL) throws(EngineError) -> QuantFormat? {
        let url = directory.appendingPathComponent("config.json")
        guard let q = try readJSONObject(url)["quantization_config"], !(q is NSNull) else { return nil }
        guard let o = q as? [String: Any], o["quant_method"] as? String == "fi", let bits = (o["bits"] as? NSNumber)?.intValue else {
            throw .badConfig("\(url.path): quantization_config must be {\"quant_method\": \"fi\", \"bits\": 8 or 4, \"group_size\": 32 or 64}")
        }
        switch bits {
        case 8: return .int8
        case 4:
            let g = (o["group_size"] as? NSNumber)?.intValue ?? 0
            guard g == 32 || g == 64 else { throw .badConfig("\(url.path): quantization_config.group_size must be 32 or 64, got \(g)") }
            return .q4(group: g)
        default: throw .badConfig("\(url.path): quantization_config.bits must be 8 or 4, got \(bits)")
        }
    }

    static func quantizationJSON(_ format: QuantFormat) -> [String: Any] {
        switch format {
        case .int8: return ["quant_method": "fi", "bits": 8]
        case .q4(let g): return ["quant_method": "fi", "bits": 4, "group_size": g]
        }
    }

    /// The stored tensors of one quantized matrix site: (name, dtype, shape, bytes).
    static func storedTensors(_ site: TensorSite, rows: Int, cols: Int, format: QuantFormat) -> [(String, String, [Int], Int)] {
        switch format {
        case .int8:
            return [(site.name, "I8", [rows, cols], rows * cols), (site.name + "_scale", "F32", [rows], 4 * rows)]
        case .q4(let g):
            let groups = cols / g
            return [(site.name, "U8", [rows, cols / 2], rows * cols / 2),
                    (site.name + "_scale", "F16", [rows, groups], 2 * rows * groups),
                    (site.name + "_min", "F16", [rows, groups], 2 * rows * groups)]
        }
    }

    static func loadQuantized(directory: URL, config: ModelConfig, format: QuantFormat) throws(EngineError) -> LanguageModel {
        let files = try CheckpointFiles(directory: directory)
        var parts: [MatrixID: [QuantizedRows]] = [:]
        let sites = config.tensorSites(ParameterLayout(config, dense: false))
        for site in sites {
            guard case .matrix(let id, let rows) = site.place else { continue }
            let cols = id.dims(config).inp
            try format.check(cols: cols, name: site.name)
            var found: [(MappedFile, SafeTensors.Entry)] = []
            for (name, dtype, shape, _) in storedTensors(site, rows: rows.count, cols: cols, format: format) {
                let e = try files.entry(name, shape: shape)
                guard e.entry.dtype == dtype else { throw .unsupportedDType(name: name, dtype: "\(e.entry.dtype) (expected \(dtype))") }
                found.append(e)
            }
            let codes = found[0].0.base + found[0].1.offset
            switch format {
            case .int8:
                let scales = ByteBuffer(count: 4 * rows.count)  // copied: F32 after I8 codes may be unaligned
                scales.base.copyMemory(from: found[1].0.base + found[1].1.offset, byteCount: 4 * rows.count)
                parts[id, default: []].append(QuantizedRows(rows: rows, codes: codes, scales: UnsafeRawPointer(scales.base), mins: nil,
                                                            owner: [found[0].0, scales]))
            case .q4:
                parts[id, default: []].append(QuantizedRows(rows: rows, codes: codes, scales: found[1].0.base + found[1].1.offset,
                                                            mins: found[2].0.base + found[2].1.offset, owner: [found[0].0, found[1].0, found[2].0]))
            }
        }
        let model = try LanguageModel(zeroed: config, quant: QuantizedWeights.assemble(config: config, format: format, parts: parts))
        for site in sites {
            guard case .vector = site.place else { continue }
            try files.read(site.name, shape: site.shape, into: model.pointer(site))
        }
        return model
    }

    func saveQuantized(_ quant: QuantizedWeights, directory: URL, shardBytes: Int?) throws(EngineError) {
        try makeDirectory(directory)
        var json = config.json
        json["quantization_config"] = Self.quantizationJSON(quant.format)
        try writeJSON(json, to: directory.appendingPathComponent("config.json"))
        var tensors: [OutputTensor] = []
        for site in config.tensorSites(layout) {
            switch site.place {
            case .vector:
                let n = site.shape.reduce(1, *), src = pointer(site)
                tensors.append(OutputTensor(name: site.name, dtype: "F32", shape: site.shape, bytes: 4 * n) {
                    UnsafeRawBufferPointer(start: src, count: 4 * n).map { $0 }
                })
            case .matrix(let id, let rows):
                let q = quant.matrix(id)
                guard let part = q.parts.first(where: { $0.rows == rows }) else {
                    throw .badInput("quantized matrix of '\(site.name)' has no block for rows \(rows)")
                }
                let stored = Self.storedTensors(site, rows: rows.count, cols: q.cols, format: quant.format)
                let sources = [part.codes, part.scales, part.mins].compactMap { $0 }
                for ((name, dtype, shape, bytes), src) in zip(stored, sources) {
                    tensors.append(OutputTensor(name: name, dtype: dtype, shape: shape, bytes: bytes) {
                        UnsafeRawBufferPointer(start: src, count: bytes).map { $0 }
                    })
                }
            }
        }
        try writeCheckpoint(tensors, to: directory, shardBytes: shardBytes)
    }

    /// Writes a quantized checkpoint of shape `config` with seeded random weights (U(−a, a) with the std of N(0, 0.02),
    /// residual projections scaled by 1/√(2L); norms 1, biases 0) without ever holding the fp32 model: each tensor is
    /// drawn, quantized and written in turn. For shape-level demos of models larger than memory (LLaMA-7B).
    public static func writeRandomQuantized(config: ModelConfig, format: QuantFormat, seed: UInt64, directory: URL,
                                            shardBytes: Int? = 2 << 30, progress: @escaping (String) -> Void = { _ in }) throws(EngineError) {
        try config.validate()
        try makeDirectory(directory)
        var json = config.json
        json["quantization_config"] = quantizationJSON(format)
        try writeJSON(json, to: directory.appendingPathComponent("config.json"))
        let layout = ParameterLayout(config, dense: false)
        var tensors: [OutputTensor] = []
        let projStd = 0.02 / Float(2 * config.layers).squareRoot()
        for (index, site) in config.tensorSites(layout).enumerated() {
            switch site.place {
            case .vector(let offset):
                let n = site.shape.reduce(1, *)
                let one = [layout.ln1w, layout.ln2w, layout.lnfw].contains { (offset >= $0.offset) && (offset < $0.offset + $0.count) }
                tensors.append(OutputTensor(name: site.name, dtype: "F32", shape: site.shape, bytes: 4 * n) {
                    [Float](repeating: one ? 1 : 0, count: n).withUnsafeBytes { [UInt8]($0) }
                })
            case .matrix(let id, let rows):
                let cols = id.dims(config).inp
                try format.check(cols: cols, name: site.name)
                var std: Float = 0.02
                if case .block(let m, _) = id, m == .attnOut || m == .mlpOut { std = projStd }
                let cache = QuantizedSiteCache()
                let draw = { () -> QuantizedRows in
                    if let q = cache.rows { return q }
                    var rng = SplitMix64(seed: seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
                    let a = std * Float(3).squareRoot()
                    let w = Arena(count: rows.count * cols)
                    for i in 0..<w.count { w.base[i] = (2 * rng.nextFloat() - 1) * a }
                    let q = QuantizedMatrix.quantize(w.base, rows: 0..<rows.count, cols: cols, format: format)
                    cache.rows = q
                    progress(site.name)
                    return q
                }
                for (k, (name, dtype, shape, bytes)) in storedTensors(site, rows: rows.count, cols: cols, format: format).enumerated() {
                    tensors.append(OutputTensor(name: name, dtype: dtype, shape: shape, bytes: bytes) {
                        let q = draw()
                        let src = [q.codes, q.scales, q.mins].compactMap { $0 }[k]
                        let out = UnsafeRawBufferPointer(start: src, count: bytes).map { $0 }
                        if k == (format == .int8 ? 1 : 2) { cache.rows = nil }  // the site's last tensor: free its codes
                        return out
                    })
                }
            }
        }
        try writeCheckpoint(tensors, to: directory, shardBytes: shardBytes)
    }
}

/// One site's quantized rows, kept between writing its codes and its scales.
private final class QuantizedSiteCache { var rows: QuantizedRows? }

extension QuantizedWeights {
    /// Joins the row blocks of each matrix (in row order) into the model's quantized matrices.
    static func assemble(config: ModelConfig, format: QuantFormat, parts: [MatrixID: [QuantizedRows]]) -> QuantizedWeights {
        func matrix(_ id: MatrixID) -> QuantizedMatrix {
            let d = id.dims(config)
            return QuantizedMatrix(format: format, rows: d.out, cols: d.inp, parts: (parts[id] ?? []).sorted { $0.rows.lowerBound < $1.rows.lowerBound })
        }
        let blocks = (0..<config.layers).map { l in Projection.allCases.map { matrix(.block($0, l)) } }
        return QuantizedWeights(format: format, embedding: matrix(.embedding), head: config.tiedEmbeddings ? nil : matrix(.head), blocks: blocks)
    }
}
