import COpenBLAS

/// Tensor-parallel shares of one block with the attached LoRA adapter applied unmerged (a stage node switches
/// cluster adapters per request, so it cannot merge them into the base): see PartialBlock.swift for the math.
/// Each LoRA product is linear in the split dimension, so the shares still sum to the full adapted block.
extension LanguageModel {
    /// Heads `heads` of block `layer` on residual input x [T, C] at positions startPosition..<+T: writes their
    /// keys/values into `cache` (only those heads' columns) and returns attn_out[:, heads]·W_projᵀ [T, C]
    /// (+ bias when the share starts at head 0).
    public func partialAttention(layer l: Int, heads: Range<Int>, hidden x: [Float], cache: KVCache,
                                 startPosition: Int) throws(EngineError) -> [Float] {
        let C = config.width, NH = config.heads, hs = config.headSize
        try checkShare(layer: l, hidden: x)
        guard heads.lowerBound >= 0, heads.upperBound <= NH, !heads.isEmpty else {
            throw .badInput("head share \(heads) outside 0..<\(NH)")
        }
        guard cache.layers.contains(l), cache.width == C else { throw .badInput("KV cache covers blocks \(cache.layers), need block \(l)") }
        let T = x.count / C, Tk = startPosition + T
        guard startPosition >= 0, startPosition <= cache.length, Tk <= config.contextLength else {
            throw .badInput("positions \(startPosition)..<\(Tk) invalid for cache length \(cache.length), context \(config.contextLength)")
        }
        let S = heads.count * hs, h0 = heads.lowerBound * hs, r = lora?.config.rank ?? 1
        let scratch = Arena(count: T * C + 3 * T * S + heads.count * T * Tk + T * S + T * r + T * C)
        let ln = scratch.base, q = ln + T * C, k = q + T * S, v = k + T * S, att = v + T * S
        let atty = att + heads.count * T * Tk, u = atty + T * S, out = u + T * r
        var xs = x
        xs.withUnsafeMutableBufferPointer { xb in
            Layers.layerNormForward(ln, nil, nil, xb.baseAddress!, p.ln1w + l * C, p.ln1b + l * C, N: T, C: C, eps: config.layerNormEpsilon)
        }
        // q, k, v rows of c_attn for these heads: rows part·C + h0 ..< part·C + h0 + S.
        let w = p.qkvw + l * 3 * C * C, bias = p.qkvb + l * 3 * C
        let qkvLoRA = lora?.slot(l, .attnQKV)
        if let s = qkvLoRA, let lw = lora { gemmStrided(u, r, ln, C, lw.params.base + s.a, C, M: T, N: r, K: C, alpha: 1, beta: 0) }
        for (part, dst) in [q, k, v].enumerated() {
            let row0 = part * C + h0
            for t in 0..<T { (dst + t * S).update(from: bias + row0, count: S) }
            gemmStrided(dst, S, ln, C, w + row0 * C, C, M: T, N: S, K: C, alpha: 1, beta: 1)
            if let s = qkvLoRA, let lw = lora {
                gemmStrided(dst, S, u, r, lw.params.base + s.b + row0 * r, r, M: T, N: S, K: r, alpha: lw.config.scaling, beta: 1)
            }
        }
        let ci = l - cache.layers.lowerBound
        let kc = cache.keys.base + ci * cache.contextLength * C, vc = cache.values.base + ci * cache.contextLength * C
        for t in 0..<T {
            (kc + (startPosition + t) * C + h0).update(from: k + t * S, count: S)
            (vc + (startPosition + t) * C + h0).update(from: v + t * S, count: S)
        }
        Layers.attentionForward(atty, att, q: q, qs: S, k: kc + h0, v: vc + h0, ks: C,
                                B: 1, T: T, Tk: Tk, C: S, NH: heads.count, start: startPosition)
        // Output projection restricted to these heads' input columns.
        let pw = p.attprojw + l * C * C
        if heads.lowerBound == 0 {
            for t in 0..<T { (out + t * C).update(from: p.attprojb + l * C, count: C) }
        } else {
            out.update(repeating: 0, count: T * C)
        }
        gemmStrided(out, C, atty, S, pw + h0, C, M: T, N: C, K: S, alpha: 1, beta: 1)
        if let s = lora?.slot(l, .attnProj), let lw = lora {
            gemmStrided(u, r, atty, S, lw.params.base + s.a + h0, C, M: T, N: r, K: S, alpha: 1, beta: 0)
            gemmStrided(out, C, u, r, lw.params.base + s.b, r, M: T, N: C, K: r, alpha: lw.config.scaling, beta: 1)
        }
        cache.length = max(cache.length, Tk)
        return Array(UnsafeBufferPointer(start: out, count: T * C))
    }

