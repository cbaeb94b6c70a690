import COpenBLAS

/// One block split across workers (multi-access split inference). A block is
///   x' = x + Σ_head shares attention(x),   x'' = x' + Σ_column shares mlp(x'),
/// because attention heads and MLP hidden columns contribute additively through the output projections.
/// The attached LoRA adapter is applied unmerged (a stage node switches cluster adapters per request): every LoRA
/// product is linear in the split dimension, so the shares still sum to the full adapted block. Grouped-query
/// attention: a head share computes the key/value heads its query heads read (shares aligned to whole groups
/// compute each key/value head once).
extension LanguageModel {
    /// Heads `heads` of block `layer` on residual input x [T, C] at positions startPosition..<+T: writes their
    /// key/value heads into `cache` and returns attn_out[:, heads]·W_oᵀ [T, C] (+ bias when the share starts at head 0).
    public func partialAttention(layer l: Int, heads: Range<Int>, hidden x: [Float], cache: KVCache,
                                 startPosition: Int) throws(EngineError) -> [Float] {
        let c = config, C = c.width, hs = c.headSize, group = c.heads / c.kvHeads
        try checkShare(layer: l, hidden: x)
        guard heads.lowerBound >= 0, heads.upperBound <= c.heads, !heads.isEmpty else {
            throw .badInput("head share \(heads) outside 0..<\(c.heads)")
        }
        guard cache.layers.contains(l), cache.width == c.kvDim else { throw .badInput("KV cache covers blocks \(cache.layers), need block \(l)") }
        let T = x.count / C, Tk = startPosition + T
        guard startPosition >= 0, startPosition <= cache.length, Tk <= c.contextLength else {
            throw .badInput("positions \(startPosition)..<\(Tk) invalid for cache length \(cache.length), context \(c.contextLength)")
        }
        let kvHeads = (heads.lowerBound / group)..<((heads.upperBound - 1) / group + 1)
        let S = heads.count * hs, K = kvHeads.count * hs, q0 = heads.lowerBound * hs, kv0 = kvHeads.lowerBound * hs
        let r = lora?.config.rank ?? 1
        let scratch = Arena(count: T * C + T * (S + 2 * K) + heads.count * T * Tk + T * S + T * r + T * C)
        let ln = scratch.base, q = ln + T * C, k = q + T * S, v = k + T * K, att = v + T * K
        let atty = att + heads.count * T * Tk, u = atty + T * S, out = u + T * r
        var xs = x
        xs.withUnsafeMutableBufferPointer { xb in
            normForward(ln, nil, nil, xb.baseAddress!, p.ln1w + l * C, p.ln1b.map { $0 + l * C }, N: T)
        }
        // This share's rows of the fused q/k/v matrix.
        rowsForward(q, ln, l, .qkv, rows: q0..<(q0 + S), N: T, u: u)
        rowsForward(k, ln, l, .qkv, rows: (c.qDim + kv0)..<(c.qDim + kv0 + K), N: T, u: u)
        rowsForward(v, ln, l, .qkv, rows: (c.qDim + c.kvDim + kv0)..<(c.qDim + c.kvDim + kv0 + K), N: T, u: u)
        if let rope {
            let table = rope.forLength(Tk)
            table.cos.withUnsafeBufferPointer { cos in
                table.sin.withUnsafeBufferPointer { sin in
                    Layers.ropeForward(q, stride: S, T: T, heads: heads.count, hs: hs, start: startPosition, cos: cos.baseAddress!, sin: sin.baseAddress!)
                    Layers.ropeForward(k, stride: K, T: T, heads: kvHeads.count, hs: hs, start: startPosition, cos: cos.baseAddress!, sin: sin.baseAddress!)
                }
            }
        }
        let ci = l - cache.layers.lowerBound
        let kc = cache.keys.base + ci * cache.contextLength * c.kvDim, vc = cache.values.base + ci * cache.contextLength * c.kvDim
        for t in 0..<T {
            (kc + (startPosition + t) * c.kvDim + kv0).update(from: k + t * K, count: K)
            (vc + (startPosition + t) * c.kvDim + kv0).update(from: v + t * K, count: K)
        }
        Layers.attentionForward(atty, att, q: q, qs: S, k: kc + kv0, v: vc + kv0, ks: c.kvDim, B: 1, T: T, Tk: Tk,
                                NH: heads.count, NKV: kvHeads.count, hs: hs, start: startPosition, window: c.slidingWindow,
                                group: group, firstHead: heads.lowerBound)
        columnsForward(out, atty, l, .attnOut, columns: q0..<(q0 + S), N: T, u: u)
        cache.length = max(cache.length, Tk)
        return Array(UnsafeBufferPointer(start: out, count: T * C))
    }

