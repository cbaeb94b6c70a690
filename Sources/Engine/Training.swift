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
    // per layer, stride = count of one layer. qkv holds q and k after rotation (Llama); fch is c_fc's output or
    // gate|up, fchGelu the activation (GELU or SwiGLU) of it.
    let ln1, ln1Mean, ln1Rstd, qkv, atty, att, res2, ln2, ln2Mean, ln2Rstd, fch, fchGelu, res3: UnsafeMutablePointer<Float>
    let encoded, lnf, lnfMean, lnfRstd, logits, losses: UnsafeMutablePointer<Float>
    let loraU: UnsafeMutablePointer<Float>  // [slot][N, r]
    // backward scratch (one layer at a time)
    let dres, dln, dqkv, datty, dfch, dfchGelu, dattScratch, du: UnsafeMutablePointer<Float>
    let N: Int
    /// Per-layer strides of the per-layer buffers.
    let sQKV, sAtty, sAtt, sFch, sAct: Int

    init(config c: ModelConfig, B: Int, T: Int, loraSlots: Int, rank: Int) {
        self.B = B; self.T = T
        let N = B * T, C = c.width, NH = c.heads, L = c.layers, V = c.vocabSize
        self.N = N
        sQKV = N * c.qkvDim; sAtty = N * c.qDim; sAtt = B * NH * T * T; sFch = N * c.mlpInDim; sAct = N * c.mlpWidth
        let sizes = [N * C, N, N, sQKV, sAtty, sAtt, N * C, N * C, N, N, sFch, sAct, N * C].map { $0 * L }
            + [N * C, N * C, N, N, N * V, N, loraSlots * N * rank]
            + [N * C, N * C, sQKV, sAtty, sFch, sAct, T * T, N * max(rank, 1)]
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
        if trainable == .base, let quant { throw .badInput("the base is quantized (\(quant.format)) and frozen: train a LoRA adapter on it") }
        _ = ensureActivations(B: B, T: T)
        if trainable == .base, baseGrads == nil { baseGrads = Arena(count: layout.count) }
    }

    /// LayerNorm (GPT-2) or RMSNorm (Llama) of x[N,C] into out, saving mean/rstd for the backward.
    func normForward(_ out: UnsafeMutablePointer<Float>, _ mean: UnsafeMutablePointer<Float>?, _ rstd: UnsafeMutablePointer<Float>?,
                     _ x: UnsafeMutablePointer<Float>, _ w: UnsafeMutablePointer<Float>, _ b: UnsafeMutablePointer<Float>?, N: Int) {
        if let b {
            Layers.layerNormForward(out, mean, rstd, x, w, b, N: N, C: config.width, eps: config.layerNormEpsilon)
        } else {
            Layers.rmsNormForward(out, rstd, x, w, N: N, C: config.width, eps: config.layerNormEpsilon)
        }
    }

    func normBackward(_ dx: UnsafeMutablePointer<Float>, _ dw: UnsafeMutablePointer<Float>?, _ db: UnsafeMutablePointer<Float>?,
                      _ dout: UnsafeMutablePointer<Float>, _ x: UnsafeMutablePointer<Float>, _ w: UnsafeMutablePointer<Float>,
                      hasBias: Bool, _ mean: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>, N: Int) {
        if hasBias {
            Layers.layerNormBackward(dx, dw, db, dout, x, w, mean, rstd, N: N, C: config.width)
        } else {
            Layers.rmsNormBackward(dx, dw, dout, x, w, rstd, N: N, C: config.width)
        }
    }

    /// Rotates q and k of qkv[B,T,qkvDim] in place for positions start..<start+T of each sequence (inverse: backward).
    func rotate(_ qkv: UnsafeMutablePointer<Float>, B: Int, T: Int, start: Int, inverse: Bool = false) {
        guard let rope else { return }
        let table = rope.forLength(start + T)
        let c = config, stride = c.qkvDim
        table.cos.withUnsafeBufferPointer { cos in
            table.sin.withUnsafeBufferPointer { sin in
                for b in 0..<B {
                    let row = qkv + b * T * stride
                    Layers.ropeForward(row, stride: stride, T: T, heads: c.heads, hs: c.headSize, start: start,
                                       cos: cos.baseAddress!, sin: sin.baseAddress!, inverse: inverse)
                    Layers.ropeForward(row + c.qDim, stride: stride, T: T, heads: c.kvHeads, hs: c.headSize, start: start,
                                       cos: cos.baseAddress!, sin: sin.baseAddress!, inverse: inverse)
                }
            }
        }
    }

    /// GELU (GPT-2) or SwiGLU (Llama) of the first MLP matrix's output fch[N, mlpInDim] into out[N, mlpWidth].
    func activationForward(_ out: UnsafeMutablePointer<Float>, _ fch: UnsafeMutablePointer<Float>, N: Int) {
        if config.architecture == .llama {
            Layers.swigluForward(out, fch, N: N, M: config.mlpWidth)
        } else {
            Layers.geluForward(out, fch, N: N * config.mlpWidth)
        }
    }

    /// Training forward over inputs/targets [B,T] (ids checked by the caller); returns the mean cross-entropy.
    func forward(B: Int, T: Int) -> Float {
        let a = acts!
        let c = config, C = c.width, L = c.layers, V = c.vocabSize, N = B * T
        precondition(a.B == B && a.T == T, "ensureActivations first")
        if let lora, quant == nil { refreshMerged(lora) }
        embedTokens(a.encoded, a.tokens, B: B, T: T, start: 0)
        for l in 0..<L {
            let x = l == 0 ? a.encoded : a.res3 + (l - 1) * N * C
            let ln1 = a.ln1 + l * N * C, qkv = a.qkv + l * a.sQKV, atty = a.atty + l * a.sAtty
            let att = a.att + l * a.sAtt, res2 = a.res2 + l * N * C, ln2 = a.ln2 + l * N * C
            let fch = a.fch + l * a.sFch, fchGelu = a.fchGelu + l * a.sAct, res3 = a.res3 + l * N * C
            normForward(ln1, a.ln1Mean + l * N, a.ln1Rstd + l * N, x, p.ln1w + l * C, p.ln1b.map { $0 + l * C }, N: N)
            linearForward(qkv, ln1, l, .qkv, N: N, a: a)
            rotate(qkv, B: B, T: T, start: 0)
            Layers.attentionForward(atty, att, q: qkv, qs: c.qkvDim, k: qkv + c.qDim, v: qkv + c.qDim + c.kvDim, ks: c.qkvDim,
                                    B: B, T: T, Tk: T, NH: c.heads, NKV: c.kvHeads, hs: c.headSize, start: 0, window: c.slidingWindow)
            linearForward(res2, atty, l, .attnOut, N: N, a: a)
            for i in 0..<(N * C) { res2[i] += x[i] }
            normForward(ln2, a.ln2Mean + l * N, a.ln2Rstd + l * N, res2, p.ln2w + l * C, p.ln2b.map { $0 + l * C }, N: N)
            linearForward(fch, ln2, l, .mlpIn, N: N, a: a)
            activationForward(fchGelu, fch, N: N)
            linearForward(res3, fchGelu, l, .mlpOut, N: N, a: a)
            for i in 0..<(N * C) { res3[i] += res2[i] }
        }
        let last = a.res3 + (L - 1) * N * C
        normForward(a.lnf, a.lnfMean, a.lnfRstd, last, p.lnfw, p.lnfb, N: N)
        headForward(a.logits, a.lnf, N: N)
        let total = Layers.softmaxCrossEntropyForward(a.logits, a.losses, a.targets, N: N, V: V)
        return Float(total / Double(N))
    }

    /// Backward of the last forward for loss = mean cross-entropy. Gradients accumulate into
    /// baseGrads (.base) or the LoRA grads (.adapter); callers zero them between steps.
    func backward(B: Int, T: Int, trainable: TrainableSet) {
        let a = acts!
        let c = config, C = c.width, L = c.layers, V = c.vocabSize, N = B * T
        let full = trainable == .base, gpt2 = c.architecture == .gpt2
        let g: ParameterTensors? = full ? ParameterTensors(base: baseGrads!.base, layout: layout) : nil
        Layers.softmaxCrossEntropyBackward(a.logits, a.targets, N: N, V: V, scale: 1 / Float(N))
        a.dln.update(repeating: 0, count: N * C)
        headBackward(a.dln, g.map { headMatrix(in: $0) }, a.logits, a.lnf, N: N)
        a.dres.update(repeating: 0, count: N * C)
        let last = a.res3 + (L - 1) * N * C
        normBackward(a.dres, g?.lnfw, g?.lnfb, a.dln, last, p.lnfw, hasBias: gpt2, a.lnfMean, a.lnfRstd, N: N)
        // Adapter mode: nothing below the lowest adapted block trains, so stop there and skip its input gradient.
        let lowest = full ? 0 : (lora?.slots.first?.layer ?? 0)
        for l in stride(from: L - 1, through: lowest, by: -1) {
            let x = l == 0 ? a.encoded : a.res3 + (l - 1) * N * C
            let ln1 = a.ln1 + l * N * C, qkv = a.qkv + l * a.sQKV, atty = a.atty + l * a.sAtty
            let att = a.att + l * a.sAtt, res2 = a.res2 + l * N * C, ln2 = a.ln2 + l * N * C
            let fch = a.fch + l * a.sFch, fchGelu = a.fchGelu + l * a.sAct
            // MLP branch: dres = d(res3) flows into d(res2) directly and through the MLP
            a.dfchGelu.update(repeating: 0, count: a.sAct)
            linearBackward(a.dfchGelu, a.dres, fchGelu, l, .mlpOut, N: N, a: a, g: g)
            a.dfch.update(repeating: 0, count: a.sFch)
            if gpt2 {
                Layers.geluBackward(a.dfch, fch, a.dfchGelu, N: a.sAct)
            } else {
                Layers.swigluBackward(a.dfch, fch, a.dfchGelu, N: N, M: c.mlpWidth)
            }
            a.dln.update(repeating: 0, count: N * C)
            linearBackward(a.dln, a.dfch, ln2, l, .mlpIn, N: N, a: a, g: g)
            normBackward(a.dres, g.map { $0.ln2w + l * C }, g?.ln2b.map { $0 + l * C }, a.dln, res2, p.ln2w + l * C,
                         hasBias: gpt2, a.ln2Mean + l * N, a.ln2Rstd + l * N, N: N)
            // attention branch: dres is now d(res2) = d(attention output) and flows into d(x)
            a.datty.update(repeating: 0, count: a.sAtty)
            linearBackward(a.datty, a.dres, atty, l, .attnOut, N: N, a: a, g: g)
            a.dqkv.update(repeating: 0, count: a.sQKV)
            Layers.attentionBackward(a.dqkv, a.dattScratch, a.datty, qkv, att, B: B, T: T, NH: c.heads, NKV: c.kvHeads,
                                     hs: c.headSize, window: c.slidingWindow)
            rotate(a.dqkv, B: B, T: T, start: 0, inverse: true)
            let needInput = full || l > lowest
            if needInput { a.dln.update(repeating: 0, count: N * C) }
            linearBackward(needInput ? a.dln : nil, a.dqkv, ln1, l, .qkv, N: N, a: a, g: g)
            if needInput {
                normBackward(a.dres, g.map { $0.ln1w + l * C }, g?.ln1b.map { $0 + l * C }, a.dln, x, p.ln1w + l * C,
                             hasBias: gpt2, a.ln1Mean + l * N, a.ln1Rstd + l * N, N: N)
            }
        }
        if let g { Layers.embedBackward(g.wte, g.wpe, a.dres, a.tokens, B: B, T: T, C: C) }
    }
}
