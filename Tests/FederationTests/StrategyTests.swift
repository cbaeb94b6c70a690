import Federation
import XCTest

/// One round of one model through RoundAggregate: the step the rule makes from `base`.
func combineRound(_ rule: CombineRule, _ updates: [ModelUpdate], base: [Float], optimizer: inout ServerOptimizer) -> Combined? {
    var agg = RoundAggregate(rule: rule)
    for u in updates { agg.add(u) }
    return agg.combine(base: base, layout: .flat(base.count), optimizer: &optimizer, version: 1)
}

func combineRound(_ rule: CombineRule, _ updates: [ModelUpdate], base: [Float]) -> Combined? {
    var o = ServerOptimizer(rule.serverOptimizer)
    return combineRound(rule, updates, base: base, optimizer: &o)
}

func update(_ device: String, _ delta: [Float], samples: Int = 1, loss: Float = 0) -> ModelUpdate {
    ModelUpdate(device: device, samples: samples, baseVersion: 0, delta: delta, loss: loss)
}

final class StrategyTests: XCTestCase {
    func testFedAvgWeightsUpdatesBySamples() throws {
        let c = try XCTUnwrap(combineRound(CombineRule(), [update("a", [1, 0], samples: 1, loss: 2), update("b", [0, 4], samples: 3, loss: 4)], base: [0, 0]))
        XCTAssertEqual(c.result.weights, [0.25, 0.75])
        XCTAssertEqual(c.result.contributors, ["a", "b"])
        XCTAssertEqual(c.result.meanLoss, 3.5, accuracy: 1e-12)
        XCTAssertEqual(c.result.totalSamples, 4)
        assertClose(c.step, [0.25, 3.0], accuracy: 1e-6)
        XCTAssertNil(combineRound(CombineRule(), [], base: [0]), "an empty round makes no step")
    }

    func testWeightCapWaterFillsAndNeverTrustsAClaimedSampleCount() {
        // Uncapped when nobody exceeds the share.
        XCTAssertEqual(cappedWeights([1, 1, 2], maxShare: 0.5), [0.25, 0.25, 0.5])
        // One claim of a million among three honest 10s: capped at 25% of the capped total = exactly one honest weight.
        let w = cappedWeights([10, 10, 10, 1_000_000], maxShare: 0.25)
        for x in w { XCTAssertEqual(x, 0.25, accuracy: 1e-12) }
        // Two heavy ones capped, the rest proportional: c = 0.3·(1 + 2) / (1 − 2·0.3) = 2.25, total 7.5.
        let v = cappedWeights([100, 50, 1, 2], maxShare: 0.3)
        XCTAssertEqual(v[0], 0.3, accuracy: 1e-12); XCTAssertEqual(v[1], 0.3, accuracy: 1e-12)
        XCTAssertEqual(v[2], 1 / 7.5, accuracy: 1e-12); XCTAssertEqual(v[3], 2 / 7.5, accuracy: 1e-12)
        // A cap that cannot hold (2 participants, 25% each) gives equal weights.
        XCTAssertEqual(cappedWeights([1, 9], maxShare: 0.25), [0.5, 0.5])
    }

    func testStreamedFedAvgEqualsTheHeldMeanWithTheCap() throws {
        // 40 updates through a cap of 0.1: FedAvg streams all but ⌊1/0.1⌋ + 1 and must give the exact capped mean.
        let updates = (0..<40).map { i in update("d\(i)", randomVector(16, seed: UInt64(i)), samples: i == 7 ? 100_000 : 1 + i % 5) }
        let rule = CombineRule(strategy: FedAvg(), maxWeight: 0.1)
        let c = try XCTUnwrap(combineRound(rule, updates.shuffled(), base: [Float](repeating: 0, count: 16)))
        let w = cappedWeights(updates.map { Double($0.samples) }, maxShare: 0.1)
        var expected = [Float](repeating: 0, count: 16)
        for (u, wi) in zip(updates, w) { for j in 0..<16 { expected[j] += Float(wi) * u.delta[j] } }
        assertClose(c.step, expected, accuracy: 1e-5)
        let byDevice = Dictionary(uniqueKeysWithValues: zip(c.result.contributors, c.result.weights))
        XCTAssertEqual(byDevice["d7"] ?? 0, 0.1, accuracy: 1e-9, "the inflated claim weighs exactly the cap")
    }

