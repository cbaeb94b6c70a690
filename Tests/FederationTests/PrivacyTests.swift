@testable import Federation
import Foundation
import XCTest

/// DP-FedAvg's stage: clipping, the noise's spread, the fixed denominator, adaptive clipping, accounting in the engine.
final class PrivacyTests: XCTestCase {
    let key = [UInt8](repeating: 7, count: 32)

    func std(_ x: [Float]) -> (mean: Double, std: Double) {
        let m = x.reduce(0.0) { $0 + Double($1) } / Double(x.count)
        let v = x.reduce(0.0) { $0 + (Double($1) - m) * (Double($1) - m) } / Double(x.count - 1)
        return (m, v.squareRoot())
    }

    func testClippedNormsNeverExceedTheClipAndShortUpdatesAreUntouched() {
        for (i, scale) in [0.001, 0.01, 0.1, 1, 10, 1000].enumerated() {
            let x = randomVector(500, seed: UInt64(i), scale: scale)
            var y = x
            let before = GaussianMechanism.clip(&y, to: 1)
            XCTAssertLessThanOrEqual(VectorMath.norm(y), 1 + 1e-6, "scale \(scale)")
            if before <= 1 { XCTAssertEqual(y, x) } else { XCTAssertEqual(VectorMath.norm(y), 1, accuracy: 1e-5) }
            // Direction kept.
            XCTAssertEqual(Double(VectorMath.dot(x, y)) / (VectorMath.norm(x) * VectorMath.norm(y)), 1, accuracy: 1e-5)
        }
    }

    /// Central DP: one update's round with noise σ·C; the step times the planned count is the noise itself.
    func testCentralNoiseHasStandardDeviationSigmaTimesClip() throws {
        let (sigma, clip) = (1.5, 0.5)
        let p = PrivateCombine(clip: clip, clipsHere: true, noiseStd: sigma * clip, countNoiseStd: 0, planned: 1, key: key, nonce: 1)
        var agg = RoundAggregate(rule: CombineRule(), privacy: p)
        let d = 40_000
        agg.add(ModelUpdate(device: "a", samples: 5, baseVersion: 0, delta: [Float](repeating: 0, count: d)))
        var opt = ServerOptimizer(ServerOptimizerConfig())
        let c = try XCTUnwrap(agg.combine(base: [Float](repeating: 0, count: d), layout: .flat(d), optimizer: &opt, version: 1))
        let s = std(c.step)
        XCTAssertEqual(s.std, sigma * clip, accuracy: 0.02 * sigma * clip)
        XCTAssertEqual(s.mean, 0, accuracy: 4 * sigma * clip / Double(d).squareRoot())
        // Another round (nonce) draws other noise; the same one the same.
        var again = RoundAggregate(rule: CombineRule(), privacy: p)
        again.add(ModelUpdate(device: "a", samples: 5, baseVersion: 0, delta: [Float](repeating: 0, count: d)))
        XCTAssertEqual(again.combine(base: [Float](repeating: 0, count: d), layout: .flat(d), optimizer: &opt, version: 1)?.step, c.step)
    }

    /// Distributed DP: m devices each add their share; the sum's noise has standard deviation σ·C.
    func testDistributedNoiseSharesSumToSigmaTimesClip() {
        let ledger = PrivacyLedger(settings: PrivacySettings(clip: 2, noiseMultiplier: 1.2, mode: .distributed), key: key)
        let task = ledger.task(expected: 25, share: 25)
        XCTAssertEqual(task.noiseStd, 1.2 * 2 / 5, accuracy: 1e-12)
        var sum = [Float](repeating: 0, count: 20_000)
        for i in 0..<25 {
            var x = [Float](repeating: 0, count: sum.count)
            var rng = ChaChaRandom(key: [UInt8](repeating: UInt8(i), count: 32), nonce: 0)
            _ = task.apply(&x, using: &rng)
            for j in sum.indices { sum[j] += x[j] }
        }
        XCTAssertEqual(std(sum).std, 1.2 * 2, accuracy: 0.03 * 2.4)
    }

