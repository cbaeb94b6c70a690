/// Which parameters a backward pass produces gradients for.
public enum TrainableSet: Sendable, Equatable {
    /// All base parameters (pretraining, full fine-tuning).
    case base
    /// Only the attached LoRA adapter; base weight gradients are skipped, dX still flows.
    case adapter
}

/// Activations of one training forward pass for up to B×T tokens, in one arena, plus backward scratch.
final class Activations {
    let B: Int, T: Int
    let arena: Arena
    let tokens: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>
    // per layer, stride = count of one layer
    let ln1, ln1Mean, ln1Rstd, qkv, atty, att, res2, ln2, ln2Mean, ln2Rstd, fch, fchGelu, res3: UnsafeMutablePointer<Float>
    let encoded, lnf, lnfMean, lnfRstd, logits, losses: UnsafeMutablePointer<Float>
    let loraU: UnsafeMutablePointer<Float>  // [slot][N, r]
    // backward scratch (one layer at a time)
    let dres, dln, dqkv, datty, dfch, dfchGelu, dattScratch, du: UnsafeMutablePointer<Float>
    let N: Int, C: Int, NH: Int

    init(config c: ModelConfig, B: Int, T: Int, loraSlots: Int, rank: Int) {
        self.B = B; self.T = T
        let N = B * T, C = c.width, NH = c.heads, L = c.layers, V = c.vocabSize
        self.N = N; self.C = C; self.NH = NH
        let sizes = [N * C, N, N, N * 3 * C, N * C, B * NH * T * T, N * C, N * C, N, N, N * 4 * C, N * 4 * C, N * C].map { $0 * L }
            + [N * C, N * C, N, N, N * V, N, loraSlots * N * rank]
            + [N * C, N * C, N * 3 * C, N * C, N * 4 * C, N * 4 * C, T * T, N * max(rank, 1)]
        arena = Arena(count: sizes.reduce(0, +))
        var at = arena.base
        func take(_ i: Int) -> UnsafeMutablePointer<Float> { defer { at += sizes[i] }; return at }
        ln1 = take(0); ln1Mean = take(1); ln1Rstd = take(2); qkv = take(3); atty = take(4); att = take(5)
        res2 = take(6); ln2 = take(7); ln2Mean = take(8); ln2Rstd = take(9); fch = take(10); fchGelu = take(11); res3 = take(12)
        encoded = take(13); lnf = take(14); lnfMean = take(15); lnfRstd = take(16); logits = take(17); losses = take(18)
        loraU = take(19)
        dres = take(20); dln = take(21); dqkv = take(22); datty = take(23); dfch = take(24); dfchGelu = take(25)
        dattScratch = take(26); du = take(27)
        tokens = .allocate(capacity: N); targets = .allocate(capacity: N)
        tokens.initialize(repeating: 0, count: N); targets.initialize(repeating: 0, count: N)
    }
    deinit { tokens.deallocate(); targets.deallocate() }
}

extension LanguageModel {
    /// Makes sure training buffers for B×T tokens exist (allocates only when the shape grows).
    func ensureActivations(B: Int, T: Int) -> Activations {
        if let a = acts, a.B == B, a.T == T { return a }
        let a = Activations(config: config, B: B, T: T, loraSlots: lora?.slots.count ?? 0, rank: lora?.config.rank ?? 0)
        acts = a
        return a
    }

    /// Prepares buffers for B×T training steps, so later steps do not allocate.
    public func prepareTraining(batch B: Int, sequence T: Int, trainable: TrainableSet) throws(EngineError) {
        guard B > 0, T > 0, T <= config.contextLength else {
            throw .badInput("batch \(B) × sequence \(T) must be positive with sequence ≤ context \(config.contextLength)")
        }
        if trainable == .adapter, lora == nil { throw .badInput("adapter training needs an attached LoRA adapter") }
        _ = ensureActivations(B: B, T: T)
        if trainable == .base, baseGrads == nil { baseGrads = Arena(count: layout.count) }
    }