    func testDeviceSamplingIsSeededAndRespectsFractionAndMinimum() {
        let devices = (0..<10).map { "d\($0)" }
        let a = sampleDevices(devices, fraction: 0.3, minimum: 1, seed: 7, round: 4)
        XCTAssertEqual(a.count, 3)
        XCTAssertEqual(a, sampleDevices(devices.reversed(), fraction: 0.3, minimum: 1, seed: 7, round: 4))
        XCTAssertEqual(Set(a).count, 3)
        XCTAssertTrue(Set(a).isSubset(of: Set(devices)))
        let rounds = (0..<8).map { sampleDevices(devices, fraction: 0.3, minimum: 1, seed: 7, round: UInt64($0)) }
        XCTAssertGreaterThan(Set(rounds).count, 1, "different rounds should ask different devices")
        XCTAssertEqual(sampleDevices(devices, fraction: 0.01, minimum: 4, seed: 1, round: 0).count, 4)
    }

    func testStalenessFunctionValues() {
        XCTAssertEqual(StalenessFunction.constant.weight(staleness: 9), 1)
        let poly = StalenessFunction.polynomial(a: 0.5)
        XCTAssertEqual(poly.weight(staleness: 0), 1, accuracy: 1e-12)
        XCTAssertEqual(poly.weight(staleness: 3), 0.5, accuracy: 1e-12)
        XCTAssertEqual(poly.weight(staleness: 8), 1.0 / 3, accuracy: 1e-12)
        let hinge = StalenessFunction.hinge(a: 0.5, b: 2)
        XCTAssertEqual(hinge.weight(staleness: 0), 1)
        XCTAssertEqual(hinge.weight(staleness: 2), 1)
        XCTAssertEqual(hinge.weight(staleness: 4), 0.5, accuracy: 1e-12)
        XCTAssertEqual(hinge.weight(staleness: 10), 0.2, accuracy: 1e-12)
    }

    func testFedAsyncMixesWithStalenessWeightedAlpha() throws {
        var global = flatGlobal([1, 1])
        var fedAsync = FedAsync(alpha: 0.5, staleness: .polynomial(a: 1))
        // τ = 0: β = 0.5, x_new = [1,1] + [2,−2] = [3,−1], x = [2, 0].
        let r1 = try fedAsync.submit(update("a", [2, -2]), base: [1, 1], staleness: 0, to: &global)
        XCTAssertEqual(r1?.weights, [0.5])
        assertClose(global.parameters, [2, 0], accuracy: 1e-6)
        XCTAssertEqual(global.version, 1)
        // τ = 1: β = 0.5·(1+1)^−1 = 0.25, x_new = x_v0 + Δ = [1, 5], x = 0.75·[2,0] + 0.25·[1,5].
        let r2 = try fedAsync.submit(update("b", [0, 4]), base: [1, 1], staleness: 1, to: &global)
        XCTAssertEqual(r2?.stalenesses, [1])
        XCTAssertEqual(r2?.weights ?? [], [0.25])
        assertClose(global.parameters, [1.75, 1.25], accuracy: 1e-6)
        XCTAssertEqual(global.version, 2)
        XCTAssertNil(fedAsync.flush(&global))
    }

