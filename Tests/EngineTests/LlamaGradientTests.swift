import Engine
import Foundation
import XCTest

/// Finite-difference checks of the Llama-family layers and of whole Llama models (every tensor, and LoRA on every
/// projection), plus the inference path (KV cache, sliding window) against the training forward.
final class LlamaGradientTests: XCTestCase {
    /// Every optional piece on: GQA, q/k/v + output + MLP biases, untied head, YaRN rotary scaling, a sliding window.
    static let micro = ModelConfig.llama(vocabSize: 16, contextLength: 8, layers: 2, heads: 4, kvHeads: 2, width: 8,
                                         mlpWidth: 12, qkvBias: true, outputBias: true, mlpBias: true,
                                         rope: RoPEConfig(theta: 100, scaling: .yarn(factor: 4, originalContext: 4, betaFast: 32,
                                                                                     betaSlow: 1, attentionFactor: nil)),
                                         slidingWindow: 4)

    func testRMSNormBackwardMatchesFiniteDifferences() {
        let N = 3, C = 5
        var xs = [Fixture.randomFloats(N * C, seed: 1), Fixture.randomFloats(C, seed: 2)]
        checkLayerGradients("rmsnorm", inputs: &xs, outCount: N * C, forward: { x in
            var x0 = x[0], w = x[1], out = [Float](repeating: 0, count: N * C)
            Layers.rmsNormForward(&out, nil, &x0, &w, N: N, C: C, eps: 1e-5)
            return out
        }, backward: { x, dout in
            var x0 = x[0], w = x[1], dout = dout, out = [Float](repeating: 0, count: N * C), rstd = [Float](repeating: 0, count: N)
            Layers.rmsNormForward(&out, &rstd, &x0, &w, N: N, C: C, eps: 1e-5)
            var dx = [Float](repeating: 0, count: N * C), dw = [Float](repeating: 0, count: C)
            Layers.rmsNormBackward(&dx, &dw, &dout, &x0, &w, &rstd, N: N, C: C)
            return [dx, dw]
        })
    }

    func testRotaryBackwardIsTheTransposedRotationIncludingTheAttentionFactor() {
        let T = 3, heads = 2, hs = 4, stride = 10, start = 2
        let angles = Fixture.randomFloats((start + T) * hs / 2, seed: 3, scale: 2)
        let cos = angles.map { 1.3 * Foundation.cos($0) }, sin = angles.map { 1.3 * Foundation.sin($0) }
        var xs = [Fixture.randomFloats(T * stride, seed: 4)]
        checkLayerGradients("rope", inputs: &xs, outCount: T * stride, forward: { x in
            var y = x[0]
            Layers.ropeForward(&y, stride: stride, T: T, heads: heads, hs: hs, start: start, cos: cos, sin: sin)
            return y
        }, backward: { _, dout in
            var d = dout
            Layers.ropeBackward(&d, stride: stride, T: T, heads: heads, hs: hs, start: start, cos: cos, sin: sin)
            // columns past the rotated heads pass through unchanged
            return [d]
        })
    }

    func testSwiGLUBackwardMatchesFiniteDifferences() {
        let N = 2, M = 5
        var xs = [Fixture.randomFloats(N * 2 * M, seed: 5, scale: 2)]
        checkLayerGradients("swiglu", inputs: &xs, outCount: N * M, forward: { x in
            var gu = x[0], out = [Float](repeating: 0, count: N * M)
            Layers.swigluForward(&out, &gu, N: N, M: M)
            return out
        }, backward: { x, dout in
            var gu = x[0], dout = dout, d = [Float](repeating: 0, count: N * 2 * M)
            Layers.swigluBackward(&d, &gu, &dout, N: N, M: M)
            return [d]
        })
    }

