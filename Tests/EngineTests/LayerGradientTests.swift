import Foundation
import Engine
import XCTest

/// Finite-difference checks of each layer's backward, with loss = Σ out ⊙ w for a fixed random w.
final class LayerGradientTests: XCTestCase {
    let h: Float = 1e-2

    func check(_ name: String, inputs: inout [[Float]], outCount: Int,
               forward: ([[Float]]) -> [Float], backward: ([[Float]], [Float]) -> [[Float]]) {
        checkLayerGradients(name, inputs: &inputs, outCount: outCount, forward: forward, backward: backward)
    }

    func testLayerNormBackwardMatchesFiniteDifferences() {
        let N = 3, C = 5
        var xs = [Fixture.randomFloats(N * C, seed: 1), Fixture.randomFloats(C, seed: 2), Fixture.randomFloats(C, seed: 3)]
        check("layernorm", inputs: &xs, outCount: N * C, forward: { x in
            var x0 = x[0], x1 = x.count > 1 ? x[1] : [], x2 = x.count > 2 ? x[2] : [], out = [Float](repeating: 0, count: N * C)
            Layers.layerNormForward(&out, nil, nil, &x0, &x1, &x2, N: N, C: C, eps: 1e-5)
            return out
        }, backward: { x, dout in
            var x0 = x[0], x1 = x.count > 1 ? x[1] : [], x2 = x.count > 2 ? x[2] : [], dout = dout, out = [Float](repeating: 0, count: N * C)
            var mean = [Float](repeating: 0, count: N), rstd = mean
            Layers.layerNormForward(&out, &mean, &rstd, &x0, &x1, &x2, N: N, C: C, eps: 1e-5)
            var dx = [Float](repeating: 0, count: N * C), dw = [Float](repeating: 0, count: C), db = dw
            Layers.layerNormBackward(&dx, &dw, &db, &dout, &x0, &x1, &mean, &rstd, N: N, C: C)
            return [dx, dw, db]
        })
    }

    func testMatmulBackwardMatchesFiniteDifferences() {
        let N = 3, C = 4, OC = 5
        var xs = [Fixture.randomFloats(N * C, seed: 1), Fixture.randomFloats(OC * C, seed: 2), Fixture.randomFloats(OC, seed: 3)]
        check("matmul", inputs: &xs, outCount: N * OC, forward: { x in
            var x0 = x[0], x1 = x.count > 1 ? x[1] : [], x2 = x.count > 2 ? x[2] : [], out = [Float](repeating: 0, count: N * OC)
            Layers.matmulForward(&out, &x0, &x1, &x2, N: N, C: C, OC: OC)
            return out
        }, backward: { x, dout in
            var x0 = x[0], x1 = x.count > 1 ? x[1] : [], x2 = x.count > 2 ? x[2] : [], dout = dout
            var dx = [Float](repeating: 0, count: N * C), dw = [Float](repeating: 0, count: OC * C), db = [Float](repeating: 0, count: OC)
            Layers.matmulBackward(&dx, &dw, &db, &dout, &x0, &x1, N: N, C: C, OC: OC)
            return [dx, dw, db]
        })
    }

    func testLoRABackwardMatchesFiniteDifferencesForAAndB() {
        let N = 3, C = 4, OC = 5, r = 2
        var xs = [Fixture.randomFloats(N * C, seed: 1), Fixture.randomFloats(r * C, seed: 2), Fixture.randomFloats(OC * r, seed: 3)]
        check("lora", inputs: &xs, outCount: N * OC, forward: { x in
            var x0 = x[0], x1 = x.count > 1 ? x[1] : [], x2 = x.count > 2 ? x[2] : [], out = [Float](repeating: 0, count: N * OC), u = [Float](repeating: 0, count: N * r)
            Layers.loraForward(&out, &u, &x0, &x1, &x2, N: N, C: C, OC: OC, r: r, scale: 1.5)
            return out
        }, backward: { x, dout in
            var x0 = x[0], x1 = x.count > 1 ? x[1] : [], x2 = x.count > 2 ? x[2] : [], dout = dout, out = [Float](repeating: 0, count: N * OC), u = [Float](repeating: 0, count: N * r)
            Layers.loraForward(&out, &u, &x0, &x1, &x2, N: N, C: C, OC: OC, r: r, scale: 1.5)
            var dx = [Float](repeating: 0, count: N * C), da = [Float](repeating: 0, count: r * C)
            var db = [Float](repeating: 0, count: OC * r), du = [Float](repeating: 0, count: N * r)
            Layers.loraBackward(&dx, &da, &db, &du, &dout, &u, &x0, &x1, &x2, N: N, C: C, OC: OC, r: r, scale: 1.5)
            return [dx, da, db]
        })
    }