    func testFedBuffAppliesNothingBeforeKThenStalenessScaledMean() throws {
        var global = flatGlobal([0, 0])
        var fedBuff = FedBuff(bufferSize: 3, serverLearningRate: 1, staleness: .polynomial(a: 1))
        XCTAssertNil(try fedBuff.submit(update("a", [3, 0]), base: [0, 0], staleness: 0, to: &global))
        XCTAssertNil(try fedBuff.submit(update("b", [0, 3]), base: [0, 0], staleness: 0, to: &global))
        XCTAssertEqual(global.parameters, [0, 0])
        XCTAssertEqual(fedBuff.buffered, 2)
        let r = try fedBuff.submit(update("c", [3, 3]), base: [0, 0], staleness: 0, to: &global)
        XCTAssertEqual(r?.version, 1)
        assertClose(global.parameters, [2, 2], accuracy: 1e-6)
        XCTAssertEqual(fedBuff.buffered, 0)
        // Second buffer: a τ=1 delta counts half (s = 1/2).
        _ = try fedBuff.submit(update("a", [6, 0]), base: [0, 0], staleness: 1, to: &global)
        _ = try fedBuff.submit(update("b", [0, 3]), base: [2, 2], staleness: 0, to: &global)
        let r2 = try fedBuff.submit(update("c", [0, 0]), base: [2, 2], staleness: 0, to: &global)
        XCTAssertEqual(r2?.stalenesses, [1, 0, 0])
        XCTAssertEqual(r2?.weights ?? [], [0.5 / 3, 1.0 / 3, 1.0 / 3])
        assertClose(global.parameters, [3, 3], accuracy: 1e-6)
        XCTAssertEqual(global.version, 2)
    }

    func testFedBuffServerLearningRateAndFlush() throws {
        var global = flatGlobal([0])
        var fedBuff = FedBuff(bufferSize: 4, serverLearningRate: 0.5, staleness: .constant)
        _ = try fedBuff.submit(update("a", [2]), base: [0], staleness: 0, to: &global)
        _ = try fedBuff.submit(update("b", [4]), base: [0], staleness: 0, to: &global)
        XCTAssertThrowsError(try fedBuff.submit(update("c", [4, 1]), base: [0], staleness: 0, to: &global)) {
            XCTAssertEqual($0 as? UpdateRejection, .wrongLength(expected: 1, actual: 2))
        }
        let r = fedBuff.flush(&global)
        XCTAssertEqual(r?.contributors, ["a", "b"])
        assertClose(global.parameters, [1.5], accuracy: 1e-6)  // 0.5 · mean(2, 4)
        XCTAssertNil(fedBuff.flush(&global))
    }

    func testCoordinateMedianIgnoresOneOutlier() throws {
        let rule = CombineRule(strategy: CoordinateMedian())
        let c = try XCTUnwrap(combineRound(rule, [update("d0", [1, 2]), update("d1", [2, 3]), update("d2", [1000, -1000], samples: 1_000_000)], base: [0, 0]))
        XCTAssertEqual(c.step, [2, 2])
        XCTAssertEqual(try coordinateMedian([[1], [3], [5], [100]]), [4])
        XCTAssertThrowsError(try coordinateMedian([[1, 2], [3]])) {
            XCTAssertEqual($0 as? UpdateRejection, .wrongLength(expected: 2, actual: 1))
        }
    }

    func testTrimmedMeanDropsExtremesPerCoordinate() throws {
        XCTAssertEqual(try trimmedMean([[1], [2], [3], [4], [100]], trimFraction: 0.2), [3])
        XCTAssertEqual(try trimmedMean([[1], [2], [3], [4], [100]], trimFraction: 0), [22])
        // β·n = 0.8 still trims one at each end: one attacker among four is always cut.
        XCTAssertEqual(TrimmedMean.cut(n: 4, trimFraction: 0.2), 1)
        XCTAssertEqual(TrimmedMean.cut(n: 2, trimFraction: 0.2), 0)
        let c = try XCTUnwrap(combineRound(CombineRule(strategy: TrimmedMean(trimFraction: 0.25)),
                                           [-50, 1, 3, 90].enumerated().map { update("d\($0)", [Float($1)]) }, base: [0]))
        XCTAssertEqual(c.step, [2])
    }

