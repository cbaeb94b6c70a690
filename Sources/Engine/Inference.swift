import Foundation

/// Keys and values of past positions for a contiguous range of blocks (one sequence). Rows are kvHeads·headSize
/// wide (grouped-query attention keeps fewer key/value heads than query heads). Pages past the written positions
/// are never touched, so a long context costs memory only as it fills.
public final class KVCache {
    public let layers: Range<Int>
    public let contextLength: Int
    /// Row width: kvHeads · headSize (GPT-2: the model width).
    public let width: Int
    /// Number of positions written so far.
    public internal(set) var length = 0
    let keys: Arena, values: Arena  // [layer][context, width]

    public init(config: ModelConfig, layers: Range<Int>) {
        self.layers = layers
        contextLength = config.contextLength
        width = config.kvDim
        keys = Arena(count: layers.count * config.contextLength * width, lazy: true)
        values = Arena(count: layers.count * config.contextLength * width, lazy: true)
    }

    public func reset() { length = 0 }
}

/// How the next token is drawn from the logits.
public enum Sampling: Sendable, Equatable {
    case greedy
    case temperature(Float)
    case topK(k: Int, temperature: Float)
}

extension LanguageModel {
    /// Token + position embeddings: hidden [T, C] for tokens at positions startPosition..<startPosition+T.
    public func embed(tokens: [Int32], startPosition: Int) throws(EngineError) -> [Float] {
        let C = config.width, T = tokens.count
        guard startPosition >= 0, startPosition + T <= config.contextLength else {
            throw .badInput("positions \(startPosition)..<\(startPosition + T) exceed the context \(config.contextLength)")
        }
        if let bad = tokens.first(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
            throw .badInput("token id \(bad) outside vocabulary 0..<\(config.vocabSize)")
        }
        var out = [Float](repeating: 0, count: T * C)
        tokens.withUnsafeBufferPointer { tk in
            out.withUnsafeMutableBufferPointer { o in
                embedTokens(o.baseAddress!, tk.baseAddress!, B: 1, T: T, start: startPosition)
            }
        }
        return out
    }

    /// Runs blocks `range` on hidden [T, C] at positions startPosition..<startPosition+T, reading and
    /// extending `cache` (which must cover `range`). The attached adapter, if any, is applied.
    public func forwardBlocks(range: Range<Int>, hidden: [Float], cache: KVCache, startPosition: Int) throws(EngineError) -> [Float] {
        let c = config, C = c.width, KV = c.kvDim
        guard range.lowerBound >= 0, range.upperBound <= c.layers else {
            throw .badInput("block range \(range) outside 0..<\(c.layers)")
        }
        guard cache.layers.lowerBound <= range.lowerBound, range.upperBound <= cache.layers.upperBound, cache.width == KV else {
            throw .badInput("KV cache covers blocks \(cache.layers) of width \(cache.width), need \(range) of width \(KV)")
        }
        guard hidden.count % C == 0, !hidden.isEmpty else { throw .badInput("hidden has \(hidden.count) values, not a multiple of width \(C)") }
        let T = hidden.count / C
        guard startPosition >= 0, startPosition <= cache.length, startPosition + T <= c.contextLength else {
            throw .badInput("positions \(startPosition)..<\(startPosition + T) invalid for cache length \(cache.length), context \(c.contextLength)")
        }
        let Tk = startPosition + T
        let r = lora?.config.rank ?? 0
        let sizes = [T * C, T * c.qkvDim, T * c.qDim, c.heads * T * Tk, T * c.mlpInDim, T * c.mlpWidth, T * C, T * max(r, 1)]
        let scratch = Arena(count: sizes.reduce(0, +))
        var at = scratch.base
        func take(_ n: Int) -> UnsafeMutablePointer<Float> { defer { at += n }; return at }
        let ln = take(sizes[0]), qkv = take(sizes[1]), atty = take(sizes[2]), att = take(sizes[3])
        let fch = take(sizes[4]), act = take(sizes[5]), tmp = take(sizes[6]), u = take(sizes[7])
        var x = hidden
        x.withUnsafeMutableBufferPointer { xb in
            let x = xb.baseAddress!
            for l in range {
                let ci = l - cache.layers.lowerBound
                let kc = cache.keys.base + ci * cache.contextLength * KV, vc = cache.values.base + ci * cache.contextLength * KV
                normForward(ln, nil, nil, x, p.ln1w + l * C, p.ln1b.map { $0 + l * C }, N: T)
                linearForward(qkv, ln, l, .qkv, N: T, a: nil, uScratch: u)
                rotate(qkv, B: 1, T: T, start: startPosition)
                for t in 0..<T {
                    (kc + (startPosition + t) * KV).update(from: qkv + t * c.qkvDim + c.qDim, count: KV)
                    (vc + (startPosition + t) * KV).update(from: qkv + t * c.qkvDim + c.qDim + KV, count: KV)
                }
                Layers.attentionForward(atty, att, q: qkv, qs: c.qkvDim, k: kc, v: vc, ks: KV, B: 1, T: T, Tk: Tk,
                                        NH: c.heads, NKV: c.kvHeads, hs: c.headSize, start: startPosition, window: c.slidingWindow)
                linearForward(tmp, atty, l, .attnOut, N: T, a: nil, uScratch: u)
                for i in 0..<(T * C) { x[i] += tmp[i] }
                normForward(ln, nil, nil, x, p.ln2w + l * C, p.ln2b.map { $0 + l * C }, N: T)
                linearForward(fch, ln, l, .mlpIn, N: T, a: nil, uScratch: u)
                activationForward(act, fch, N: T)
                linearForward(tmp, act, l, .mlpOut, N: T, a: nil, uScratch: u)
                for i in 0..<(T * C) { x[i] += tmp[i] }
            }
        }
        cache.length = Tk
        return x
    }