    /// The step is Σ clip(Δᵢ) / planned: dropped devices shrink it, sample counts do not weigh it.
    func testStepIsTheClippedSumOverThePlannedParticipants() throws {
        let p = PrivateCombine(clip: 1, clipsHere: true, noiseStd: 0, countNoiseStd: 0, planned: 4, key: key, nonce: 2)
        var agg = RoundAggregate(rule: CombineRule(maxWeight: 0.5), privacy: p)
        agg.add(ModelUpdate(device: "a", samples: 1000, baseVersion: 0, delta: [3, 4]))  // clipped to (0.6, 0.8)
        agg.add(ModelUpdate(device: "b", samples: 1, baseVersion: 0, delta: [0.2, 0]))
        agg.add(ModelUpdate(device: "c", samples: 1, baseVersion: 0, delta: [0, -0.4]))
        var opt = ServerOptimizer(ServerOptimizerConfig())
        let c = try XCTUnwrap(agg.combine(base: [0, 0], layout: .flat(2), optimizer: &opt, version: 1))
        assertClose(c.step, [0.8 / 4, 0.4 / 4], accuracy: 1e-6)
        XCTAssertEqual(c.privacy, PrivateRoundReport(delivered: 3, planned: 4, unclipped: 2))
    }

    /// Quantile tracking (Andrew et al. 2021): with update norms spread evenly over [0, 2], C settles near the median.
    func testAdaptiveClipSettlesNearTheTargetQuantileOfTheNorms() {
        var ledger = PrivacyLedger(settings: PrivacySettings(clip: 0.1, adaptive: AdaptiveClipping(quantile: 0.5, learningRate: 0.2),
                                                             noiseMultiplier: 1), key: key)
        for round in 0..<60 {
            ledger.open(expected: 100, population: 1000)
            let plan = ledger.round(wire: UInt64(round + 1), clusters: [0: 100])
            var agg = RoundAggregate(rule: CombineRule(), privacy: plan.combine(for: 0))
            for i in 0..<100 {
                let norm = 2 * (Double(i) + 0.5) / 100
                agg.add(ModelUpdate(device: "d\(i)", samples: 1, baseVersion: 0, delta: [Float(norm), 0]))
            }
            var opt = ServerOptimizer(ServerOptimizerConfig())
            let c = agg.combine(base: [0, 0], layout: .flat(2), optimizer: &opt, version: 1)!
            ledger.close([c.privacy!])
        }
        XCTAssertEqual(ledger.clip, 1, accuracy: 0.15)
        // The count's noise is part of σ: the updates get a little more than σ·C, and the pair accounts as σ.
        XCTAssertGreaterThan(ledger.updateSigma(expected: 100), 1)
        var reference = RDPAccountant()
        reference.compose(q: 0.1, sigma: 1, count: 60)
        XCTAssertEqual(ledger.epsilon, reference.epsilon(delta: 1e-5).epsilon, accuracy: 1e-9)
    }

    /// Distributed rounds whose devices dropped summed fewer noise shares: the accountant charges the smaller σ.
    func testDroppedDevicesInDistributedModeAreChargedTheirMissingNoise() {
        var ledger = PrivacyLedger(settings: PrivacySettings(clip: 1, noiseMultiplier: 2, mode: .distributed), key: key)
        ledger.open(expected: 16, population: 160)
        ledger.close([PrivateRoundReport(delivered: 4, planned: 16, unclipped: 0)])
        var reference = RDPAccountant()
        reference.compose(q: 0.1, sigma: 1)  // 2·√(4/16)
        XCTAssertEqual(ledger.epsilon, reference.epsilon(delta: 1e-5).epsilon, accuracy: 1e-9)
    }

