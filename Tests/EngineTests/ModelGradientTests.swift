import Engine
import XCTest

/// Whole-model finite differences: every parameter tensor (and the LoRA A and B) through the full
/// forward (embeddings, layernorm, attention, GELU MLP, residuals, tied head, cross-entropy).
final class ModelGradientTests: XCTestCase {
    let h: Float = 1e-2

    func testBaseGradientsMatchFiniteDifferencesForEveryTensor() throws {
        let m = try Fixture.model()
        let c = Fixture.micro
        let inputs = Fixture.tokens(12, vocab: c.vocabSize, seed: 3), targets = Fixture.tokens(12, vocab: c.vocabSize, seed: 4)
        let (_, grads) = try m.gradients(inputs: inputs, targets: targets, batch: 2, trainable: .base)
        let l = m.layout
        let slots = [l.wte, l.wpe, l.ln1w, l.ln1b, l.qkvw, l.qkvb, l.attprojw, l.attprojb,
                     l.ln2w, l.ln2b, l.fcw, l.fcb, l.fcprojw, l.fcprojb, l.lnfw, l.lnfb]
        let p = m.parameters
        for (k, s) in slots.enumerated() {
            // a few coordinates per tensor, including the largest-gradient one
            let range = s.offset..<(s.offset + s.count)
            let top = range.max { abs(grads[$0]) < abs(grads[$1]) }!
            XCTAssertGreaterThan(abs(grads[top]), 5e-3, "tensor \(k): gradient too small for the check to mean anything")
            for i in [top, s.offset, s.offset + s.count / 2, s.offset + s.count - 1] {
                let x0 = p[i]
                p[i] = x0 + h; let lp = try m.loss(inputs: inputs, targets: targets, batch: 2)
                p[i] = x0 - h; let lm = try m.loss(inputs: inputs, targets: targets, batch: 2)
                p[i] = x0
                assertGradient(grads[i], Double(lp - lm) / Double(2 * h), "tensor \(k) index \(i - s.offset)")
            }
        }
    }

    func testAdapterGradientsMatchFiniteDifferencesForLoRAAAndB() throws {
        let m = try Fixture.model()
        try m.attachLoRA(LoRAConfig(rank: 2, alpha: 4, targets: LoRATarget.allCases), seed: 5)
        let a = m.adapterParameters!
        var rng = SplitMix64(seed: 8)
        for i in 0..<a.count { a[i] = rng.nextGaussian() * 0.3 }  // non-zero B so A gets gradient
        let c = Fixture.micro
        let inputs = Fixture.tokens(12, vocab: c.vocabSize, seed: 3), targets = Fixture.tokens(12, vocab: c.vocabSize, seed: 4)
        let (_, grads) = try m.gradients(inputs: inputs, targets: targets, batch: 2, trainable: .adapter)
        XCTAssertEqual(grads.count, try m.adapter().parameterCount)
        var offset = 0
        for t in try m.adapter().tensors {
            let n = t.values.count
            for i in [offset, offset + n / 3, offset + n - 1] {
                let x0 = a[i]
                a[i] = x0 + h; let lp = try m.loss(inputs: inputs, targets: targets, batch: 2)
                a[i] = x0 - h; let lm = try m.loss(inputs: inputs, targets: targets, batch: 2)
                a[i] = x0
                assertGradient(grads[i], Double(lp - lm) / Double(2 * h), t.name)
            }
            offset += n
        }
    }

    func testAdapterTrainingLeavesBaseWeightsUntouched() throws {
        let m = try Fixture.model(.tiny, scale: 0)
        let before = Array(m.parameters)
        try m.attachLoRA(LoRAConfig(rank: 4, alpha: 8), seed: 1)
        let text = ByteTokenizerFixture.tokens("the quick brown fox jumps over the lazy dog. ")
        _ = try m.trainAdapter(tokens: text, steps: 3, batch: 2, sequence: 16, learningRate: 1e-2, seed: 2)
        XCTAssertEqual(Array(m.parameters), before)
        XCTAssertNotEqual(try m.adapter().flatten().filter { $0 != 0 }.count, 0)
    }
}

enum ByteTokenizerFixture {
    static func tokens(_ s: String) -> [Int32] { s.utf8.map { Int32($0) } }
}
