import Engine
import XCTest

/// Batched decode across sessions (issue 16's forwardBlocksBatched) on Llama-family blocks — GQA, RoPE at each row's
/// own position, a sliding window, an adapter — with fp32 and quantized bases: the same hidden states as decoding
/// each session alone.
final class BatchedDecodeTests: XCTestCase {
    func testBatchedLlamaDecodeEqualsPerSessionDecodeForFP32AndQuantizedBases() throws {
        let c = ModelConfig.llama(vocabSize: 40, contextLength: 32, layers: 2, heads: 4, kvHeads: 2, width: 64, mlpWidth: 128,
                                  rope: RoPEConfig(theta: 500), slidingWindow: 5)
        let fp32 = try Fixture.model(c, scale: 0.05)
        for model in [fp32, try fp32.quantized(.q4(group: 32)), try fp32.quantized(.int8)] {
            try model.attachLoRA(LoRAConfig(rank: 2, alpha: 4, targets: [.q, .v, .down]), seed: 2)
            let a = model.adapterParameters!
            for i in 0..<a.count { a[i] += 0.02 }
            for sessions in [3, 6, 17] {  // ≤ 16 rows: fused kernel passes; more: fp32 tiles
                let prompts = (0..<sessions).map { Fixture.tokens(2 + $0, vocab: 40, seed: UInt64(10 + $0)) }
                var alone: [KVCache] = [], together: [KVCache] = []
                for p in prompts {
                    for list in [0, 1] {
                        let cache = KVCache(config: c, layers: 0..<2)
                        _ = try model.forwardBlocks(range: 0..<2, hidden: model.embed(tokens: p, startPosition: 0), cache: cache, startPosition: 0)
                        if list == 0 { alone.append(cache) } else { together.append(cache) }
                    }
                }
                let next = Fixture.tokens(sessions, vocab: 40, seed: 99)
                var expected: [Float] = []
                for (s, cache) in alone.enumerated() {
                    expected += try model.forwardBlocks(range: 0..<2, hidden: model.embed(tokens: [next[s]], startPosition: cache.length),
                                                        cache: cache, startPosition: cache.length)
                }
                var hidden: [Float] = []
                for (s, cache) in together.enumerated() { hidden += try model.embed(tokens: [next[s]], startPosition: cache.length) }
                let got = try model.forwardBlocksBatched(range: 0..<2, hidden: hidden, caches: together, positions: together.map(\.length))
                let scale = expected.map(abs).max()!
                XCTAssertLessThanOrEqual(zip(got, expected).map { abs($0 - $1) }.max()! / scale, 1e-5,
                                         "\(model.quantization.map { "\($0)" } ?? "fp32"), \(sessions) sessions")
            }
        }
    }
}
