import COpenBLAS

/// One block split across workers (multi-access split inference). A block is
///   x' = x + Σ_heads attnPartial(x),   x'' = x' + Σ_columns mlpPartial(x'),
/// because attention heads and MLP hidden columns contribute additively through c_proj.
/// Exactly one worker per phase passes includeBias = true. The adapter must be merged first.
extension LanguageModel {
    /// Attention contribution [T, C] of heads `heads` of block `layer` for hidden [T, C] at startPosition;
    /// fills those heads' columns of `cache` (a KVCache covering `layer`).
    public func attentionPartial(layer: Int, heads: Range<Int>, hidden: [Float], cache: KVCache,
                                 startPosition: Int, includeBias: Bool) throws(EngineError) -> [Float] {
        let C = config.width, hs = config.headSize
        let T = try checkPartial(layer: layer, hidden: hidden)
        guard heads.lowerBound >= 0, heads.upperBound <= config.heads, !heads.isEmpty else {
            throw .badInput("heads \(heads) outside 0..<\(config.heads)")
        }
        guard cache.layers.contains(layer), startPosition >= 0, startPosition + T <= config.contextLength else {
            throw .badInput("cache for \(cache.layers) cannot hold block \(layer) positions \(startPosition)..<\(startPosition + T)")
        }
        let nh = heads.count, Cp = nh * hs, h0 = heads.lowerBound * hs, Tk = startPosition + T
        let ci = layer - cache.layers.lowerBound
        let kc = cache.keys.base + ci * cache.contextLength * C + h0, vc = cache.values.base + ci * cache.contextLength * C + h0
        let scratch = Arena(count: T * C + 3 * T * Cp + nh * T * Tk + T * Cp)
        let ln = scratch.base, q = ln + T * C, k = q + T * Cp, v = k + T * Cp, att = v + T * Cp, atty = att + nh * T * Tk
        var x = hidden
        var out = [Float](repeating: 0, count: T * C)
        x.withUnsafeMutableBufferPointer { xb in
            Layers.layerNormForward(ln, nil, nil, xb.baseAddress!, p.ln1w + layer * C, p.ln1b + layer * C, N: T, C: C, eps: config.layerNormEpsilon)
        }
        let w = p.qkvw + layer * 3 * C * C, b = p.qkvb + layer * 3 * C
        for (i, dst) in [q, k, v].enumerated() {  // rows of q, k, v for these heads
            Layers.matmulForward(dst, ln, w + (i * C + h0) * C, b + i * C + h0, N: T, C: C, OC: Cp)
        }
        for t in 0..<T {
            (kc + (startPosition + t) * C).update(from: k + t * Cp, count: Cp)
            (vc + (startPosition + t) * C).update(from: v + t * Cp, count: Cp)
        }
        Layers.attentionForward(atty, att, q: q, qs: Cp, k: kc, v: vc, ks: C, B: 1, T: T, Tk: Tk, C: Cp, NH: nh, start: startPosition)
        out.withUnsafeMutableBufferPointer { ob in
            let o = ob.baseAddress!
            if includeBias { for t in 0..<T { (o + t * C).update(from: p.attprojb + layer * C, count: C) } }
            // o[T,C] += atty[T,Cp] · Wproj[:, h0..<h0+Cp]ᵀ
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(C), Int32(Cp), 1, atty, Int32(Cp),
                        p.attprojw + layer * C * C + h0, Int32(C), 1, o, Int32(C))
        }
        cache.length = max(cache.length, Tk)
        return out
    }

    /// MLP contribution [T, C] of hidden columns `columns` (of 4C) of block `layer` for hidden [T, C]
    /// (the residual stream after attention).
    public func mlpPartial(layer: Int, columns: Range<Int>, hidden: [Float], includeBias: Bool) throws(EngineError) -> [Float] {
        let C = config.width
        let T = try checkPartial(layer: layer, hidden: hidden)
        guard columns.lowerBound >= 0, columns.upperBound <= 4 * C, !columns.isEmpty else {
            throw .badInput("MLP columns \(columns) outside 0..<\(4 * C)")
        }
        let n = columns.count, c0 = columns.lowerBound
        let scratch = Arena(count: T * C + 2 * T * n)
        let ln = scratch.base, fch = ln + T * C, gel = fch + T * n
        var x = hidden
        var out = [Float](repeating: 0, count: T * C)
        x.withUnsafeMutableBufferPointer { xb in
            Layers.layerNormForward(ln, nil, nil, xb.baseAddress!, p.ln2w + layer * C, p.ln2b + layer * C, N: T, C: C, eps: config.layerNormEpsilon)
        }
        Layers.matmulForward(fch, ln, p.fcw + layer * 4 * C * C + c0 * C, p.fcb + layer * 4 * C + c0, N: T, C: C, OC: n)
        Layers.geluForward(gel, fch, N: T * n)
        out.withUnsafeMutableBufferPointer { ob in
            let o = ob.baseAddress!
            if includeBias { for t in 0..<T { (o + t * C).update(from: p.fcprojb + layer * C, count: C) } }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(C), Int32(n), 1, gel, Int32(n),
                        p.fcprojw + layer * C * 4 * C + c0, Int32(4 * C), 1, o, Int32(C))
        }
        return out
    }

    func checkPartial(layer: Int, hidden: [Float]) throws(EngineError) -> Int {
        guard lora == nil else { throw .badInput("partial blocks run on base weights; merge the adapter first (mergeAdapter)") }
        guard layer >= 0, layer < config.layers else { throw .badInput("block \(layer) outside 0..<\(config.layers)") }
        guard !hidden.isEmpty, hidden.count % config.width == 0 else {
            throw .badInput("hidden has \(hidden.count) values, not a multiple of width \(config.width)")
        }
        return hidden.count / config.width
    }
}
