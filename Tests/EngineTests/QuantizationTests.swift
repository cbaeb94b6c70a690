import CKernels
@testable import Engine
import Foundation
import XCTest

/// Weight-only quantization: error bounds per row/group, quantized products equal dequantized ones (fused kernel,
/// fp32 tiles, input gradient; vector and portable kernels), quantized models end to end.
final class QuantizationTests: XCTestCase {
    static let shape = ModelConfig.llama(vocabSize: 40, contextLength: 16, layers: 2, heads: 4, kvHeads: 2, width: 64,
                                         mlpWidth: 128, rope: RoPEConfig(theta: 1000))
    static let formats: [QuantFormat] = [.int8, .q4(group: 32), .q4(group: 64)]

    override func tearDown() { fi_kernels_allow_vector(1) }

    func testDequantizationErrorIsWithinTheStatedBoundPerRowAndGroup() {
        let rows = 6, cols = 128
        var w = Fixture.randomFloats(rows * cols, seed: 3)
        for i in stride(from: 0, to: w.count, by: 37) { w[i] *= 8 }  // outliers
        for i in 0..<cols { w[2 * cols + i] += 5 }                    // a row far from zero (4-bit minimum matters)
        for format in Self.formats {
            let part = w.withUnsafeBufferPointer { QuantizedMatrix.quantize($0.baseAddress!, rows: 0..<rows, cols: cols, format: format) }
            let q = QuantizedMatrix(format: format, rows: rows, cols: cols, parts: [part])
            var back = [Float](repeating: 0, count: rows * cols)
            q.dequantize(rows: 0..<rows, into: &back)
            switch format {
            case .int8:
                for r in 0..<rows {
                    let s = w[r * cols..<(r + 1) * cols].map(abs).max()! / 127
                    for c in 0..<cols { XCTAssertLessThanOrEqual(abs(w[r * cols + c] - back[r * cols + c]), s / 2 * 1.0001, "int8 row \(r)") }
                }
            case .q4(let g):
                for r in 0..<rows {
                    for gi in 0..<(cols / g) {
                        let x = Array(w[(r * cols + gi * g)..<(r * cols + (gi + 1) * g)])
                        let lo = x.min()!, hi = x.max()!
                        // bound: half a step of d = (hi − lo)/15, plus fp16 rounding of d and the minimum
                        let bound = (hi - lo) / 30 * 1.001 + Float(1) / 1024 * max(abs(lo), abs(hi))
                        for i in 0..<g { XCTAssertLessThanOrEqual(abs(x[i] - back[r * cols + gi * g + i]), bound, "\(format) row \(r) group \(gi)") }
                    }
                }
            }
        }
    }

    func testQuantizedProductsEqualTheDequantizedOnesWithin1e5Relative() {
        let rows = 70, cols = 64
        let w = Fixture.randomFloats(rows * cols, seed: 4)
        for vector in [1, 0] {
            fi_kernels_allow_vector(Int32(vector))
            for format in Self.formats {
                // two row blocks, as a fused q/k/v matrix has
                let parts = w.withUnsafeBufferPointer { b in
                    [QuantizedMatrix.quantize(b.baseAddress!, rows: 0..<30, cols: cols, format: format),
                     QuantizedMatrix.quantize(b.baseAddress! + 30 * cols, rows: 30..<rows, cols: cols, format: format)]
                }
                let q = QuantizedMatrix(format: format, rows: rows, cols: cols, parts: parts)
                var deq = [Float](repeating: 0, count: rows * cols)
                q.dequantize(rows: 0..<rows, into: &deq)
                let bias = Fixture.randomFloats(rows, seed: 5)
                for N in [1, 3, 9, 20] {  // fused kernel (passes of ≤ 4 vectors, up to 16) and fp32 tiles
                    let x = Fixture.randomFloats(N * cols, seed: UInt64(6 + N))
                    var got = [Float](repeating: 0, count: N * rows), want = got
                    q.forward(&got, x, bias: bias, N: N)
                    var xs = x, ws = deq, bs = bias
                    Layers.matmulForward(&want, &xs, &ws, &bs, N: N, C: cols, OC: rows)
                    assertClose(got, want, "\(format) forward N=\(N) vector=\(vector)")
                    // input gradient
                    let dout = Fixture.randomFloats(N * rows, seed: UInt64(20 + N))
                    var gotIn = [Float](repeating: 0, count: N * cols), wantIn = gotIn, d = dout
                    q.backwardInput(&gotIn, dout, N: N)
                    Layers.matmulBackward(&wantIn, nil, nil, &d, &xs, &ws, N: N, C: cols, OC: rows)
                    assertClose(gotIn, wantIn, "\(format) backward N=\(N)")
                }
            }
        }
    }

    func assertClose(_ a: [Float], _ b: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let scale = b.map(abs).max()!
        XCTAssertLessThanOrEqual(zip(a, b).map { abs($0 - $1) }.max()! / scale, 1e-5, what, file: file, line: line)
    }

