import COpenBLAS

/// A transformer language model (GPT-2 or Llama family): parameters in one arena, optional LoRA adapter, training
/// buffers made on demand. Not thread-safe: one owner (an actor or one task) drives it.
public final class LanguageModel {
    public let config: ModelConfig
    public let layout: ParameterLayout
    let params: Arena
    let p: ParameterTensors
    /// Rotation tables (Llama family), nil for GPT-2.
    let rope: RoPETable?
    /// The frozen matrices in int8 or 4-bit (nil: fp32 in the arena, which then holds only norms, biases, positions).
    let quant: QuantizedWeights?
    var lora: LoRAWeights?
    var baseGrads: Arena?
    var acts: Activations?

    /// Random initialisation: N(0, 0.02), residual projections scaled by 1/√(2L), norms at (1, 0).
    public convenience init(config: ModelConfig, seed: UInt64 = 0) throws(EngineError) {
        try self.init(zeroed: config)
        var rng = SplitMix64(seed: seed)
        let std: Float = 0.02, projStd = 0.02 / Float(2 * config.layers).squareRoot()
        func fill(_ s: ParameterLayout.Slot, _ sd: Float) {
            for i in 0..<s.count { params.base[s.offset + i] = rng.nextGaussian() * sd }
        }
        func ones(_ s: ParameterLayout.Slot) { (params.base + s.offset).update(repeating: 1, count: s.count) }
        fill(layout.wte, std); fill(layout.wpe, 0.01)
        fill(layout.qkvw, std); fill(layout.attprojw, projStd)
        fill(layout.fcw, std); fill(layout.fcprojw, projStd)
        fill(layout.lmHead, std)
        ones(layout.ln1w); ones(layout.ln2w); ones(layout.lnfw)
    }

    /// All parameters zero (loaders fill them); with `quant`, the matrices are those quantized ones. `shared`: use this
    /// parameter arena instead of a new one (SharedBase.swift).
    init(zeroed config: ModelConfig, quant: QuantizedWeights? = nil, shared: Arena? = nil) throws(EngineError) {
        try config.validate()
        BLASThreads.configure()
        self.config = config
        self.quant = quant
        layout = ParameterLayout(config, dense: quant == nil)
        params = shared ?? Arena(count: layout.count)
        p = ParameterTensors(base: params.base, layout: layout)
        rope = config.architecture == .llama
            ? RoPETable(config: config.rope, headSize: config.headSize, context: config.contextLength) : nil
    }

    /// Number of base parameters (the fp32 model's, also for a quantized one).
    public var parameterCount: Int { config.parameterCount }

    /// The format of the frozen matrices, nil for fp32.
    public var quantization: QuantFormat? { quant?.format }

    /// Bytes the base weights take as held: the fp32 arena plus quantized codes and scales.
    public var weightBytes: Int { 4 * layout.count + (quant?.bytes ?? 0) }

    /// An independent copy of the weights and the attached adapter (no training state).
    public func clone() -> LanguageModel {
        let copy = try! LanguageModel(zeroed: config, quant: quant)  // config was validated when self was made; quantized weights are shared (read-only)
        copy.params.base.update(from: params.base, count: layout.count)
        if let lora {
            let w = LoRAWeights(config: lora.config, model: config)
            w.params.base.update(from: lora.params.base, count: lora.params.count)
            copy.lora = w
        }
        return copy
    }

    /// All fp32 base parameters as one flat vector (layout order; a quantized model's matrices are not in it).
    /// Valid only while the model is alive.
    public var parameters: UnsafeMutableBufferPointer<Float> { params.buffer }

    // MARK: LoRA

    /// The current adapter's configuration, nil when none is attached.
    public var loraConfig: LoRAConfig? { lora?.config }

