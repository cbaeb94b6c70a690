import Engine
import XCTest

final class TrainingTests: XCTestCase {
    func testTinyModelOverfitsAShortTextBelowHalfANat() throws {
        let c = ModelConfig(vocabSize: 256, contextLength: 32, layers: 2, heads: 2, width: 32)
        let m = try LanguageModel(config: c, seed: 1)
        let text = ByteTokenizerFixture.tokens("federated learning at the edge. ")
        let trainer = try Trainer(model: m, trainable: .base, batch: 4, sequence: 24,
                                  schedule: LRSchedule(maxLR: 3e-3, warmupSteps: 10, totalSteps: 300),
                                  optimizer: AdamWConfig(weightDecay: 0.01))
        var rng = SplitMix64(seed: 2)
        let first = try trainer.step(tokens: text + text, rng: &rng)
        _ = try trainer.train(tokens: text + text, steps: 299, rng: &rng)
        let final = try m.evaluate(tokens: text + text)
        XCTAssertGreaterThan(first, 5.0)  // ≈ ln 256 at start
        XCTAssertLessThan(final.loss, 0.5)
        XCTAssertEqual(final.tokens, 2 * text.count - 1)
    }

    func testSameSeedGivesBitIdenticalTraining() throws {
        func run() throws -> (Float, [Float]) {
            let m = try LanguageModel(config: .tiny, seed: 3)
            try m.attachLoRA(LoRAConfig(rank: 2, alpha: 4), seed: 4)
            let loss = try m.trainAdapter(tokens: ByteTokenizerFixture.tokens("abcabcabdabcabcabd and more text"), steps: 4,
                                          batch: 2, sequence: 8, learningRate: 1e-2, seed: 5)
            return (loss, try m.adapter().flatten())
        }
        let a = try run(), b = try run()
        XCTAssertEqual(a.0, b.0)
        XCTAssertEqual(a.1, b.1)
    }

    func testLRScheduleWarmsUpThenDecaysToMin() {
        let s = LRSchedule(maxLR: 1, minLR: 0.1, warmupSteps: 10, totalSteps: 110)
        XCTAssertEqual(s.rate(at: 0), 0.1, accuracy: 1e-6)
        XCTAssertEqual(s.rate(at: 9), 1, accuracy: 1e-6)
        XCTAssertEqual(s.rate(at: 60), 0.55, accuracy: 1e-5)
        XCTAssertEqual(s.rate(at: 110), 0.1, accuracy: 1e-6)
    }

    func testAdapterResetRestoresBaseBehaviour() throws {
        let m = try LanguageModel(config: .tiny, seed: 1)
        let tokens = ByteTokenizerFixture.tokens("hello hello hello hello")
        let base = try m.evaluate(tokens: tokens).loss
        try m.attachLoRA(LoRAConfig(rank: 2, alpha: 4), seed: 1)
        _ = try m.trainAdapter(tokens: tokens, steps: 5, batch: 2, sequence: 8, learningRate: 5e-2, seed: 1)
        XCTAssertNotEqual(try m.evaluate(tokens: tokens).loss, base)
        try m.resetAdapter(seed: 7)
        XCTAssertEqual(try m.evaluate(tokens: tokens).loss, base)
    }
}

final class FrozenATests: XCTestCase {
    func testFreezeAChangesOnlyLoRAB() throws {
        let m = try LanguageModel(config: .tiny, seed: 1)
        try m.attachLoRA(LoRAConfig(rank: 2, alpha: 4), seed: 2)
        let before = try m.adapter()
        _ = try m.trainAdapter(tokens: ByteTokenizerFixture.tokens("frozen a, trained b; frozen a, trained b"), steps: 3,
                               batch: 2, sequence: 8, learningRate: 1e-2, freezeA: true, seed: 3)
        let after = try m.adapter()
        for (x, y) in zip(before.tensors, after.tensors) {
            if x.name.contains("lora_A") { XCTAssertEqual(x.values, y.values, x.name) } else { XCTAssertNotEqual(x.values, y.values, x.name) }
        }
    }
}