    func testGroupedQueryAttentionWithSlidingWindowBackwardMatchesFiniteDifferences() {
        let B = 2, T = 5, NH = 4, NKV = 2, hs = 2, window = 3
        let stride = (NH + 2 * NKV) * hs
        var xs = [Fixture.randomFloats(B * T * stride, seed: 6)]
        func forward(_ qkv: inout [Float], _ out: inout [Float], _ att: inout [Float]) {
            qkv.withUnsafeMutableBufferPointer { q in
                let p = q.baseAddress!
                Layers.attentionForward(&out, &att, q: p, qs: stride, k: p + NH * hs, v: p + (NH + NKV) * hs, ks: stride,
                                        B: B, T: T, Tk: T, NH: NH, NKV: NKV, hs: hs, start: 0, window: window)
            }
        }
        checkLayerGradients("gqa attention", inputs: &xs, outCount: B * T * NH * hs, forward: { x in
            var qkv = x[0], out = [Float](repeating: 0, count: B * T * NH * hs), att = [Float](repeating: 0, count: B * NH * T * T)
            forward(&qkv, &out, &att)
            return out
        }, backward: { x, dout in
            var qkv = x[0], dout = dout, out = [Float](repeating: 0, count: B * T * NH * hs), att = [Float](repeating: 0, count: B * NH * T * T)
            forward(&qkv, &out, &att)
            var d = [Float](repeating: 0, count: qkv.count), scratch = [Float](repeating: 0, count: T * T)
            Layers.attentionBackward(&d, &scratch, &dout, &qkv, &att, B: B, T: T, NH: NH, NKV: NKV, hs: hs, window: window)
            return [d]
        })
    }

    func testLlamaBaseGradientsMatchFiniteDifferencesForEveryTensor() throws {
        let m = try Fixture.model(Self.micro)
        let l = m.layout
        XCTAssertTrue([l.wpe, l.ln1b, l.ln2b, l.lnfb].allSatisfy { $0.count == 0 })
        try checkBaseGradients(m, slots: [l.wte, l.ln1w, l.qkvw, l.qkvb, l.attprojw, l.attprojb, l.ln2w, l.fcw, l.fcb,
                                          l.fcprojw, l.fcprojb, l.lnfw, l.lmHead])
    }

    func testLoRAOnEveryLlamaProjectionMatchesFiniteDifferences() throws {
        let m = try Fixture.model(Self.micro)
        try m.attachLoRA(LoRAConfig(rank: 2, alpha: 4, targets: [.q, .k, .v, .o, .gate, .up, .down]), seed: 5)
        XCTAssertEqual(try m.adapter().tensors.count, 2 * 7 * 2)
        try checkAdapterGradients(m)
    }

    func testGPT2TargetNamesMeanTheirLlamaCounterparts() throws {
        let m = try Fixture.model(Self.micro)
        try m.attachLoRA(LoRAConfig(rank: 1, alpha: 1, targets: [.attnQKV, .mlpProj]), seed: 1)
        XCTAssertEqual(m.loraConfig?.targets, [.q, .k, .v, .down])
        let gpt2 = try Fixture.model()
        XCTAssertThrowsError(try gpt2.attachLoRA(LoRAConfig(rank: 1, alpha: 1, targets: [.q]), seed: 1))
        XCTAssertEqual(try LoRATarget.parse(["q_proj", "self_attn.o_proj", "down_proj"]), [.q, .o, .down])
    }

    func testIncrementalDecodingEqualsTheTrainingForwardForAnAdaptedLlama() throws {
        let c = Self.micro
        let m = try Fixture.model(c)
        try m.attachLoRA(LoRAConfig(rank: 2, alpha: 2, targets: [.q, .v, .up]), seed: 1)
        let a = m.adapterParameters!
        for i in 0..<a.count { a[i] += 0.05 }
        let tokens = Fixture.tokens(8, vocab: 16, seed: 5)
        let V = c.vocabSize
        let full = try m.logits(tokens: tokens, cache: KVCache(config: c, layers: 0..<2), startPosition: 0)
        let cache = KVCache(config: c, layers: 0..<2)
        XCTAssertEqual(cache.width, c.kvHeads * c.headSize)
        var incremental = try m.logits(tokens: Array(tokens[0..<3]), cache: cache, startPosition: 0)
        for t in 3..<8 { incremental += try m.logits(tokens: [tokens[t]], cache: cache, startPosition: t) }
        XCTAssertLessThanOrEqual(zip(full, incremental).map { abs($0 - $1) }.max()!, 1e-5)
        let trainLoss = try m.loss(inputs: Array(tokens[0..<7]), targets: Array(tokens[1..<8]), batch: 1)
        XCTAssertEqual(Double(trainLoss), meanNextTokenLoss(full, tokens, V: V), accuracy: 1e-5)
        // merging the adapter gives the same logits
        let before = full
        try m.mergeAdapter()
        let merged = try m.logits(tokens: tokens, cache: KVCache(config: c, layers: 0..<2), startPosition: 0)
        XCTAssertLessThanOrEqual(zip(before, merged).map { abs($0 - $1) }.max()!, 1e-5)
    }
}
