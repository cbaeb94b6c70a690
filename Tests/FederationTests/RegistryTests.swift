import Federation
import XCTest

final class RegistryTests: XCTestCase {
    func testRegistryBuildsEachStrategyByName() throws {
        for name in StrategySpec.known {
            XCTAssertEqual(try makeAggregationStrategy(StrategySpec(name: name)).name.hasPrefix(name), true, name)
        }
        var spec = StrategySpec(name: "fedbuff")
        spec.bufferSize = 2; spec.staleness = "constant"
        var strategy = try makeAggregationStrategy(spec)
        var global = flatGlobal([0])
        XCTAssertEqual(strategy.timing, .asynchronous)
        XCTAssertNil(try strategy.submit(ModelUpdate(device: "a", samples: 1, baseVersion: 0, delta: [2]), to: &global))
        XCTAssertNotNil(try strategy.submit(ModelUpdate(device: "b", samples: 1, baseVersion: 0, delta: [4]), to: &global))
        XCTAssertEqual(global.parameters, [3])
    }

    func testRegistryRejectsUnknownNamesWithTheKnownOnes() {
        XCTAssertThrowsError(try makeAggregationStrategy(StrategySpec(name: "fedprox"))) {
            XCTAssertEqual($0 as? RegistryError, .unknown(kind: "aggregation strategy", name: "fedprox", known: StrategySpec.known))
        }
        var bad = StrategySpec(name: "fedavg"); bad.fraction = 1.5
        XCTAssertThrowsError(try makeAggregationStrategy(bad))
        XCTAssertThrowsError(try makeUpdateCodec(name: "zip"))
        XCTAssertThrowsError(try makeClusteringMethod(ClusteringSpec(name: "dbscan")))
        XCTAssertEqual(try makeUpdateCodec(name: "topk", topKFraction: 0.5).name, "topk")
        XCTAssertEqual(try makeClusteringMethod(ClusteringSpec(name: "cfl_bipartition")).name, "cfl_bipartition")
    }
}
