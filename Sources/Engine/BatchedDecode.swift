/// Batched decode across sessions (issue 16): one decode step of B independent sequences at once. Row b of the
/// hidden state is sequence b's newest token at position positions[b], with its own KV cache. Every projection
/// (q/k/v, attention output, the MLP matrices, and the attached adapter) is one matrix product over all B rows;
/// only RoPE and the attention itself run per row, at that row's position, over that row's cache.
extension LanguageModel {
    /// hidden [B, C] → hidden [B, C] after blocks `range`; each cache must cover `range` and hold exactly
    /// positions[b] positions. Extends every cache by one position.
    public func forwardBlocksBatched(range: Range<Int>, hidden: [Float], caches: [KVCache], positions: [Int]) throws(EngineError) -> [Float] {
        let c = config, C = c.width, KV = c.kvDim, B = caches.count
        guard range.lowerBound >= 0, range.upperBound <= c.layers else {
            throw .badInput("block range \(range) outside 0..<\(c.layers)")
        }
        guard B > 0, hidden.count == B * C, positions.count == B else {
            throw .badInput("batched decode needs hidden [B, C] with one cache and position per row: \(hidden.count) values, \(B) caches, \(positions.count) positions")
        }
        for (b, cache) in caches.enumerated() {
            guard cache.layers.lowerBound <= range.lowerBound, range.upperBound <= cache.layers.upperBound, cache.width == KV else {
                throw .badInput("row \(b): KV cache covers blocks \(cache.layers) of width \(cache.width), need \(range) of width \(KV)")
            }
            guard positions[b] == cache.length, positions[b] < c.contextLength else {
                throw .badInput("row \(b): position \(positions[b]) but its cache holds \(cache.length) of \(c.contextLength)")
            }
        }
        if Set(caches.map { ObjectIdentifier($0) }).count != B { throw .badInput("batched decode got the same KV cache twice") }
        let r = lora?.config.rank ?? 0
        let maxTk = (positions.max() ?? 0) + 1
        let sizes = [B * C, B * c.qkvDim, B * c.qDim, c.heads * maxTk, B * c.mlpInDim, B * c.mlpWidth, B * C, B * max(r, 1)]
        let scratch = Arena(count: sizes.reduce(0, +))
        var at = scratch.base
        func take(_ n: Int) -> UnsafeMutablePointer<Float> { defer { at += n }; return at }
        let ln = take(sizes[0]), qkv = take(sizes[1]), atty = take(sizes[2]), att = take(sizes[3])
        let fch = take(sizes[4]), act = take(sizes[5]), tmp = take(sizes[6]), u = take(sizes[7])
        var x = hidden
        x.withUnsafeMutableBufferPointer { xb in
            let x = xb.baseAddress!
            for l in range {
                normForward(ln, nil, nil, x, p.ln1w + l * C, p.ln1b.map { $0 + l * C }, N: B)
                linearForward(qkv, ln, l, .qkv, N: B, a: nil, uScratch: u)
                for (b, cache) in caches.enumerated() {
                    let ci = l - cache.layers.lowerBound, pos = positions[b], row = qkv + b * c.qkvDim
                    let kc = cache.keys.base + ci * cache.contextLength * KV, vc = cache.values.base + ci * cache.contextLength * KV
                    rotate(row, B: 1, T: 1, start: pos)
                    (kc + pos * KV).update(from: row + c.qDim, count: KV)
                    (vc + pos * KV).update(from: row + c.qDim + KV, count: KV)
                    Layers.attentionForward(atty + b * c.qDim, att, q: row, qs: c.qkvDim, k: kc, v: vc, ks: KV, B: 1, T: 1, Tk: pos + 1,
                                            NH: c.heads, NKV: c.kvHeads, hs: c.headSize, start: pos, window: c.slidingWindow)
                }
                linearForward(tmp, atty, l, .attnOut, N: B, a: nil, uScratch: u)
                for i in 0..<(B * C) { x[i] += tmp[i] }
                normForward(ln, nil, nil, x, p.ln2w + l * C, p.ln2b.map { $0 + l * C }, N: B)
                linearForward(fch, ln, l, .mlpIn, N: B, a: nil, uScratch: u)
                activationForward(act, fch, N: B)
                linearForward(tmp, act, l, .mlpOut, N: B, a: nil, uScratch: u)
                for i in 0..<(B * C) { x[i] += tmp[i] }
            }
        }
        for (b, cache) in caches.enumerated() { cache.length = positions[b] + 1 }
        return x
    }
}
