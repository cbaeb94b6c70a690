import COpenBLAS

/// A GPT-2 language model: parameters in one arena, optional LoRA adapter, training buffers made on demand.
/// Not thread-safe: one owner (an actor or one task) drives it.
public final class LanguageModel {
    public let config: ModelConfig
    public let layout: ParameterLayout
    let params: Arena
    let p: ParameterTensors
    var lora: LoRAWeights?
    var baseGrads: Arena?
    var acts: Activations?

    /// Random GPT-2 initialisation: N(0, 0.02), residual projections scaled by 1/√(2L), LayerNorm at (1, 0).
    public init(config: ModelConfig, seed: UInt64 = 0) throws(EngineError) {
        try config.validate()
        BLASThreads.configure()
        self.config = config
        layout = ParameterLayout(config)
        params = Arena(count: layout.count)
        p = ParameterTensors(base: params.base, layout: layout)
        var rng = SplitMix64(seed: seed)
        let std: Float = 0.02, projStd = 0.02 / Float(2 * config.layers).squareRoot()
        func fill(_ s: ParameterLayout.Slot, _ sd: Float) {
            for i in 0..<s.count { params.base[s.offset + i] = rng.nextGaussian() * sd }
        }
        func ones(_ s: ParameterLayout.Slot) { (params.base + s.offset).update(repeating: 1, count: s.count) }
        fill(layout.wte, std); fill(layout.wpe, 0.01)
        fill(layout.qkvw, std); fill(layout.attprojw, projStd)
        fill(layout.fcw, std); fill(layout.fcprojw, projStd)
        ones(layout.ln1w); ones(layout.ln2w); ones(layout.lnfw)
    }

    public var parameterCount: Int { layout.count }

    /// An independent copy of the weights and the attached adapter (no training state).
    public func clone() -> LanguageModel {
        let copy = try! LanguageModel(config: config, seed: 0)  // config was validated when self was made
        copy.params.base.update(from: params.base, count: layout.count)
        if let lora {
            let w = LoRAWeights(config: lora.config, model: config)
            w.params.base.update(from: lora.params.base, count: lora.params.count)
            copy.lora = w
        }
        return copy
    }

    /// All base parameters as one flat vector (layout order). Valid only while the model is alive.
    public var parameters: UnsafeMutableBufferPointer<Float> { params.buffer }

    // MARK: LoRA

    /// The current adapter's configuration, nil when none is attached.
    public var loraConfig: LoRAConfig? { lora?.config }

    /// Attaches a fresh adapter (A random from `seed`, B = 0), replacing any previous one.
    public func attachLoRA(_ config: LoRAConfig, seed: UInt64) throws(EngineError) {
        guard config.rank > 0, !config.targets.isEmpty else {
            throw .badConfig("LoRA needs rank > 0 and at least one target (got rank \(config.rank))")
        }
        let w = LoRAWeights(config: config, model: self.config)
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
        let C = config.width, r = lora.config.rank, s = lora.config.scaling
        for slot in lora.slots {
            let w: UnsafeMutablePointer<Float>
            switch slot.target {
            case .attnQKV: w = p.qkvw + slot.layer * 3 * C * C
            case .attnProj: w = p.attprojw + slot.layer * C * C
            case .mlpFC: w = p.fcw + slot.layer * 4 * C * C
            case .mlpProj: w = p.fcprojw + slot.layer * 4 * C * C
            }
            // W[out,in] += s · B[out,r] · A[r,in]
            gemm(w, lora.params.base + slot.b, lora.params.base + slot.a, M: slot.out, N: slot.inp, K: r, alpha: s)
        }
        detachLoRA()
    }

    // MARK: named tensors (checkpoint order, HF shapes are handled by the checkpoint code)

    /// (name, [out,in]-layout shape, slot) for every base tensor; per-layer tensors are split by layer.
    func namedSlots() -> [(name: String, shape: [Int], offset: Int)] {
        let C = config.width, L = config.layers
        var out: [(String, [Int], Int)] = [
            ("wte.weight", [config.vocabSize, C], layout.wte.offset),
            ("wpe.weight", [config.contextLength, C], layout.wpe.offset),
        ]
        let per: [(String, ParameterLayout.Slot, [Int])] = [
            ("ln_1.weight", layout.ln1w, [C]), ("ln_1.bias", layout.ln1b, [C]),
            ("attn.c_attn.weight", layout.qkvw, [3 * C, C]), ("attn.c_attn.bias", layout.qkvb, [3 * C]),
            ("attn.c_proj.weight", layout.attprojw, [C, C]), ("attn.c_proj.bias", layout.attprojb, [C]),
            ("ln_2.weight", layout.ln2w, [C]), ("ln_2.bias", layout.ln2b, [C]),
            ("mlp.c_fc.weight", layout.fcw, [4 * C, C]), ("mlp.c_fc.bias", layout.fcb, [4 * C]),
            ("mlp.c_proj.weight", layout.fcprojw, [C, 4 * C]), ("mlp.c_proj.bias", layout.fcprojb, [C]),
        ]
        for l in 0..<L {
            for (n, s, shape) in per {
                out.append(("h.\(l).\(n)", shape, s.offset + l * shape.reduce(1, *)))
            }
        }
        out.append(("ln_f.weight", [C], layout.lnfw.offset))
        out.append(("ln_f.bias", [C], layout.lnfb.offset))
        return out
    }
}

/// c[M,N] += alpha · a[M,K] · b[K,N]
func gemm(_ c: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
          M: Int, N: Int, K: Int, alpha: Float) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(M), Int32(N), Int32(K),
                alpha, a, Int32(K), b, Int32(N), 1, c, Int32(N))
}