    func testKrumPicksAnHonestUpdateAmongPlantedOutliers() throws {
        // Five honest updates near [1, 1, 1, 1]; two attackers far away, one claiming a million samples.
        var updates = (0..<5).map { i in update("h\(i)", [1, 1, 1, 1].enumerated().map { Float($1) + 0.01 * Float(($0 + i) % 3) }) }
        updates.append(update("x0", [-20, -20, -20, -20], samples: 1_000_000))
        updates.append(update("x1", [30, -30, 30, -30]))
        let krum = Krum(byzantine: 2, selected: 1)
        let scores = krum.scores(updates.map(\.delta))
        XCTAssertLessThan(scores[0..<5].max()!, scores[5..<7].min()!, "honest updates score better than both outliers")
        let c = try XCTUnwrap(combineRound(CombineRule(strategy: krum), updates, base: [0, 0, 0, 0]))
        let chosen = zip(c.result.contributors, c.result.weights).filter { $0.1 > 0 }.map(\.0)
        XCTAssertEqual(chosen.count, 1)
        XCTAssertTrue(chosen[0].hasPrefix("h"))
        for v in c.step { XCTAssertEqual(v, 1, accuracy: 0.03) }
        // Multi-Krum keeps n − f = 5: exactly the honest ones, sample-weighted.
        let m = try XCTUnwrap(combineRound(CombineRule(strategy: Krum(byzantine: 2, selected: nil)), updates, base: [0, 0, 0, 0]))
        XCTAssertEqual(Set(zip(m.result.contributors, m.result.weights).filter { $0.1 > 0 }.map(\.0)), Set((0..<5).map { "h\($0)" }))
        for v in m.step { XCTAssertEqual(v, 1, accuracy: 0.02) }
        XCTAssertEqual(Krum().f(n: 4), 1)
        XCTAssertEqual(Krum().f(n: 10), 3)
    }

    func testNormBoundedClipsEachUpdateToTheBound() throws {
        let rule = CombineRule(strategy: NormBounded(maxNorm: 1))
        // [3, 4] has norm 5 → [0.6, 0.8]; [0, 0.5] is inside the bound.
        let c = try XCTUnwrap(combineRound(rule, [update("a", [3, 4]), update("b", [0, 0.5])], base: [0, 0]))
        assertClose(c.step, [0.3, 0.65], accuracy: 1e-6)
    }

    func testServerOptimizersOnHandMadeSteps() {
        var none = ServerOptimizer(ServerOptimizerConfig(kind: .none, lr: 0.5))
        XCTAssertEqual(none.step([2, -4]), [1, -2])
        // FedAvgM: m ← 0.9·m + Δ; step = lr·m.
        var m = ServerOptimizer(ServerOptimizerConfig(kind: .fedavgm, lr: 1, beta1: 0.9))
        assertClose(m.step([1, 0]), [1, 0], accuracy: 1e-6)
        assertClose(m.step([1, 2]), [1.9, 2], accuracy: 1e-6)
        // FedAdam, first step: m = 0.1Δ, v = 0.99τ² + 0.01Δ²; step = lr·m/(√v + τ).
        var adam = ServerOptimizer(ServerOptimizerConfig(kind: .fedadam, lr: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-3))
        let s = adam.step([2])
        let v = 0.99 * 1e-6 + 0.01 * 4.0
        XCTAssertEqual(Double(s[0]), 0.1 * 0.2 / (v.squareRoot() + 1e-3), accuracy: 1e-6)
        // FedYogi moves v towards Δ² additively: v ← v − (1−β2)·Δ²·sign(v − Δ²).
        var yogi = ServerOptimizer(ServerOptimizerConfig(kind: .fedyogi, lr: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-3))
        _ = yogi.step([2])
        XCTAssertEqual(Double(yogi.v[0]), 1e-6 + 0.01 * 4, accuracy: 1e-7)
    }
}
