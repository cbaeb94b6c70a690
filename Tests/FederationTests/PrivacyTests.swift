import Federation
import XCTest

final class PrivacyTests: XCTestCase {
    func testClipScalesLongUpdatesToTheClipNormOnly() {
        let m = GaussianMechanism(clipNorm: 1, noiseMultiplier: 0)
        var long: [Float] = [3, 4]
        XCTAssertEqual(m.clip(&long), 0.2, accuracy: 1e-12)
        assertClose(long, [0.6, 0.8], accuracy: 1e-6)
        var short: [Float] = [0.3, 0.4]
        m.clip(&short)
        XCTAssertEqual(short, [0.3, 0.4])
    }

    func testNoiseHasTheConfiguredSpreadAndIsSeeded() {
        let m = GaussianMechanism(clipNorm: 2, noiseMultiplier: 0.5)  // σ = 1
        let noisy = m.privatize([Float](repeating: 0, count: 20_000), seed: 3)
        let mean = noisy.reduce(0, +) / Float(noisy.count)
        let variance = noisy.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(noisy.count)
        XCTAssertEqual(mean, 0, accuracy: 0.03)
        XCTAssertEqual(variance, 1, accuracy: 0.05)
        XCTAssertEqual(noisy, m.privatize([Float](repeating: 0, count: 20_000), seed: 3))
    }
}
