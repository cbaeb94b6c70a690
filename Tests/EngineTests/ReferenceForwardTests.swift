import Engine
import Foundation
import XCTest

/// A naive GPT-2 forward written from Hugging Face semantics (Conv1D: y = x·W + b with W stored [in, out]),
/// run on the tensors of a saved checkpoint and compared with the engine: so real GPT-2 weights mean the same here.
final class ReferenceForwardTests: XCTestCase {
    func testEngineMatchesNaiveHuggingFaceStyleForwardOnSavedWeights() throws {
        let c = ModelConfig(vocabSize: 16, contextLength: 8, layers: 2, heads: 2, width: 8)
        let m = try Fixture.model(c)
        let dir = Fixture.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try m.save(directory: dir)
        let w = try SafeTensors.read(dir.appendingPathComponent("model.safetensors")).mapValues(\.values)
        let tokens: [Int32] = [3, 1, 4, 1, 5]
        let T = tokens.count, C = c.width, H = c.heads, hs = C / H
        func ln(_ x: [Double], _ g: [Float], _ b: [Float]) -> [Double] {
            let mean = x.reduce(0, +) / Double(x.count)
            let v = x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(x.count)
            return x.indices.map { (x[$0] - mean) / (v + 1e-5).squareRoot() * Double(g[$0]) + Double(b[$0]) }
        }
        func conv1D(_ x: [Double], _ W: [Float], _ b: [Float]) -> [Double] {  // W [in, out]
            let nOut = b.count
            var y = b.map(Double.init)
            for i in x.indices { for j in 0..<nOut { y[j] += x[i] * Double(W[i * nOut + j]) } }
            return y
        }
        func gelu(_ x: Double) -> Double { 0.5 * x * (1 + tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x))) }
        var h: [[Double]] = (0..<T).map { t in (0..<C).map { Double(w["wte.weight"]![Int(tokens[t]) * C + $0] + w["wpe.weight"]![t * C + $0]) } }
        for l in 0..<c.layers {
            let p = "h.\(l)."
            let qkv = h.map { conv1D(ln($0, w[p + "ln_1.weight"]!, w[p + "ln_1.bias"]!), w[p + "attn.c_attn.weight"]!, w[p + "attn.c_attn.bias"]!) }
            var y = [[Double]](repeating: [Double](repeating: 0, count: C), count: T)
            for head in 0..<H {
                for t in 0..<T {
                    let q = (0..<hs).map { qkv[t][head * hs + $0] }
                    let scores = (0...t).map { s in (0..<hs).reduce(0.0) { $0 + q[$1] * qkv[s][C + head * hs + $1] } / Double(hs).squareRoot() }
                    let mx = scores.max()!
                    let e = scores.map { exp($0 - mx) }, z = e.reduce(0, +)
                    for s in 0...t { for i in 0..<hs { y[t][head * hs + i] += e[s] / z * qkv[s][2 * C + head * hs + i] } }
                }
            }
            for t in 0..<T {
                let a = conv1D(y[t], w[p + "attn.c_proj.weight"]!, w[p + "attn.c_proj.bias"]!)
                h[t] = zip(h[t], a).map(+)
                let f = conv1D(ln(h[t], w[p + "ln_2.weight"]!, w[p + "ln_2.bias"]!), w[p + "mlp.c_fc.weight"]!, w[p + "mlp.c_fc.bias"]!).map(gelu)
                h[t] = zip(h[t], conv1D(f, w[p + "mlp.c_proj.weight"]!, w[p + "mlp.c_proj.bias"]!)).map(+)
            }
        }
        let reference = h.flatMap { x in
            let n = ln(x, w["ln_f.weight"]!, w["ln_f.bias"]!)
            return (0..<c.vocabSize).map { v in (0..<C).reduce(0.0) { $0 + n[$1] * Double(w["wte.weight"]![v * C + $1]) } }
        }
        let loaded = try LanguageModel.load(directory: dir)
        let engine = try loaded.logits(tokens: tokens, cache: KVCache(config: c, layers: 0..<2), startPosition: 0)
        XCTAssertLessThanOrEqual(zip(engine, reference).map { abs(Double($0) - $1) }.max()!, 1e-4)
    }
}
