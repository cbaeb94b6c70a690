@testable import Federation
import Foundation
import XCTest

/// The RDP accountant against values computed here independently: the sampled Gaussian's RDP at integer orders in
/// closed form, A_α = Σ_k C(α,k)·(1−q)^(α−k)·q^k·exp((k²−k)/(2σ²)) (Mironov, Talwar & Zhang 2019, Theorem 5), summed
/// with exact binomial coefficients and one common scale, and converted to ε with the same formula as the accountant.
final class AccountantTests: XCTestCase {
    /// ε_α of one application at integer α, written apart from the implementation (direct products, no lgamma).
    func referenceRDP(q: Double, sigma: Double, order a: Int) -> Double {
        var logTerms: [Double] = []
        var binom = 1.0  // C(a, k), built up exactly as a product
        for k in 0...a {
            if k > 0 { binom = binom * Double(a - k + 1) / Double(k) }
            logTerms.append(log(binom) + Double(k) * log(q) + Double(a - k) * log(1 - q) + Double(k * k - k) / (2 * sigma * sigma))
        }
        let top = logTerms.max()!
        let logA = top + log(logTerms.reduce(0) { $0 + exp($1 - top) })
        return logA / Double(a - 1)
    }

    func referenceEpsilon(q: Double, sigma: Double, rounds: Int, delta: Double) -> Double {
        (2...128).map { a -> Double in
            let r = Double(rounds) * referenceRDP(q: q, sigma: sigma, order: a)
            let x = Double(a)
            return r - (log(delta) + log(x)) / (x - 1) + log((x - 1) / x)
        }.min()!
    }

    func testRDPAtIntegerOrdersMatchesTheClosedFormOnAGrid() {
        for q in [0.01, 0.1, 0.5] { for sigma in [0.8, 1.0, 2.0] { for a in [2, 3, 5, 8, 16, 32, 63] {
            let got = RDPAccountant.rdp(q: q, sigma: sigma, order: Double(a))
            let want = referenceRDP(q: q, sigma: sigma, order: a)
            XCTAssertEqual(got, want, accuracy: 1e-9 * max(1, abs(want)), "q \(q) σ \(sigma) α \(a)")
        } } }
    }

    /// The fractional-order series, evaluated at an integer, agrees with the integer formula (two independent routes).
    func testFractionalSeriesAgreesWithTheIntegerSumAtIntegerOrders() {
        for q in [0.01, 0.1] { for sigma in [0.9, 1.5] { for a in [2, 4, 10] {
            let fractional = RDPAccountant.logAFractional(q: q, sigma: sigma, order: Double(a)) / Double(a - 1)
            XCTAssertEqual(fractional, referenceRDP(q: q, sigma: sigma, order: a), accuracy: 1e-7, "q \(q) σ \(sigma) α \(a)")
        } } }
    }

    func testEpsilonOnAGridIsAtMostTheIntegerOrderBoundAndClose() {
        for q in [0.01, 0.1, 0.5] { for sigma in [0.8, 1.0, 2.0] { for t in [1, 10, 100] {
            var acc = RDPAccountant()
            acc.compose(q: q, sigma: sigma, count: t)
            let e = acc.epsilon(delta: 1e-5).epsilon
            let ref = referenceEpsilon(q: q, sigma: sigma, rounds: t, delta: 1e-5)
            // The accountant also tries fractional orders, so it can only be lower; where its best order is not
            // below 3, integer orders bracket it and it is at most a few percent lower.
            XCTAssertLessThanOrEqual(e, ref + 1e-9, "q \(q) σ \(sigma) T \(t)")
            if acc.epsilon(delta: 1e-5).order >= 3 { XCTAssertGreaterThan(e, 0.92 * ref, "q \(q) σ \(sigma) T \(t)") }
        } } }
    }

    func testWithoutSamplingTheGaussianMechanismsCurveIsAlphaOverTwoSigmaSquared() {
        var acc = RDPAccountant()
        acc.compose(q: 1, sigma: 2, count: 10)
        for (a, r) in zip(RDPAccountant.orders, acc.rdp) { XCTAssertEqual(r, 10 * a / 8, accuracy: 1e-12) }
    }

    /// Opacus's computation (same formulas, evaluated in Python with scipy) gives 1.71177 for this setting.
    func testAKnownValue() {
        var acc = RDPAccountant()
        acc.compose(q: 0.01, sigma: 1.1, count: 1000)
        XCTAssertEqual(acc.epsilon(delta: 1e-5).epsilon, 1.71177, accuracy: 1e-4)
    }

    func testComposingRoundByRoundEqualsComposingAtOnceAndMoreRoundsCostMore() {
        var a = RDPAccountant(), b = RDPAccountant()
        a.compose(q: 0.1, sigma: 1, count: 50)
        for _ in 0..<50 { b.compose(q: 0.1, sigma: 1) }
        XCTAssertEqual(a.epsilon(delta: 1e-5).epsilon, b.epsilon(delta: 1e-5).epsilon, accuracy: 1e-9)
        b.compose(q: 0.1, sigma: 1)
        XCTAssertGreaterThan(b.epsilon(delta: 1e-5).epsilon, a.epsilon(delta: 1e-5).epsilon)
    }

    func testTheNoiseForATargetEpsilonReachesItAndLittleLessNoiseDoesNot() throws {
        let z = try XCTUnwrap(RDPAccountant.noiseMultiplier(forEpsilon: 8, q: 0.1, rounds: 100, delta: 1e-5))
        func eps(_ s: Double) -> Double { var a = RDPAccountant(); a.compose(q: 0.1, sigma: s, count: 100); return a.epsilon(delta: 1e-5).epsilon }
        XCTAssertLessThanOrEqual(eps(z), 8)
        XCTAssertGreaterThan(eps(z * 0.99), 8)
        XCTAssertNil(RDPAccountant.noiseMultiplier(forEpsilon: 1e-6, q: 1, rounds: 1000, delta: 1e-5))
    }
}