    /// Attaches a fresh adapter (A random from `seed`, B = 0), replacing any previous one.
    /// GPT-2 target names on a Llama model mean their Llama counterparts (see `LoRATarget.resolve`).
    public func attachLoRA(_ config: LoRAConfig, seed: UInt64) throws(EngineError) {
        guard config.rank > 0, !config.targets.isEmpty else {
            throw .badConfig("LoRA needs rank > 0 and at least one target (got rank \(config.rank))")
        }
        var resolved = config
        resolved.targets = try LoRATarget.resolve(config.targets, for: self.config.architecture)
        let w = LoRAWeights(config: resolved, model: self.config)
        w.reset(seed: seed)
        lora = w
        acts = nil  // LoRA intermediates live in the activation arena
    }

    public func detachLoRA() { lora = nil; acts = nil }

    /// Re-draws A from `seed` and zeroes B, so the adapted model equals the base.
    public func resetAdapter(seed: UInt64) throws(EngineError) {
        guard let lora else { throw .badInput("resetAdapter: no LoRA adapter is attached; call attachLoRA first") }
        lora.reset(seed: seed)
    }

    /// The attached adapter's tensors (PEFT names, stable order).
    public func adapter() throws(EngineError) -> LoRAAdapter {
        guard let lora else { throw .badInput("adapter(): no LoRA adapter is attached") }
        return lora.adapter(layers: config.layers)
    }

    /// Sets adapter values; attaches an adapter of the same config if none (or a different one) is attached.
    public func setAdapter(_ adapter: LoRAAdapter, source: String = "adapter") throws(EngineError) {
        guard adapter.layers == config.layers else {
            throw .badInput("\(source) has \(adapter.layers) layers, the model has \(config.layers)")
        }
        if lora?.config != adapter.config { try attachLoRA(adapter.config, seed: 0) }
        try lora!.load(adapter, source: source)
    }

    /// Folds the adapter into the base weights (W += s·B·A) and detaches it.
    public func mergeAdapter() throws(EngineError) {
        guard let lora else { throw .badInput("mergeAdapter: no LoRA adapter is attached") }
        guard quant == nil else { throw .badInput("mergeAdapter: the base is quantized (\(quant!.format)); adapters stay unmerged on a quantized base") }
        let r = lora.config.rank, s = lora.config.scaling
        for slot in lora.slots {
            let w = denseMatrix(slot.matrix, layer: slot.layer) + slot.rows.lowerBound * slot.inp
            // W[rows, in] += s · B[out,r] · A[r,in]
            gemm(w, lora.params.base + slot.b, lora.params.base + slot.a, M: slot.out, N: slot.inp, K: r, alpha: s)
        }
        detachLoRA()
    }

    // MARK: where each weight lives

    /// The fp32 matrix `m` of block `layer`, [out, in] row-major, inside the parameter arena.
    func denseMatrix(_ m: Projection, layer l: Int, in q: ParameterTensors? = nil) -> UnsafeMutablePointer<Float> {
        let t = q ?? p, d = m.dims(config), n = l * d.out * d.inp
        switch m {
        case .qkv: return t.qkvw + n
        case .attnOut: return t.attprojw + n
        case .mlpIn: return t.fcw + n
        case .mlpOut: return t.fcprojw + n
        }
    }

    /// The bias of matrix `m` of block `layer`, nil when the config has none.
    func bias(_ m: Projection, layer l: Int, in q: ParameterTensors? = nil) -> UnsafeMutablePointer<Float>? {
        let t = q ?? p, n = l * m.dims(config).out
        switch m {
        case .qkv: return t.qkvb.map { $0 + n }
        case .attnOut: return t.attprojb.map { $0 + n }
        case .mlpIn: return t.fcb.map { $0 + n }
        case .mlpOut: return t.fcprojb.map { $0 + n }
        }
    }

    /// The LM head [V, C]: lm_head, or the token embedding when tied.
    func headMatrix(in q: ParameterTensors? = nil) -> UnsafeMutablePointer<Float> {
        let t = q ?? p
        return t.lmHead ?? t.wte
    }
}

/// c[M,N] += alpha · a[M,K] · b[K,N]
func gemm(_ c: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
          M: Int, N: Int, K: Int, alpha: Float) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(M), Int32(N), Int32(K),
                alpha, a, Int32(K), b, Int32(N), 1, c, Int32(N))
}
