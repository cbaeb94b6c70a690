import Federation
import XCTest

final class StrategyTests: XCTestCase {
    func testFedAvgWeightsUpdatesBySamples() throws {
        var global = flatGlobal([0, 0])
        var fedAvg = FedAvg()
        XCTAssertNil(try fedAvg.submit(ModelUpdate(device: "a", samples: 1, baseVersion: 0, delta: [1, 0], loss: 2), to: &global))
        XCTAssertNil(try fedAvg.submit(ModelUpdate(device: "b", samples: 3, baseVersion: 0, delta: [0, 4], loss: 4), to: &global))
        XCTAssertEqual(global.parameters, [0, 0], "sync rule must not touch the global before close")
        guard case let .applied(result) = fedAvg.closeRound(&global) else { return XCTFail("round not applied") }
        XCTAssertEqual(result.weights, [0.25, 0.75])
        XCTAssertEqual(result.contributors, ["a", "b"])
        XCTAssertEqual(result.meanLoss, 3.5, accuracy: 1e-12)
        XCTAssertEqual(result.totalSamples, 4)
        XCTAssertEqual(result.version, 1)
        assertClose(global.parameters, [0.25, 3.0], accuracy: 1e-6)
        XCTAssertEqual(global.version, 1)
        XCTAssertEqual(fedAvg.pendingCount, 0)
    }

    func testFedAvgBelowQuorumLeavesGlobalUnchanged() throws {
        var global = flatGlobal([1, 1])
        var fedAvg = FedAvg(quorum: 3)
        _ = try fedAvg.submit(ModelUpdate(device: "a", samples: 1, baseVersion: 0, delta: [1, 0]), to: &global)
        _ = try fedAvg.submit(ModelUpdate(device: "b", samples: 1, baseVersion: 0, delta: [0, 1]), to: &global)
        XCTAssertEqual(fedAvg.closeRound(&global), .belowQuorum(received: 2, required: 3))
        XCTAssertEqual(global, flatGlobal([1, 1]))
        _ = try fedAvg.submit(ModelUpdate(device: "c", samples: 2, baseVersion: 0, delta: [4, 4]), to: &global)
        guard case .applied = fedAvg.closeRound(&global) else { return XCTFail("quorum reached but not applied") }
        assertClose(global.parameters, [1 + 0.25 + 2, 1 + 0.25 + 2], accuracy: 1e-6)
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
        XCTAssertEqual(FedAvg(fraction: 1).selectDevices(from: ["b", "a"], round: 0), ["a", "b"])
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
        let r1 = try fedAsync.submit(ModelUpdate(device: "a", samples: 1, baseVersion: 0, delta: [2, -2]), to: &global)
        XCTAssertEqual(r1?.weights, [0.5])
        assertClose(global.parameters, [2, 0], accuracy: 1e-6)
        XCTAssertEqual(global.version, 1)
        // τ = 1: β = 0.5·(1+1)^−1 = 0.25, x_new = x_v0 + Δ = [1, 5], x = 0.75·[2,0] + 0.25·[1,5].
        let r2 = try fedAsync.submit(ModelUpdate(device: "b", samples: 1, baseVersion: 0, delta: [0, 4]), to: &global)
        XCTAssertEqual(r2?.stalenesses, [1])
        XCTAssertEqual(r2?.weights ?? [], [0.25])
        assertClose(global.parameters, [1.75, 1.25], accuracy: 1e-6)
        XCTAssertEqual(global.version, 2)
        XCTAssertEqual(fedAsync.closeRound(&global), .nothingPending)
    }

    func testFedAsyncRejectsBaseOlderThanHistoryAndRetries() throws {
        var global = flatGlobal([0])
        var fedAsync = FedAsync(alpha: 1, staleness: .constant, historyDepth: 1)
        _ = try fedAsync.submit(ModelUpdate(device: "a", round: 1, samples: 1, baseVersion: 0, delta: [1]), to: &global)
        _ = try fedAsync.submit(ModelUpdate(device: "b", round: 1, samples: 1, baseVersion: 1, delta: [1]), to: &global)
        XCTAssertThrowsError(try fedAsync.submit(ModelUpdate(device: "c", samples: 1, baseVersion: 0, delta: [1]), to: &global)) {
            XCTAssertEqual($0 as? UpdateRejection, .staleBeyond(staleness: 2, limit: 1))
        }
        XCTAssertThrowsError(try fedAsync.submit(ModelUpdate(device: "a", round: 1, samples: 1, baseVersion: 2, delta: [1]), to: &global)) {
            XCTAssertEqual($0 as? UpdateRejection, .duplicate(device: "a", round: 1))
        }
        XCTAssertEqual(global.parameters, [2])
        XCTAssertEqual(global.version, 2)
    }

