import Engine
import XCTest

/// Whole-model finite differences: every parameter tensor (and the LoRA A and B) through the full
/// forward (embeddings, layernorm, attention, GELU MLP, residuals, tied head, cross-entropy).
final class ModelGradientTests: XCTestCase {
    func testBaseGradientsMatchFiniteDifferencesForEveryTensor() throws {
        let m = try Fixture.model()
        let l = m.layout
        try checkBaseGradients(m, slots: [l.wte, l.wpe, l.ln1w, l.ln1b, l.qkvw, l.qkvb, l.attprojw, l.attprojb,
                                          l.ln2w, l.ln2b, l.fcw, l.fcb, l.fcprojw, l.fcprojb, l.lnfw, l.lnfb])
    }

    func testAdapterGradientsMatchFiniteDifferencesForLoRAAAndB() throws {
        let m = try Fixture.model()
        try m.attachLoRA(LoRAConfig(rank: 2, alpha: 4, targets: [.attnQKV, .attnProj, .mlpFC, .mlpProj]), seed: 5)
        try checkAdapterGradients(m)
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
