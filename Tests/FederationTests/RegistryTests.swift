import Federation
import XCTest

final class RegistryTests: XCTestCase {
    func testRegistryBuildsEachStrategyByName() throws {
        for name in StrategySettings.known {
            var s = StrategySettings(name: name)
            s.maxNorm = 1
            XCTAssertEqual(try s.make().name, name)
        }
        var async = AsyncSettings()
        async.mode = "fedbuff"; async.buffer = 2; async.stalenessKind = "constant"
        var rule = try async.rule()
        var global = flatGlobal([0])
        XCTAssertEqual(rule.name, "fedbuff")
        XCTAssertNil(try rule.submit(ModelUpdate(device: "a", samples: 1, baseVersion: 0, delta: [2]), base: [0], staleness: 0, to: &global))
        XCTAssertNotNil(try rule.submit(ModelUpdate(device: "b", samples: 1, baseVersion: 0, delta: [4]), base: [0], staleness: 0, to: &global))
        XCTAssertEqual(global.parameters, [3])
    }

    func testRegistryRejectsUnknownNamesAndBadValuesNamingTheField() {
        XCTAssertThrowsError(try StrategySettings(name: "fedprox").make()) {
            XCTAssertEqual($0 as? RegistryError, .unknown(kind: "aggregation strategy", name: "fedprox", known: StrategySettings.known))
        }
        XCTAssertThrowsError(try StrategySettings(name: "norm_bounded").make()) {
            guard case .invalid(_, let field, _) = $0 as? RegistryError else { return XCTFail("\($0)") }
            XCTAssertEqual(field, "max_norm")
        }
        var trim = StrategySettings(name: "trimmed_mean"); trim.trimFraction = 0.6
        XCTAssertThrowsError(try trim.make())
        XCTAssertThrowsError(try makeUpdateCodec(name: "zip"))
        XCTAssertThrowsError(try makeClusteringMethod("dbscan", seed: 0))
        XCTAssertEqual(try makeUpdateCodec(name: "topk", topKFraction: 0.5).name, "topk")
        XCTAssertEqual(try makeClusteringMethod("cfl", seed: 0).name, "cfl_bipartition")
        var bad = ClusteredSettings(); bad.method = "ifca"; bad.k = 1
        XCTAssertThrowsError(try bad.config(seed: 0))
    }
}