    /// The engine: ε after every round in the records and the summary, and a run that stops before passing its target.
    func testEngineReportsEpsilonEveryRoundAndStopsBeforeTheTarget() {
        let devices = (0..<10).map { ScriptedDevice(id: "d\($0)", target: [Float($0), 1]) }
        var single = RDPAccountant()
        single.compose(q: 0.5, sigma: 1, count: 3)
        let target = single.epsilon(delta: 1e-5).epsilon + 1e-6  // room for exactly three rounds
        let settings = PrivacySettings(clip: 1, noiseMultiplier: 1, delta: 1e-5, targetEpsilon: target)
        let engine = RoundEngine(config: flatConfig(rounds: 10), algorithm: syncAlgorithm(fraction: 0.5, privacy: settings), cost: FixedCost())
        let h = EngineHarness(engine, devices: devices)
        h.join(devices.map(\.id))
        h.run()
        XCTAssertTrue(h.finished)
        let eps = h.records.compactMap(\.epsilon)
        XCTAssertEqual(h.records.map(\.round), [0, 1, 2, 3])
        XCTAssertEqual(eps.count, 4)
        XCTAssertEqual(eps.first, 0)
        XCTAssertEqual(eps, eps.sorted())
        XCTAssertEqual(eps.last!, target, accuracy: 1e-5)
        XCTAssertEqual(h.summary?.rounds, 3)
        XCTAssertEqual(Double(h.summary?.notes["dp_epsilon"] ?? "") ?? 0, target, accuracy: 1e-3)
        XCTAssertEqual(h.summary?.notes["dp_rounds"], "3")
    }

    /// FedBuff: each release charges its devices (c updates in one buffer: c²); ε is the worst device's.
    func testFedBuffChargesEveryDeviceInARelease() {
        var b = BufferPrivacy(settings: PrivacySettings(clip: 1, noiseMultiplier: 2), key: key)
        var sum = [Float](repeating: 0, count: 4)
        b.release(&sum, devices: ["a", "b", "a"], bufferSize: 3)
        b.release(&sum, devices: ["b", "c", "d"], bufferSize: 3)
        XCTAssertEqual(b.load, ["a": 4, "b": 2, "c": 1, "d": 1])
        var reference = RDPAccountant()
        reference.compose(curve: RDPAccountant.orders.map { $0 * 4 / (2 * 4) })
        XCTAssertEqual(b.epsilon, reference.epsilon(delta: 1e-5).epsilon, accuracy: 1e-9)
        XCTAssertNotEqual(sum, [0, 0, 0, 0], "central mode noises the buffer's sum")
        XCTAssertTrue(b.exhausted(more: 1) == false || b.settings.targetEpsilon == nil)
    }

    /// A sketch is P·Δ clipped to C in sketch space plus N(0, noiseStd²): its norm before noise never exceeds C, and
    /// every device of a round projects with the same seed.
    func testSketchReleaseIsClippedAndNoisedAtTheRequestedStd() {
        var rng = ChaChaRandom(key: [UInt8](repeating: 3, count: 32), nonce: 1)
        let delta = randomVector(5000, seed: 9, scale: 1)
        let quiet = SketchRequest(dimension: 64, noiseStd: 0, seed: 7)
        let a = quiet.release(of: delta, clip: 0.5, using: &rng), b = quiet.release(of: delta, clip: 0.5, using: &rng)
        XCTAssertEqual(a, b, "same seed, same projection")
        XCTAssertEqual(Double(a.map { $0 * $0 }.reduce(0, +).squareRoot()), 0.5, accuracy: 1e-4)
        let noisy = SketchRequest(dimension: 20_000, noiseStd: 2, seed: 7)
        let s = noisy.release(of: [Float](repeating: 0, count: 100), clip: 0.5, using: &rng)
        let std = (s.map { Double($0 * $0) }.reduce(0, +) / Double(s.count)).squareRoot()
        XCTAssertEqual(std, 2, accuracy: 0.05)
    }

}