    /// Training forward over inputs/targets [B,T] (ids checked by the caller); returns the mean cross-entropy.
    func forward(B: Int, T: Int) -> Float {
        let a = acts!
        let C = config.width, L = config.layers, NH = config.heads, V = config.vocabSize, N = B * T
        let eps = config.layerNormEpsilon
        precondition(a.B == B && a.T == T, "ensureActivations first")
        if let lora { refreshMerged(lora) }
        Layers.embedForward(a.encoded, a.tokens, p.wte, p.wpe, B: B, T: T, C: C)
        for l in 0..<L {
            let x = l == 0 ? a.encoded : a.res3 + (l - 1) * N * C
            let ln1 = a.ln1 + l * N * C, qkv = a.qkv + l * N * 3 * C, atty = a.atty + l * N * C
            let att = a.att + l * B * NH * T * T, res2 = a.res2 + l * N * C, ln2 = a.ln2 + l * N * C
            let fch = a.fch + l * N * 4 * C, fchGelu = a.fchGelu + l * N * 4 * C, res3 = a.res3 + l * N * C
            Layers.layerNormForward(ln1, a.ln1Mean + l * N, a.ln1Rstd + l * N, x, p.ln1w + l * C, p.ln1b + l * C, N: N, C: C, eps: eps)
            linearForward(qkv, ln1, l, .attnQKV, N: N, a: a)
            Layers.attentionForward(atty, att, q: qkv, qs: 3 * C, k: qkv + C, v: qkv + 2 * C, ks: 3 * C,
                                    B: B, T: T, Tk: T, C: C, NH: NH, start: 0)
            linearForward(res2, atty, l, .attnProj, N: N, a: a)
            for i in 0..<(N * C) { res2[i] += x[i] }
            Layers.layerNormForward(ln2, a.ln2Mean + l * N, a.ln2Rstd + l * N, res2, p.ln2w + l * C, p.ln2b + l * C, N: N, C: C, eps: eps)
            linearForward(fch, ln2, l, .mlpFC, N: N, a: a)
            Layers.geluForward(fchGelu, fch, N: N * 4 * C)
            linearForward(res3, fchGelu, l, .mlpProj, N: N, a: a)
            for i in 0..<(N * C) { res3[i] += res2[i] }
        }
        let last = a.res3 + (L - 1) * N * C
        Layers.layerNormForward(a.lnf, a.lnfMean, a.lnfRstd, last, p.lnfw, p.lnfb, N: N, C: C, eps: eps)
        Layers.matmulForward(a.logits, a.lnf, p.wte, nil, N: N, C: C, OC: V)
        let total = Layers.softmaxCrossEntropyForward(a.logits, a.losses, a.targets, N: N, V: V)
        return Float(total / Double(N))
    }

    /// Backward of the last forward for loss = mean cross-entropy. Gradients accumulate into
    /// baseGrads (.base) or the LoRA grads (.adapter); callers zero them between steps.
    func backward(B: Int, T: Int, trainable: TrainableSet) {
        let a = acts!
        let C = config.width, L = config.layers, NH = config.heads, V = config.vocabSize, N = B * T
        let full = trainable == .base
        let g: ParameterTensors? = full ? ParameterTensors(base: baseGrads!.base, layout: layout) : nil
        Layers.softmaxCrossEntropyBackward(a.logits, a.targets, N: N, V: V, scale: 1 / Float(N))
        a.dln.update(repeating: 0, count: N * C)
        Layers.matmulBackward(a.dln, g?.wte, nil, a.logits, a.lnf, p.wte, N: N, C: C, OC: V)
        a.dres.update(repeating: 0, count: N * C)
        let last = a.res3 + (L - 1) * N * C
        Layers.layerNormBackward(a.dres, g?.lnfw, g?.lnfb, a.dln, last, p.lnfw, a.lnfMean, a.lnfRstd, N: N, C: C)
        // Adapter mode: nothing below the lowest adapted block trains, so stop there and skip its input gradient.
        let lowest = full ? 0 : (lora?.slots.first?.layer ?? 0)
        for l in stride(from: L - 1, through: lowest, by: -1) {
            let x = l == 0 ? a.encoded : a.res3 + (l - 1) * N * C
            let ln1 = a.ln1 + l * N * C, qkv = a.qkv + l * N * 3 * C, atty = a.atty + l * N * C
            let att = a.att + l * B * NH * T * T, res2 = a.res2 + l * N * C, ln2 = a.ln2 + l * N * C
            let fch = a.fch + l * N * 4 * C, fchGelu = a.fchGelu + l * N * 4 * C
            // MLP branch: dres is d(res3) = d(fcproj) and flows straight into d(res2)
            a.dfchGelu.update(repeating: 0, count: N * 4 * C)
            linearBackward(a.dfchGelu, a.dres, fchGelu, l, .mlpProj, N: N, a: a, g: g)
            a.dfch.update(repeating: 0, count: N * 4 * C)
            Layers.geluBackward(a.dfch, fch, a.dfchGelu, N: N * 4 * C)
            a.dln.update(repeating: 0, count: N * C)
            linearBackward(a.dln, a.dfch, ln2, l, .mlpFC, N: N, a: a, g: g)
            Layers.layerNormBackward(a.dres, g.map { $0.ln2w + l * C }, g.map { $0.ln2b + l * C }, a.dln, res2,
                                     p.ln2w + l * C, a.ln2Mean + l * N, a.ln2Rstd + l * N, N: N, C: C)
            // attention branch: dres is now d(res2) = d(attproj) and flows into d(x)
            a.datty.update(repeating: 0, count: N * C)
            linearBackward(a.datty, a.dres, atty, l, .attnProj, N: N, a: a, g: g)
            a.dqkv.update(repeating: 0, count: N * 3 * C)
            Layers.attentionBackward(a.dqkv, a.dattScratch, a.datty, qkv, att, B: B, T: T, C: C, NH: NH)
            let needInput = full || l > lowest
            if needInput { a.dln.update(repeating: 0, count: N * C) }
            linearBackward(needInput ? a.dln : nil, a.dqkv, ln1, l, .attnQKV, N: N, a: a, g: g)
            if needInput { Layers.layerNormBackward(a.dres, g.map { $0.ln1w + l * C }, g.map { $0.ln1b + l * C }, a.dln, x,
                                     p.ln1w + l * C, a.ln1Mean + l * N, a.ln1Rstd + l * N, N: N, C: C) }
        }
        if let g { Layers.embedBackward(g.wte, g.wpe, a.dres, a.tokens, B: B, T: T, C: C) }
    }

