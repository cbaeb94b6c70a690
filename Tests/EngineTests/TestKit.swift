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