    /// MLP hidden columns `columns` (of 4C) of block `layer` on x [T, C] (the residual after attention):
    /// returns gelu(ln2(x)·W_fc[columns]ᵀ)·W_proj[:, columns]ᵀ [T, C] (+ bias when the share starts at column 0).
    public func partialMLP(layer l: Int, columns: Range<Int>, hidden x: [Float]) throws(EngineError) -> [Float] {
        let C = config.width
        try checkShare(layer: l, hidden: x)
        guard columns.lowerBound >= 0, columns.upperBound <= 4 * C, !columns.isEmpty else {
            throw .badInput("MLP column share \(columns) outside 0..<\(4 * C)")
        }
        let T = x.count / C, M = columns.count, c0 = columns.lowerBound, r = lora?.config.rank ?? 1
        let scratch = Arena(count: T * C + 2 * T * M + T * r + T * C)
        let ln = scratch.base, h = ln + T * C, g = h + T * M, u = g + T * M, out = u + T * r
        var xs = x
        xs.withUnsafeMutableBufferPointer { xb in
            Layers.layerNormForward(ln, nil, nil, xb.baseAddress!, p.ln2w + l * C, p.ln2b + l * C, N: T, C: C, eps: config.layerNormEpsilon)
        }
        let fw = p.fcw + l * 4 * C * C, fb = p.fcb + l * 4 * C
        for t in 0..<T { (h + t * M).update(from: fb + c0, count: M) }
        gemmStrided(h, M, ln, C, fw + c0 * C, C, M: T, N: M, K: C, alpha: 1, beta: 1)
        if let s = lora?.slot(l, .mlpFC), let lw = lora {
            gemmStrided(u, r, ln, C, lw.params.base + s.a, C, M: T, N: r, K: C, alpha: 1, beta: 0)
            gemmStrided(h, M, u, r, lw.params.base + s.b + c0 * r, r, M: T, N: M, K: r, alpha: lw.config.scaling, beta: 1)
        }
        Layers.geluForward(g, h, N: T * M)
        let pw = p.fcprojw + l * 4 * C * C
        if c0 == 0 {
            for t in 0..<T { (out + t * C).update(from: p.fcprojb + l * C, count: C) }
        } else {
            out.update(repeating: 0, count: T * C)
        }
        gemmStrided(out, C, g, M, pw + c0, 4 * C, M: T, N: C, K: M, alpha: 1, beta: 1)
        if let s = lora?.slot(l, .mlpProj), let lw = lora {
            gemmStrided(u, r, g, M, lw.params.base + s.a + c0, 4 * C, M: T, N: r, K: M, alpha: 1, beta: 0)
            gemmStrided(out, C, u, r, lw.params.base + s.b, r, M: T, N: C, K: r, alpha: lw.config.scaling, beta: 1)
        }
        return Array(UnsafeBufferPointer(start: out, count: T * C))
    }

    private func checkShare(layer l: Int, hidden x: [Float]) throws(EngineError) {
        guard l >= 0, l < config.layers else { throw .badInput("block \(l) outside 0..<\(config.layers)") }
        guard !x.isEmpty, x.count % config.width == 0 else {
            throw .badInput("hidden has \(x.count) values, not a multiple of width \(config.width)")
        }
    }
}

/// out[M,N] = alpha · a[M,K] · b[N,K]ᵀ + beta · out, with explicit row strides (sub-blocks of weights).
func gemmStrided(_ out: UnsafeMutablePointer<Float>, _ ldo: Int, _ a: UnsafePointer<Float>, _ lda: Int,
            _ b: UnsafePointer<Float>, _ ldb: Int, M: Int, N: Int, K: Int, alpha: Float, beta: Float) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(M), Int32(N), Int32(K),
                alpha, a, Int32(lda), b, Int32(ldb), beta, out, Int32(ldo))
}