    /// Base weights, bias and LoRA slot of one projection: (w [out,in], bias [out], in, out).
    func projection(_ l: Int, _ t: LoRATarget, _ q: ParameterTensors) -> (w: UnsafeMutablePointer<Float>, b: UnsafeMutablePointer<Float>, inp: Int, out: Int) {
        let C = config.width
        switch t {
        case .attnQKV: return (q.qkvw + l * 3 * C * C, q.qkvb + l * 3 * C, C, 3 * C)
        case .attnProj: return (q.attprojw + l * C * C, q.attprojb + l * C, C, C)
        case .mlpFC: return (q.fcw + l * 4 * C * C, q.fcb + l * 4 * C, C, 4 * C)
        case .mlpProj: return (q.fcprojw + l * 4 * C * C, q.fcprojb + l * C, 4 * C, C)
        }
    }

    /// out[N,out] = inp·Wᵀ + b (+ s·(inp·Aᵀ)·Bᵀ when adapted); u saved for backward when `a` is given.
    func linearForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafeMutablePointer<Float>, _ l: Int, _ t: LoRATarget,
                       N: Int, a: Activations?, uScratch: UnsafeMutablePointer<Float>? = nil) {
        let pr = projection(l, t, p)
        guard let lora, let ti = LoRATarget.allCases.firstIndex(of: t), let si = lora.index[l][ti] else {
            Layers.matmulForward(out, inp, pr.w, pr.b, N: N, C: pr.inp, OC: pr.out)
            return
        }
        let s = lora.slots[si], r = lora.config.rank
        if let a {
            // training: merged weight for the output, u = inp·Aᵀ kept for the adapter gradients
            Layers.matmulForward(out, inp, lora.merged.base + s.merged, pr.b, N: N, C: pr.inp, OC: pr.out)
            Layers.matmulForward(a.loraU + si * a.N * r, inp, lora.params.base + s.a, nil, N: N, C: s.inp, OC: r)
        } else {
            Layers.matmulForward(out, inp, pr.w, pr.b, N: N, C: pr.inp, OC: pr.out)
            Layers.loraForward(out, uScratch!, inp, lora.params.base + s.a, lora.params.base + s.b,
                               N: N, C: s.inp, OC: s.out, r: r, scale: lora.config.scaling)
        }
    }

    /// W_merged = W + s·B·A for every adapted projection (before each training forward).
    func refreshMerged(_ lora: LoRAWeights) {
        for s in lora.slots {
            let w = projection(s.layer, s.target, p).w, m = lora.merged.base + s.merged
            m.update(from: w, count: s.inp * s.out)
            gemm(m, lora.params.base + s.b, lora.params.base + s.a, M: s.out, N: s.inp, K: lora.config.rank, alpha: lora.config.scaling)
        }
    }

    /// dinp += dout·W (+ LoRA path); base grads when g is given, LoRA grads whenever adapted.
    func linearBackward(_ dinp: UnsafeMutablePointer<Float>?, _ dout: UnsafeMutablePointer<Float>, _ inp: UnsafeMutablePointer<Float>,
                        _ l: Int, _ t: LoRATarget, N: Int, a: Activations, g: ParameterTensors?) {
        let pr = projection(l, t, p)
        let gp = g.map { projection(l, t, $0) }
        guard let lora, let ti = LoRATarget.allCases.firstIndex(of: t), let si = lora.index[l][ti] else {
            Layers.matmulBackward(dinp, gp?.w, gp?.b, dout, inp, pr.w, N: N, C: pr.inp, OC: pr.out)
            return
        }
        let s = lora.slots[si], r = lora.config.rank
        // dinp through the merged weight covers the adapter path too, so loraBackward gets no dinp.
        Layers.matmulBackward(dinp, gp?.w, gp?.b, dout, inp, lora.merged.base + s.merged, N: N, C: pr.inp, OC: pr.out)
        Layers.loraBackward(nil, lora.grads.base + s.a, lora.grads.base + s.b, a.du, dout, a.loraU + si * a.N * r, inp,
                            lora.params.base + s.a, lora.params.base + s.b, N: N, C: s.inp, OC: s.out, r: r, scale: lora.config.scaling)
    }
}
