import Engine
import XCTest

/// Small shared fixtures for engine tests.
enum Fixture {
    /// 2 layers, 2 heads, width 8, vocab 16, context 8: small enough for finite differences in debug.
    static let micro = ModelConfig(vocabSize: 16, contextLength: 8, layers: 2, heads: 2, width: 8)

    /// A model with larger-than-default weights so gradients are well above Float rounding.
    static func model(_ config: ModelConfig = micro, seed: UInt64 = 1, scale: Float = 0.3) throws -> LanguageModel {
        let m = try LanguageModel(config: config, seed: seed)
        var rng = SplitMix64(seed: seed &+ 99)
        let p = m.parameters
        for i in 0..<p.count { p[i] += rng.nextGaussian() * scale }
        return m
    }

    static func tokens(_ n: Int, vocab: Int, seed: UInt64) -> [Int32] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in Int32(rng.below(vocab)) }
    }

    static func randomFloats(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in rng.nextGaussian() * scale }
    }

    static func tempDir() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("engine-test-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// Asserts an analytic gradient matches central differences.
/// Float central differences with h = 1e-2: truncation error ~h²·|f'''| ≈ 1e-4, rounding ~ε·|f|/h ≈ 1e-5,
/// so |analytic − numeric| ≤ 5e-4 + 2e-2·|numeric| holds for a correct gradient and fails for a wrong one.
func assertGradient(_ analytic: Float, _ numeric: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    let tol = 5e-4 + 2e-2 * abs(numeric)
    XCTAssertLessThanOrEqual(abs(Double(analytic) - numeric), tol, "\(what): analytic \(analytic) vs numeric \(numeric)", file: file, line: line)
}

/// Checks d(Σ f(x)⊙w)/dx for every coordinate of each input in `inputs` (w fixed and random) by central differences.
func checkLayerGradients(_ name: String, inputs: inout [[Float]], outCount: Int,
                         forward: ([[Float]]) -> [Float], backward: ([[Float]], [Float]) -> [[Float]],
                         file: StaticString = #filePath, line: UInt = #line) {
    let h: Float = 1e-2
    let w = Fixture.randomFloats(outCount, seed: 7)
    func loss(_ xs: [[Float]]) -> Double { zip(forward(xs), w).reduce(0) { $0 + Double($1.0) * Double($1.1) } }
    let grads = backward(inputs, w)
    for k in inputs.indices {
        for i in inputs[k].indices {
            let x0 = inputs[k][i]
            inputs[k][i] = x0 + h; let lp = loss(inputs)
            inputs[k][i] = x0 - h; let lm = loss(inputs)
            inputs[k][i] = x0
            assertGradient(grads[k][i], (lp - lm) / Double(2 * h), "\(name) input \(k)[\(i)]", file: file, line: line)
        }
    }
}

/// Whole-model finite differences: a few coordinates of each of `slots` (the largest-gradient one included) of the
/// mean cross-entropy on fixed random tokens (batch 2 × 6).
func checkBaseGradients(_ m: LanguageModel, slots: [ParameterLayout.Slot], file: StaticString = #filePath, line: UInt = #line) throws {
    let V = m.config.vocabSize
    let inputs = Fixture.tokens(12, vocab: V, seed: 3), targets = Fixture.tokens(12, vocab: V, seed: 4)
    let (_, grads) = try m.gradients(inputs: inputs, targets: targets, batch: 2, trainable: .base)
    let p = m.parameters
    for (k, s) in slots.enumerated() {
        let range = s.offset..<(s.offset + s.count)
        let top = range.max { abs(grads[$0]) < abs(grads[$1]) }!
        XCTAssertGreaterThan(abs(grads[top]), 5e-3, "tensor \(k): gradient too small for the check to mean anything", file: file, line: line)
        for i in [top, s.offset, s.offset + s.count / 2, s.offset + s.count - 1] {
            let x0 = p[i]
            p[i] = x0 + 1e-2; let lp = try m.loss(inputs: inputs, targets: targets, batch: 2)
            p[i] = x0 - 1e-2; let lm = try m.loss(inputs: inputs, targets: targets, batch: 2)
            p[i] = x0
            assertGradient(grads[i], Double(lp - lm) / 2e-2, "tensor \(k) index \(i - s.offset)", file: file, line: line)
        }
    }
}

/// Finite differences of the attached adapter (random non-zero A and B): three coordinates of every tensor.
func checkAdapterGradients(_ m: LanguageModel, file: StaticString = #filePath, line: UInt = #line) throws {
    let a = m.adapterParameters!
    var rng = SplitMix64(seed: 8)
    for i in 0..<a.count { a[i] = rng.nextGaussian() * 0.3 }  // non-zero B so A gets gradient
    let V = m.config.vocabSize
    let inputs = Fixture.tokens(12, vocab: V, seed: 3), targets = Fixture.tokens(12, vocab: V, seed: 4)
    let (_, grads) = try m.gradients(inputs: inputs, targets: targets, batch: 2, trainable: .adapter)
    XCTAssertEqual(grads.count, try m.adapter().parameterCount, file: file, line: line)
    var offset = 0
    for t in try m.adapter().tensors {
        let n = t.values.count
        for i in [offset, offset + n / 3, offset + n - 1] {
            let x0 = a[i]
            a[i] = x0 + 1e-2; let lp = try m.loss(inputs: inputs, targets: targets, batch: 2)
            a[i] = x0 - 1e-2; let lm = try m.loss(inputs: inputs, targets: targets, batch: 2)
            a[i] = x0
            assertGradient(grads[i], Double(lp - lm) / 2e-2, t.name, file: file, line: line)
        }
        offset += n
    }
}

/// Mean next-token cross-entropy computed from inference logits [T, V] of `tokens` (positions 0..<T−1).
func meanNextTokenLoss(_ logits: [Float], _ tokens: [Int32], V: Int) -> Double {
    var total: Double = 0
    for t in 0..<(tokens.count - 1) {
        let row = logits[t * V..<(t + 1) * V]
        let mx = row.max()!
        total += Double(mx) + log(row.reduce(0.0) { $0 + exp(Double($1 - mx)) }) - Double(row[row.startIndex + Int(tokens[t + 1])])
    }
    return total / Double(tokens.count - 1)
}