    /// MLP hidden columns `columns` (of mlpWidth) of block `layer` on x [T, C] (the residual after attention):
    /// returns act(norm(x)·W_in[columns]ᵀ)·W_out[:, columns]ᵀ [T, C] (+ bias when the share starts at column 0),
    /// where for Llama W_in's columns are those rows of gate and of up.
    public func partialMLP(layer l: Int, columns: Range<Int>, hidden x: [Float]) throws(EngineError) -> [Float] {
        let c = config, C = c.width, M = c.mlpWidth
        try checkShare(layer: l, hidden: x)
        guard columns.lowerBound >= 0, columns.upperBound <= M, !columns.isEmpty else {
            throw .badInput("MLP column share \(columns) outside 0..<\(M)")
        }
        let T = x.count / C, n = columns.count, r = lora?.config.rank ?? 1
        let parts = c.architecture == .llama ? 2 : 1
        let scratch = Arena(count: T * C + T * parts * n + T * n + T * r + T * C)
        let ln = scratch.base, h = ln + T * C, g = h + T * parts * n, u = g + T * n, out = u + T * r
        var xs = x
        xs.withUnsafeMutableBufferPointer { xb in
            normForward(ln, nil, nil, xb.baseAddress!, p.ln2w + l * C, p.ln2b.map { $0 + l * C }, N: T)
        }
        if parts == 2 {
            // gate and up rows of these columns, side by side per token: [T, 2n] as SwiGLU reads them
            rowsForward(h, ln, l, .mlpIn, rows: columns, N: T, u: u, ldo: 2 * n)
            rowsForward(h + n, ln, l, .mlpIn, rows: (M + columns.lowerBound)..<(M + columns.upperBound), N: T, u: u, ldo: 2 * n)
            Layers.swigluForward(g, h, N: T, M: n)
        } else {
            rowsForward(h, ln, l, .mlpIn, rows: columns, N: T, u: u)
            Layers.geluForward(g, h, N: T * n)
        }
        columnsForward(out, g, l, .mlpOut, columns: columns, N: T, u: u)
        return Array(UnsafeBufferPointer(start: out, count: T * C))
    }

    /// dst[N, rows.count] (rows `ldo` apart) = inp[N, in]·W_m[rows]ᵀ + b[rows] + the adapters' share of those rows.
    func rowsForward(_ dst: Ptr, _ inp: Ptr, _ l: Int, _ m: Projection, rows: Range<Int>, N: Int, u: Ptr, ldo: Int? = nil) {
        let d = m.dims(config), n = rows.count, ld = ldo ?? n
        if let b = bias(m, layer: l) {
            for t in 0..<N { (dst + t * ld).update(from: b + rows.lowerBound, count: n) }
        } else {
            for t in 0..<N { (dst + t * ld).update(repeating: 0, count: n) }
        }
        if let q = quant?.matrix(.block(m, l)) {
            let tile = Arena(count: n * d.inp)
            q.dequantize(rows: rows, into: tile.base)
            gemmStrided(dst, ld, inp, d.inp, tile.base, d.inp, M: N, N: n, K: d.inp, alpha: 1, beta: 1)
        } else {
            gemmStrided(dst, ld, inp, d.inp, denseMatrix(m, layer: l) + rows.lowerBound * d.inp, d.inp, M: N, N: n, K: d.inp, alpha: 1, beta: 1)
        }
        guard let lora else { return }
        let r = lora.config.rank
        for si in lora.byMatrix[l][m.rawValue] {
            let s = lora.slots[si]
            let lo = max(s.rows.lowerBound, rows.lowerBound), hi = min(s.rows.upperBound, rows.upperBound)
            guard lo < hi else { continue }
            gemmStrided(u, r, inp, d.inp, lora.params.base + s.a, d.inp, M: N, N: r, K: d.inp, alpha: 1, beta: 0)
            gemmStrided(dst + (lo - rows.lowerBound), ld, u, r, lora.params.base + s.b + (lo - s.rows.lowerBound) * r, r,
                        M: N, N: hi - lo, K: r, alpha: lora.config.scaling, beta: 1)
        }
    }

    /// out[N, C] = inp[N, n]·W_m[:, columns]ᵀ (+ bias when columns start at 0) + the adapters' share of those columns.
    func columnsForward(_ out: Ptr, _ inp: Ptr, _ l: Int, _ m: Projection, columns: Range<Int>, N: Int, u: Ptr) {
        let d = m.dims(config), n = columns.count, c0 = columns.lowerBound
        if c0 == 0, let b = bias(m, layer: l) {
            for t in 0..<N { (out + t * d.out).update(from: b, count: d.out) }
        } else {
            out.update(repeating: 0, count: N * d.out)
        }
        if let q = quant?.matrix(.block(m, l)) {
            // row tiles of W, restricted to these columns
            let R = q.tileRows, tile = Arena(count: R * d.inp)
            for r0 in stride(from: 0, to: d.out, by: R) {
                let r1 = min(d.out, r0 + R)
                q.dequantize(rows: r0..<r1, into: tile.base)
                gemmStrided(out + r0, d.out, inp, n, tile.base + c0, d.inp, M: N, N: r1 - r0, K: n, alpha: 1, beta: 1)
            }
        } else {
            gemmStrided(out, d.out, inp, n, denseMatrix(m, layer: l) + c0, d.inp, M: N, N: d.out, K: n, alpha: 1, beta: 1)
        }
        guard let lora else { return }
        let r = lora.config.rank
        for si in lora.byMatrix[l][m.rawValue] {
            let s = lora.slots[si]
            gemmStrided(u, r, inp, n, lora.params.base + s.a + c0, d.inp, M: N, N: r, K: n, alpha: 1, beta: 0)
            gemmStrided(out + s.rows.lowerBound, d.out, u, r, lora.params.base + s.b, r, M: N, N: s.out, K: r,
                        alpha: lora.config.scaling, beta: 1)
        }
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