    func testQuantizedModelsSaveLoadAndStayCloseToFP32() throws {
        let m = try Fixture.model(Self.shape, scale: 0.05)
        let tokens = Fixture.tokens(10, vocab: 40, seed: 2)
        let ref = try m.logits(tokens: tokens, cache: KVCache(config: m.config, layers: 0..<2), startPosition: 0)
        for format in Self.formats {
            let q = try m.quantized(format)
            XCTAssertEqual(q.quantization, format)
            XCTAssertEqual(q.parameterCount, m.parameterCount)
            let ratio = Double(q.weightBytes) / Double(m.weightBytes)
            XCTAssertLessThan(ratio, format == .int8 ? 0.30 : 0.18, "\(format) weight bytes \(ratio)× fp32")
            let logits = try q.logits(tokens: tokens, cache: KVCache(config: q.config, layers: 0..<2), startPosition: 0)
            let err = zip(logits, ref).map { abs($0 - $1) }.max()! / ref.map(abs).max()!
            XCTAssertLessThan(err, format == .int8 ? 0.02 : 0.3, "\(format) logits differ by \(err)")
            XCTAssertGreaterThan(err, 0)
            let dir = Fixture.tempDir()
            defer { try? FileManager.default.removeItem(at: dir) }
            try q.save(directory: dir, shardBytes: 8_000)
            let loaded = try LanguageModel.load(directory: dir)
            XCTAssertEqual(loaded.quantization, format)
            XCTAssertEqual(try loaded.logits(tokens: tokens, cache: KVCache(config: q.config, layers: 0..<2), startPosition: 0), logits)
            // split inference pieces work on the quantized base
            let h = try loaded.embed(tokens: tokens, startPosition: 0)
            let full = try loaded.forwardBlocks(range: 1..<2, hidden: h, cache: KVCache(config: q.config, layers: 1..<2), startPosition: 0)
            let a = try loaded.partialAttention(layer: 1, heads: 0..<3, hidden: h, cache: KVCache(config: q.config, layers: 1..<2), startPosition: 0)
            let b = try loaded.partialAttention(layer: 1, heads: 3..<4, hidden: h, cache: KVCache(config: q.config, layers: 1..<2), startPosition: 0)
            let mid = zip(h, zip(a, b)).map { $0 + $1.0 + $1.1 }
            let m1 = try loaded.partialMLP(layer: 1, columns: 0..<40, hidden: mid), m2 = try loaded.partialMLP(layer: 1, columns: 40..<128, hidden: mid)
            XCTAssertLessThanOrEqual(zip(full, zip(mid, zip(m1, m2))).map { abs($0 - ($1.0 + $1.1.0 + $1.1.1)) }.max()!, 1e-4)
        }
    }

    func testLoRATrainingOnAQuantizedBaseHasExactAdapterGradientsAndLeavesTheBaseAlone() throws {
        let q = try Fixture.model(Self.shape, scale: 0.05).quantized(.q4(group: 32))
        try q.attachLoRA(LoRAConfig(rank: 2, alpha: 4, targets: [.q, .k, .v, .o, .gate, .up, .down]), seed: 3)
        try checkAdapterGradients(q)
        XCTAssertThrowsError(try q.prepareTraining(batch: 1, sequence: 4, trainable: .base))
        XCTAssertThrowsError(try q.mergeAdapter())
        let norms = Array(q.parameters)
        _ = try q.trainAdapter(tokens: Fixture.tokens(64, vocab: 40, seed: 9), steps: 2, batch: 2, sequence: 8, learningRate: 1e-2, seed: 1)
        XCTAssertEqual(Array(q.parameters), norms)
    }

    func testBadQuantizedFoldersAndShapesAreTypedErrors() throws {
        let m = try Fixture.model()  // width 8: not a multiple of a 4-bit group
        XCTAssertThrowsError(try m.quantized(.q4(group: 32))) { error in
            guard case .badConfig(let s)? = error as? EngineError else { return XCTFail("\(error)") }
            XCTAssertTrue(s.contains("group"), s)
        }
        let dir = Fixture.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try m.quantized(.int8).save(directory: dir)
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("config.json"))) as! [String: Any]
        json["quantization_config"] = ["quant_method": "fi", "bits": 3]
        try JSONSerialization.data(withJSONObject: json).write(to: dir.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try LanguageModel.load(directory: dir)) { error in
            guard case .badConfig(let s)? = error as? EngineError else { return XCTFail("\(error)") }
            XCTAssertTrue(s.contains("bits must be 8 or 4"), s)
        }
        json["quantization_config"] = ["quant_method": "fi", "bits": 4, "group_size": 32]  // codes are I8, not U8
        try JSONSerialization.data(withJSONObject: json).write(to: dir.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try LanguageModel.load(directory: dir))
    }
}