    func testFedBuffAppliesNothingBeforeKThenStalenessScaledMean() throws {
        var global = flatGlobal([0, 0])
        var fedBuff = FedBuff(bufferSize: 3, serverLearningRate: 1, staleness: .polynomial(a: 1))
        XCTAssertNil(try fedBuff.submit(ModelUpdate(device: "a", samples: 1, baseVersion: 0, delta: [3, 0]), to: &global))
        XCTAssertNil(try fedBuff.submit(ModelUpdate(device: "b", samples: 1, baseVersion: 0, delta: [0, 3]), to: &global))
        XCTAssertEqual(global.parameters, [0, 0])
        XCTAssertEqual(fedBuff.buffered, 2)
        XCTAssertEqual(fedBuff.closeRound(&global), .belowQuorum(received: 2, required: 3))
        let r = try fedBuff.submit(ModelUpdate(device: "c", samples: 1, baseVersion: 0, delta: [3, 3]), to: &global)
        XCTAssertEqual(r?.version, 1)
        assertClose(global.parameters, [2, 2], accuracy: 1e-6)
        XCTAssertEqual(fedBuff.buffered, 0)
        // Second buffer: a τ=1 delta counts half (s = 1/2).
        _ = try fedBuff.submit(ModelUpdate(device: "a", round: 1, samples: 1, baseVersion: 0, delta: [6, 0]), to: &global)
        _ = try fedBuff.submit(ModelUpdate(device: "b", round: 1, samples: 1, baseVersion: 1, delta: [0, 3]), to: &global)
        let r2 = try fedBuff.submit(ModelUpdate(device: "c", round: 1, samples: 1, baseVersion: 1, delta: [0, 0]), to: &global)
        XCTAssertEqual(r2?.stalenesses, [1, 0, 0])
        XCTAssertEqual(r2?.weights ?? [], [0.5 / 3, 1.0 / 3, 1.0 / 3])
        assertClose(global.parameters, [3, 3], accuracy: 1e-6)
        XCTAssertEqual(global.version, 2)
    }

    func testFedBuffServerLearningRateAndFlush() throws {
        var global = flatGlobal([0])
        var fedBuff = FedBuff(bufferSize: 4, serverLearningRate: 0.5, staleness: .constant)
        _ = try fedBuff.submit(ModelUpdate(device: "a", samples: 1, baseVersion: 0, delta: [2]), to: &global)
        _ = try fedBuff.submit(ModelUpdate(device: "b", samples: 1, baseVersion: 0, delta: [4]), to: &global)
        XCTAssertThrowsError(try fedBuff.submit(ModelUpdate(device: "b", samples: 1, baseVersion: 0, delta: [4]), to: &global))
        let r = fedBuff.flush(&global)
        XCTAssertEqual(r?.contributors, ["a", "b"])
        assertClose(global.parameters, [1.5], accuracy: 1e-6)  // 0.5 · mean(2, 4)
        XCTAssertNil(fedBuff.flush(&global))
    }

    func testCoordinateMedianIgnoresOneOutlier() throws {
        var global = flatGlobal([0, 0])
        var median = CoordinateMedian()
        for (i, d) in [[1, 2], [2, 3], [1000, -1000]].enumerated() {
            _ = try median.submit(ModelUpdate(device: "d\(i)", samples: 1, baseVersion: 0, delta: d.map(Float.init)), to: &global)
        }
        guard case .applied = median.closeRound(&global) else { return XCTFail("not applied") }
        XCTAssertEqual(global.parameters, [2, 2])
        XCTAssertEqual(try coordinateMedian([[1], [3], [5], [100]]), [4])
        XCTAssertThrowsError(try coordinateMedian([[1, 2], [3]])) {
            XCTAssertEqual($0 as? UpdateRejection, .wrongLength(expected: 2, actual: 1))
        }
    }

    func testTrimmedMeanDropsExtremesPerCoordinate() throws {
        XCTAssertEqual(try trimmedMean([[1], [2], [3], [4], [100]], trimFraction: 0.2), [3])
        XCTAssertEqual(try trimmedMean([[1], [2], [3], [4], [100]], trimFraction: 0), [22])
        var global = flatGlobal([0])
        var rule = TrimmedMean(trimFraction: 0.25)
        for (i, v) in [-50, 1, 3, 90].enumerated() {
            _ = try rule.submit(ModelUpdate(device: "d\(i)", samples: 1, baseVersion: 0, delta: [Float(v)]), to: &global)
        }
        guard case .applied = rule.closeRound(&global) else { return XCTFail("not applied") }
        XCTAssertEqual(global.parameters, [2])
    }

    func testHierarchicalScheduleAggregatesEdgeEveryKappa1AndCloudEveryKappa1TimesKappa2() {
        var schedule = HierarchicalSchedule(kappa1: 2, kappa2: 3)
        let expected: [(Int, Bool, Bool)] = [(1, false, false), (2, true, false), (4, true, false), (6, true, true),
                                             (7, false, false), (12, true, true)]
        for (t, edge, cloud) in expected {
            XCTAssertEqual(schedule.edgeAggregates(afterLocalRound: t), edge, "edge at t=\(t)")
            XCTAssertEqual(schedule.cloudAggregates(afterLocalRound: t), cloud, "cloud at t=\(t)")
        }
        let steps = (0..<6).map { _ in schedule.advance() }
        XCTAssertEqual(steps.map(\.edge), [false, true, false, true, false, true])
        XCTAssertEqual(steps.map(\.cloud), [false, false, false, false, false, true])
        XCTAssertEqual(schedule.localRounds, 6)
        XCTAssertEqual(schedule.edgeRounds, 3)
        XCTAssertEqual(schedule.cloudRounds, 1)
    }

    func testHierarchicalCombineAtBothTiersEqualsFlatFedAvg() throws {
        let edge1 = try hierarchicalCombine([WeightedModel(parameters: [1, 0], samples: 1), WeightedModel(parameters: [0, 1], samples: 3)])
        let edge2 = try hierarchicalCombine([WeightedModel(parameters: [1, 1], samples: 4)])
        assertClose(edge1.parameters, [0.25, 0.75], accuracy: 1e-6)
        XCTAssertEqual(edge1.samples, 4)
        let cloud = try hierarchicalCombine([edge1, edge2])
        assertClose(cloud.parameters, [0.625, 0.875], accuracy: 1e-6)
        XCTAssertEqual(cloud.samples, 8)
        XCTAssertThrowsError(try hierarchicalCombine([edge1, WeightedModel(parameters: [1], samples: 1)]))
    }
}