    func testAttentionBackwardMatchesFiniteDifferences() {
        let B = 2, T = 3, C = 4, NH = 2
        var xs = [Fixture.randomFloats(B * T * 3 * C, seed: 4)]
        check("attention", inputs: &xs, outCount: B * T * C, forward: { x in
            var x0 = x[0], x1 = x.count > 1 ? x[1] : [], x2 = x.count > 2 ? x[2] : [], out = [Float](repeating: 0, count: B * T * C), att = [Float](repeating: 0, count: B * NH * T * T)
            x0.withUnsafeMutableBufferPointer { q in
                Layers.attentionForward(&out, &att, q: q.baseAddress!, qs: 3 * C, k: q.baseAddress! + C, v: q.baseAddress! + 2 * C,
                                        ks: 3 * C, B: B, T: T, Tk: T, NH: NH, NKV: NH, hs: C / NH, start: 0)
            }
            return out
        }, backward: { x, dout in
            var x0 = x[0], x1 = x.count > 1 ? x[1] : [], x2 = x.count > 2 ? x[2] : [], dout = dout, out = [Float](repeating: 0, count: B * T * C), att = [Float](repeating: 0, count: B * NH * T * T)
            var dqkv = [Float](repeating: 0, count: B * T * 3 * C), scratch = [Float](repeating: 0, count: T * T)
            x0.withUnsafeMutableBufferPointer { q in
                Layers.attentionForward(&out, &att, q: q.baseAddress!, qs: 3 * C, k: q.baseAddress! + C, v: q.baseAddress! + 2 * C,
                                        ks: 3 * C, B: B, T: T, Tk: T, NH: NH, NKV: NH, hs: C / NH, start: 0)
                Layers.attentionBackward(&dqkv, &scratch, &dout, q.baseAddress!, &att, B: B, T: T, NH: NH, NKV: NH, hs: C / NH)
            }
            return [dqkv]
        })
    }

    func testGeluAndResidualBackwardMatchFiniteDifferences() {
        let N = 7
        var xs = [Fixture.randomFloats(N, seed: 5, scale: 2)]
        check("gelu", inputs: &xs, outCount: N, forward: { x in
            var x0 = x[0], x1 = x.count > 1 ? x[1] : [], x2 = x.count > 2 ? x[2] : [], out = [Float](repeating: 0, count: N)
            Layers.geluForward(&out, &x0, N: N); return out
        }, backward: { x, dout in
            var x0 = x[0], x1 = x.count > 1 ? x[1] : [], x2 = x.count > 2 ? x[2] : [], dout = dout, dx = [Float](repeating: 0, count: N)
            Layers.geluBackward(&dx, &x0, &dout, N: N); return [dx]
        })
        var ys = [Fixture.randomFloats(N, seed: 6), Fixture.randomFloats(N, seed: 8)]
        check("residual", inputs: &ys, outCount: N, forward: { x in
            var x0 = x[0], x1 = x.count > 1 ? x[1] : [], x2 = x.count > 2 ? x[2] : [], out = [Float](repeating: 0, count: N)
            Layers.residualForward(&out, &x0, &x1, N: N); return out
        }, backward: { _, dout in
            var dout = dout, da = [Float](repeating: 0, count: N), db = da
            Layers.residualBackward(&da, &db, &dout, N: N); return [da, db]
        })
    }

    func testSoftmaxCrossEntropyBackwardMatchesFiniteDifferences() {
        let N = 3, V = 6
        let targets: [Int32] = [0, 5, 2]
        var logits = Fixture.randomFloats(N * V, seed: 9)
        func loss(_ l: [Float]) -> Double {
            var p = l, losses = [Float](repeating: 0, count: N)
            return Layers.softmaxCrossEntropyForward(&p, &losses, targets, N: N, V: V) / Double(N)
        }
        var probs = logits, losses = [Float](repeating: 0, count: N)
        Layers.softmaxCrossEntropyForward(&probs, &losses, targets, N: N, V: V)
        Layers.softmaxCrossEntropyBackward(&probs, targets, N: N, V: V, scale: 1 / Float(N))
        for i in logits.indices {
            let x0 = logits[i]
            logits[i] = x0 + h; let lp = loss(logits)
            logits[i] = x0 - h; let lm = loss(logits)
            logits[i] = x0
            assertGradient(probs[i], (lp - lm) / Double(2 * h), "softmax-ce logit \(i)")
        }
    }

    func testEmbeddingBackwardScattersIntoTokenAndPositionRows() {
        let B = 1, T = 3, C = 2, V = 4
        let tokens: [Int32] = [1, 3, 1]
        var dout: [Float] = [1, 2, 3, 4, 5, 6]
        var dwte = [Float](repeating: 0, count: V * C), dwpe = [Float](repeating: 0, count: T * C)
        Layers.embedBackward(&dwte, &dwpe, &dout, tokens, B: B, T: T, C: C)
        XCTAssertEqual(dwte, [0, 0, 1 + 5, 2 + 6, 0, 0, 3, 4])
        XCTAssertEqual(dwpe, [1, 2, 3, 4, 5, 6])
    }
}

final class FastTanhTests: XCTestCase {
    func testFastTanhMatchesLibmWithin1e6() {
        var worst: Float = 0
        for i in -2000...2000 {
            let x = Float(i) / 100
            worst = max(worst, abs(Layers.fastTanh(x) - tanhf(x)))
        }
        XCTAssertLessThan(worst, 1e-6)
    }
}
