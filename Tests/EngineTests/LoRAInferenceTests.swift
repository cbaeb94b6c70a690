import Engine
import XCTest

final class LoRAInferenceTests: XCTestCase {
    func testAdapterWithZeroBGivesExactlyBaseLogits() throws {
        let m = try Fixture.model()
        let tokens = Fixture.tokens(8, vocab: 16, seed: 1)
        let base = try m.logits(tokens: tokens, cache: KVCache(config: m.config, layers: 0..<2), startPosition: 0)
        try m.attachLoRA(LoRAConfig(rank: 3, alpha: 6, targets: LoRATarget.allCases), seed: 9)
        let adapted = try m.logits(tokens: tokens, cache: KVCache(config: m.config, layers: 0..<2), startPosition: 0)
        XCTAssertEqual(adapted, base)
        XCTAssertEqual(try m.loss(inputs: tokens, targets: tokens, batch: 1), try { () throws -> Float in
            m.detachLoRA(); return try m.loss(inputs: tokens, targets: tokens, batch: 1) }())
    }

    func testMergedAdapterMatchesUnmergedWithin1e5() throws {
        let m = try Fixture.model()
        try m.attachLoRA(LoRAConfig(rank: 2, alpha: 4, targets: LoRATarget.allCases), seed: 2)
        let a = m.adapterParameters!
        var rng = SplitMix64(seed: 3)
        for i in 0..<a.count { a[i] = rng.nextGaussian() * 0.2 }
        let tokens = Fixture.tokens(8, vocab: 16, seed: 4)
        let unmerged = try m.logits(tokens: tokens, cache: KVCache(config: m.config, layers: 0..<2), startPosition: 0)
        let baseOnly = try LanguageModel(config: m.config)
        baseOnly.parameters.update(from: m.parameters)
        let base = try baseOnly.logits(tokens: tokens, cache: KVCache(config: m.config, layers: 0..<2), startPosition: 0)
        try m.mergeAdapter()
        XCTAssertNil(m.loraConfig)
        let merged = try m.logits(tokens: tokens, cache: KVCache(config: m.config, layers: 0..<2), startPosition: 0)
        XCTAssertGreaterThan(zip(unmerged, base).map { abs($0 - $1) }.max()!, 1e-2, "adapter must change the logits")
        XCTAssertLessThanOrEqual(zip(unmerged, merged).map { abs($0 - $1) }.max()!, 1e-5)
    }

    func testIncrementalDecodingWithKVCacheEqualsFullRecomputation() throws {
        let m = try Fixture.model()
        try m.attachLoRA(LoRAConfig(rank: 2, alpha: 2), seed: 1)
        let a = m.adapterParameters!
        for i in 0..<a.count { a[i] += 0.05 }
        let tokens = Fixture.tokens(8, vocab: 16, seed: 5)
        let V = 16
        let full = try m.logits(tokens: tokens, cache: KVCache(config: m.config, layers: 0..<2), startPosition: 0)
        let cache = KVCache(config: m.config, layers: 0..<2)
        var incremental: [Float] = try m.logits(tokens: Array(tokens[0..<3]), cache: cache, startPosition: 0)
        for t in 3..<8 { incremental += try m.logits(tokens: [tokens[t]], cache: cache, startPosition: t) }
        XCTAssertEqual(cache.length, 8)
        XCTAssertEqual(incremental.count, 8 * V)
        XCTAssertLessThanOrEqual(zip(full, incremental).map { abs($0 - $1) }.max()!, 1e-5)
        // the training forward agrees with the inference path
        let trainLoss = try m.loss(inputs: Array(tokens[0..<7]), targets: Array(tokens[1..<8]), batch: 1)
        XCTAssertEqual(Double(trainLoss), meanNextTokenLoss(full, tokens, V: V), accuracy: 1e-5)
    }

    func testGreedyGenerationWithCacheEqualsArgmaxOfFullRecomputation() throws {
        let m = try Fixture.model()
        let prompt: [Int32] = [1, 2, 3]
        let generated = try m.generate(prompt: prompt, maxNewTokens: 5, sampling: .greedy)
        XCTAssertEqual(generated.count, 5)
        var seq = prompt
        for _ in 0..<5 {
            let logits = try m.logits(tokens: seq, cache: KVCache(config: m.config, layers: 0..<2), startPosition: 0)
            let last = Array(logits.suffix(16))
            seq.append(Int32(last.indices.max { last[$0] < last[$1] }!))
        }
        XCTAssertEqual(generated, Array(seq.suffix(5)))
    }

    func testSeededSamplingIsDeterministicAndTopKStaysInTopK() throws {
        let m = try Fixture.model()
        let a = try m.generate(prompt: [4], maxNewTokens: 6, sampling: .topK(k: 3, temperature: 1), seed: 42)
        let b = try m.generate(prompt: [4], maxNewTokens: 6, sampling: .topK(k: 3, temperature: 1), seed: 42)
        XCTAssertEqual(a, b)
        let logits: [Float] = [0, 5, 1, 4, 3, -2]
        var rng = SplitMix64(seed: 1)
        for _ in 0..<50 { XCTAssertTrue([1, 3, 4].contains(LanguageModel.sample(logits, .topK(k: 3, temperature: 2), &rng))) }
    }

