import Foundation

/// Batched forward across sessions (issue 16): the new tokens of many independent sequences at once (decode steps
/// of one token, and prefills of several). Row b of the hidden state is a token at position positions[b] of the
/// sequence whose KV cache is caches[b]; rows of one sequence are consecutive positions starting at its cache's
/// length. Every projection (q/k/v, attention output, the MLP matrices, and the attached adapter) is one matrix
/// product over all rows; RoPE and attention run per row, at that row's position, over its own cache (causal: a row
/// sees its sequence's keys up to its position). One token's attention is a few hundred multiply-adds per head, so
/// it runs as plain loops: two BLAS calls per head and row cost more in call overhead than the arithmetic (measured:
/// most of a decode step at width 128).
extension LanguageModel {
    /// hidden [R, C] → hidden [R, C] after blocks `range`; each cache must cover `range`, and the rows of one cache
    /// must be its next positions in order. Extends every cache by its rows.
    public func forwardBlocksBatched(range: Range<Int>, hidden: [Float], caches: [KVCache], positions: [Int]) throws(EngineError) -> [Float] {
        let c = config, C = c.width, KV = c.kvDim, B = caches.count
        guard range.lowerBound >= 0, range.upperBound <= c.layers else {
            throw .badInput("block range \(range) outside 0..<\(c.layers)")
        }
        guard B > 0, hidden.count == B * C, positions.count == B else {
            throw .badInput("a batched forward needs hidden [R, C] with one cache and position per row: \(hidden.count) values, \(B) caches, \(positions.count) positions")
        }
        var next: [ObjectIdentifier: Int] = [:]
        for (b, cache) in caches.enumerated() {
            guard cache.layers.lowerBound <= range.lowerBound, range.upperBound <= cache.layers.upperBound, cache.width == KV else {
                throw .badInput("row \(b): KV cache covers blocks \(cache.layers) of width \(cache.width), need \(range) of width \(KV)")
            }
            let expected = next[ObjectIdentifier(cache)] ?? cache.length
            guard positions[b] == expected, positions[b] < c.contextLength else {
                throw .badInput("row \(b): position \(positions[b]), but its sequence continues at \(expected) (context \(c.contextLength))")
            }
            next[ObjectIdentifier(cache)] = expected + 1
        }
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
                // Every row's keys and values first: a prefill row attends to the rows before it.
                for (b, cache) in caches.enumerated() {
                    let ci = l - cache.layers.lowerBound, pos = positions[b], row = qkv + b * c.qkvDim
                    let kc = cache.keys.base + ci * cache.contextLength * KV, vc = cache.values.base + ci * cache.contextLength * KV
                    rotate(row, B: 1, T: 1, start: pos)
                    (kc + pos * KV).update(from: row + c.qDim, count: KV)
                    (vc + pos * KV).update(from: row + c.qDim + KV, count: KV)
                }
                for (b, cache) in caches.enumerated() {
                    let ci = l - cache.layers.lowerBound, pos = positions[b], row = qkv + b * c.qkvDim
                    let kc = cache.keys.base + ci * cache.contextLength * KV, vc = cache.values.base + ci * cache.contextLength * KV
                    Self.decodeAttention(atty + b * c.qDim, att, q: row, k: kc, v: vc, ks: KV, position: pos, NH: c.heads, NKV: c.kvHeads,
                                         hs: c.headSize, window: c.slidingWindow)
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
        for (b, cache) in caches.enumerated() { cache.length = max(cache.length, positions[b] + 1) }
        return x
    }

    /// One query (the newest position) over keys/values 0...position (or the sliding window's part):
    /// out[NH·hs] = softmax(q·Kᵀ/√hs)·V per head, query head h reading key/value head h / (NH/NKV). scores[Tk] scratch.
    static func decodeAttention(_ out: UnsafeMutablePointer<Float>, _ scores: UnsafeMutablePointer<Float>, q: UnsafeMutablePointer<Float>,
                                k: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, ks: Int, position: Int,
                                NH: Int, NKV: Int, hs: Int, window: Int?) {
        let scale = 1 / Float(hs).squareRoot(), group = NH / NKV
        let first = Layers.visible(position, window)
        for h in 0..<NH {
            let qh = q + h * hs, kv = (h / group) * hs
            var mx = -Float.greatestFiniteMagnitude
            for j in first...position {
                let kj = k + j * ks + kv
                var dot: Float = 0
                for d in 0..<hs { dot += qh[d] * kj[d] }
                scores[j] = dot * scale
                mx = max(mx, scores[j])
            }
            var sum: Float = 0
            for j in first...position { let e = expf(scores[j] - mx); scores[j] = e; sum += e }
            let inv = 1 / sum, oh = out + h * hs
            oh.update(repeating: 0, count: hs)
            for j in first...position {
                let w = scores[j] * inv, vj = v + j * ks + kv
                for d in 0..<hs { oh[d] += w * vj[d] }
            }
        }
    }
}