    /// Final norm and LM head: logits [T, V] from hidden [T, C].
    public func head(_ hidden: [Float]) throws(EngineError) -> [Float] {
        let C = config.width, V = config.vocabSize
        guard hidden.count % C == 0, !hidden.isEmpty else { throw .badInput("hidden has \(hidden.count) values, not a multiple of width \(C)") }
        let T = hidden.count / C
        var ln = [Float](repeating: 0, count: T * C)
        var logits = [Float](repeating: 0, count: T * V)
        var h = hidden
        h.withUnsafeMutableBufferPointer { hb in
            ln.withUnsafeMutableBufferPointer { lb in
                logits.withUnsafeMutableBufferPointer { ob in
                    normForward(lb.baseAddress!, nil, nil, hb.baseAddress!, p.lnfw, p.lnfb, N: T)
                    headForward(ob.baseAddress!, lb.baseAddress!, N: T)
                }
            }
        }
        return logits
    }

    /// Logits [T, V] of the whole model for tokens at startPosition.., extending `cache` (all blocks).
    public func logits(tokens: [Int32], cache: KVCache, startPosition: Int) throws(EngineError) -> [Float] {
        let h = try embed(tokens: tokens, startPosition: startPosition)
        return try head(forwardBlocks(range: 0..<config.layers, hidden: h, cache: cache, startPosition: startPosition))
    }

    /// Generates up to maxNewTokens after the prompt with a KV cache (stops at the context length or a stop token).
    public func generate(prompt: [Int32], maxNewTokens: Int, sampling: Sampling = .greedy, seed: UInt64 = 0,
                         stopToken: Int32? = nil) throws(EngineError) -> [Int32] {
        guard !prompt.isEmpty else { throw .badInput("generation needs a non-empty prompt") }
        guard prompt.count <= config.contextLength else {
            throw .badInput("prompt of \(prompt.count) tokens exceeds the context \(config.contextLength)")
        }
        let cache = KVCache(config: config, layers: 0..<config.layers)
        var rng = SplitMix64(seed: seed)
        var out: [Int32] = []
        // The prompt's blocks run on every position; the head only on the last (all that sampling needs).
        let C = config.width
        let h = try forwardBlocks(range: 0..<config.layers, hidden: embed(tokens: prompt, startPosition: 0), cache: cache, startPosition: 0)
        var last = try head(Array(h[(prompt.count - 1) * C..<prompt.count * C]))
        var logits: [Float]
        while out.count < maxNewTokens {
            let next = Self.sample(last, sampling, &rng)
            out.append(next)
            if next == stopToken || cache.length >= config.contextLength { break }
            logits = try self.logits(tokens: [next], cache: cache, startPosition: cache.length)
            last = logits
        }
        return out
    }

    /// Draws a token id from one row of logits.
    public static func sample(_ logits: [Float], _ sampling: Sampling, _ rng: inout SplitMix64) -> Int32 {
        var best = 0
        for i in logits.indices where logits[i] > logits[best] { best = i }
        let temperature: Float, k: Int
        switch sampling {
        case .greedy: return Int32(best)
        case .temperature(let t): temperature = t; k = logits.count
        case .topK(let kk, let t): temperature = t; k = max(1, min(kk, logits.count))
        }
        if temperature <= 0 { return Int32(best) }
        var idx = Array(logits.indices)
        if k < logits.count { idx.sort { logits[$0] > logits[$1] }; idx = Array(idx.prefix(k)) }
        let mx = logits[best]
        let w = idx.map { Double(expf((logits[$0] - mx) / temperature)) }
        let total = w.reduce(0, +)
        var u = Double(rng.nextFloat()) * total
        for (j, i) in idx.enumerated() {
            u -= w[j]
            if u <= 0 { return Int32(i) }
        }
        return Int32(idx.last!)
    }
}