    func testBlockRangesWithOwnCachesEqualTheFullForward() throws {
        let c = ModelConfig(vocabSize: 16, contextLength: 8, layers: 3, heads: 2, width: 8)
        let m = try Fixture.model(c)
        let tokens = Fixture.tokens(6, vocab: 16, seed: 6)
        let full = try m.logits(tokens: tokens, cache: KVCache(config: c, layers: 0..<3), startPosition: 0)
        let front = KVCache(config: c, layers: 0..<1), back = KVCache(config: c, layers: 1..<3)
        // prefill 4 tokens, then two single-token steps, each split at block 1
        var out: [Float] = []
        for (start, end) in [(0, 4), (4, 5), (5, 6)] {
            let h0 = try m.embed(tokens: Array(tokens[start..<end]), startPosition: start)
            let h1 = try m.forwardBlocks(range: 0..<1, hidden: h0, cache: front, startPosition: start)
            let h2 = try m.forwardBlocks(range: 1..<3, hidden: h1, cache: back, startPosition: start)
            out += try m.head(h2)
        }
        XCTAssertLessThanOrEqual(zip(full, out).map { abs($0 - $1) }.max()!, 1e-5)
        XCTAssertThrowsError(try m.forwardBlocks(range: 0..<2, hidden: [Float](repeating: 0, count: 8), cache: front, startPosition: 0))
    }
}

final class PartialBlockTests: XCTestCase {
    /// Head shares (one splitting a key/value group) and MLP column shares of an adapted block sum to the full block.
    func testHeadAndColumnSharesSumToTheFullAdaptedBlockAcrossDecodingSteps() throws {
        let gpt2 = ModelConfig(vocabSize: 16, contextLength: 8, layers: 2, heads: 4, width: 16)
        let llama = ModelConfig.llama(modelType: "qwen2", vocabSize: 16, contextLength: 8, layers: 2, heads: 4, kvHeads: 2,
                                      width: 16, mlpWidth: 24, rope: RoPEConfig(theta: 100))
        for c in [gpt2, llama] {
            let m = try Fixture.model(c)
            try m.attachLoRA(LoRAConfig(rank: 2, alpha: 4, targets: LoRATarget.allCases.filter { $0.architecture == c.architecture }), seed: 1)
            let a = m.adapterParameters!
            var rng = SplitMix64(seed: 5)
            for i in 0..<a.count { a[i] = rng.nextGaussian() * 0.2 }
            let tokens = Fixture.tokens(5, vocab: 16, seed: 2)
            let fullCache = KVCache(config: c, layers: 1..<2)
            let cacheA = KVCache(config: c, layers: 1..<2), cacheB = KVCache(config: c, layers: 1..<2)
            let warm = KVCache(config: c, layers: 0..<1)
            let split = c.mlpWidth * 5 / 8
            for (start, end) in [(0, 3), (3, 4), (4, 5)] {
                let h = try m.forwardBlocks(range: 0..<1, hidden: m.embed(tokens: Array(tokens[start..<end]), startPosition: start),
                                            cache: warm, startPosition: start)
                let full = try m.forwardBlocks(range: 1..<2, hidden: h, cache: fullCache, startPosition: start)
                let a1 = try m.partialAttention(layer: 1, heads: 0..<1, hidden: h, cache: cacheA, startPosition: start)
                let a2 = try m.partialAttention(layer: 1, heads: 1..<4, hidden: h, cache: cacheB, startPosition: start)
                let mid = zip(h, zip(a1, a2)).map { $0 + $1.0 + $1.1 }
                let m1 = try m.partialMLP(layer: 1, columns: 0..<split, hidden: mid)
                let m2 = try m.partialMLP(layer: 1, columns: split..<c.mlpWidth, hidden: mid)
                let out = zip(mid, zip(m1, m2)).map { $0 + $1.0 + $1.1 }
                XCTAssertLessThanOrEqual(zip(full, out).map { abs($0 - $1) }.max()!, 1e-5, "\(c.modelType)")
            }
        }
    }
}

final class CloneTests: XCTestCase {
    func testCloneCopiesWeightsAndAdapterIndependently() throws {
        let m = try Fixture.model()
        try m.attachLoRA(LoRAConfig(rank: 2, alpha: 2), seed: 3)
        let c = m.clone()
        XCTAssertEqual(Array(c.parameters), Array(m.parameters))
        XCTAssertEqual(try c.adapter(), try m.adapter())
        c.parameters[0] += 1
        XCTAssertNotEqual(c.parameters[0], m.parameters[0])
    }
}
