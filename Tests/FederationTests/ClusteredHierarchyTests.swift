import Federation
import XCTest

/// 8 devices on 2 edges, 2 planted domains (device i: domain i % 2, edge i / 4), deltas = shared + domain + noise.
private struct PlantedHierarchy {
    let dim = 512
    let devices = (0..<8).map { "device-\($0)" }
    func domain(_ i: Int) -> Int { i % 2 }
    var truth: [String: String] { Dictionary(uniqueKeysWithValues: devices.enumerated().map { ($1, "d\(domain($0))") }) }

    func delta(_ i: Int, round: UInt64) -> [Float] {
        let common = randomVector(dim, seed: 1, scale: 5 / Double(dim).squareRoot())
        let dir = randomVector(dim, seed: 10 + UInt64(domain(i)), scale: 1 / Double(dim).squareRoot())
        let noise = randomVector(dim, seed: 100 * round + UInt64(i), scale: 0.05 / Double(dim).squareRoot())
        return (0..<dim).map { common[$0] + dir[$0] + noise[$0] }
    }

    func sketches(round: UInt64, dimension: Int = 32) -> [String: [Float]] {
        Dictionary(uniqueKeysWithValues: devices.enumerated().map { i, d in
            (d, ClusteredHierarchy.sketch(delta(i, round: round), dimension: dimension, seed: 3))
        })
    }
}

final class ClusteredHierarchyTests: XCTestCase {
    func testCloudRecoversPlantedClustersFromRelayedSketches() throws {
        let p = PlantedHierarchy()
        var h = try ClusteredHierarchy(devices: p.devices, initial: flatGlobal([Float](repeating: 0, count: p.dim)),
                                       config: ClusteredFederationConfig(warmupRounds: 1, sketchDimension: 32), trueLabels: p.truth)
        XCTAssertTrue(h.sketchesDueNextRound)
        let up = EdgeClusterUpdate(edge: "edge-0", cluster: 0, samples: 4, delta: p.delta(0, round: 1), baseVersion: 0)
        let r = h.aggregate(edgeUpdates: [up], deviceSketches: p.sketches(round: 1))
        let event = try XCTUnwrap(r.recluster)
        XCTAssertEqual(event.k, 2)
        XCTAssertEqual(try XCTUnwrap(h.adjustedRandIndexAgainstTruth()), 1, accuracy: 1e-12)
        XCTAssertEqual(h.clusterIDs, [0, 1])
        for i in 0..<8 { XCTAssertEqual(h.cluster(of: p.devices[i]), h.cluster(of: p.devices[p.domain(i)])) }
        // A new cluster starts from its parent's aggregated model (parent init; sketches cannot rebuild members).
        XCTAssertEqual(h.models[1]?.parameters, h.models[0]?.parameters)
        XCTAssertEqual(h.clusters(of: ["device-0", "device-2"]), [h.cluster(of: "device-0")!])
        XCTAssertEqual(h.clusters(of: p.devices), [0, 1])
        XCTAssertFalse(h.sketchesDueNextRound, "recluster_every 0: cluster once")
    }

    func testPerClusterAverageIsTheSampleWeightedMeanOfEdgeDeltas() throws {
        let devices = ["a", "b", "c", "d"]
        var h = try ClusteredHierarchy(devices: devices, initial: flatGlobal([1, 1, 1]),
                                       mode: .oracle(["a": 0, "b": 0, "c": 1, "d": 1]))
        XCTAssertFalse(h.sketchesDueNextRound, "oracle clusters never re-cluster")
        let ups = [
            EdgeClusterUpdate(edge: "edge-0", cluster: 0, samples: 10, delta: [4, 0, -4], baseVersion: 0),
            EdgeClusterUpdate(edge: "edge-1", cluster: 0, samples: 30, delta: [0, 8, 4], baseVersion: 0),
            EdgeClusterUpdate(edge: "edge-1", cluster: 1, samples: 5, delta: [2, 2, 2], baseVersion: 0),
        ]
        let r = h.aggregate(edgeUpdates: ups)
        XCTAssertTrue(r.rejected.isEmpty)
        assertClose(try XCTUnwrap(h.models[0]).parameters, [1 + 1, 1 + 6, 1 + (-1 + 3)], accuracy: 1e-6)
        assertClose(try XCTUnwrap(h.models[1]).parameters, [3, 3, 3], accuracy: 1e-6)
        XCTAssertEqual(h.models[0]?.version, 1)
        XCTAssertEqual(h.models[1]?.version, 1)
        XCTAssertEqual(r.results[0]?.contributors.count, 2)
        XCTAssertEqual(h.completedCloudRounds, 1)
        // A stale base (version 0 after the cluster moved to 1) and an unknown cluster are rejected, models unchanged.
        let stale = EdgeClusterUpdate(edge: "edge-0", cluster: 0, samples: 1, delta: [1, 1, 1], baseVersion: 0)
        XCTAssertNotNil(h.check(stale))
        XCTAssertEqual(h.check(EdgeClusterUpdate(edge: "edge-0", cluster: 7, samples: 1, delta: [1, 1, 1], baseVersion: 1))?.kind, "unknown_cluster")
        let before = h.models
        let r2 = h.aggregate(edgeUpdates: [stale, EdgeClusterUpdate(edge: "edge-0", cluster: 7, samples: 1, delta: [1, 1, 1], baseVersion: 1)])
        XCTAssertEqual(Set(r2.rejected.map(\.kind)).contains("unknown_cluster"), true)
        XCTAssertEqual(r2.rejected.count, 2)
        XCTAssertEqual(h.models.mapValues(\.parameters), before.mapValues(\.parameters))
    }

    func testClusterIDsStayStableAcrossReclusterings() throws {
        let p = PlantedHierarchy()
        var h = try ClusteredHierarchy(devices: p.devices, initial: flatGlobal([Float](repeating: 0, count: p.dim)),
                                       config: ClusteredFederationConfig(warmupRounds: 1, reclusterEvery: 1, sketchDimension: 32))
        _ = h.aggregate(edgeUpdates: [], deviceSketches: p.sketches(round: 1))
        let first = h.clusterMap
        XCTAssertEqual(Set(first.values).count, 2)
        for round in 2...4 {
            XCTAssertTrue(h.sketchesDueNextRound)
            let r = h.aggregate(edgeUpdates: [], deviceSketches: p.sketches(round: UInt64(round)))
            XCTAssertNotNil(r.recluster)
            XCTAssertEqual(h.clusterMap, first, "round \(round): same partition keeps the same ids")
            XCTAssertEqual(h.clusterIDs, [0, 1])
        }
        XCTAssertEqual(h.reclusterings.count, 4)
    }

    func testSketchIsDeterministicAndKeepsCosines() throws {
        let p = PlantedHierarchy()
        let a = p.delta(0, round: 1), b = p.delta(1, round: 1)
        let sa = ClusteredHierarchy.sketch(a, dimension: 128, seed: 9)
        XCTAssertEqual(sa.count, 128)
        XCTAssertEqual(sa, ClusteredHierarchy.sketch(a, dimension: 128, seed: 9))
        XCTAssertEqual(ClusteredHierarchy.sketch(a, dimension: 0, seed: 9), a, "dimension 0 relays the delta itself")
        let batch = ClusteredHierarchy.sketches(["a": a, "b": b], dimension: 128, seed: 9)
        assertClose(try XCTUnwrap(batch["a"]), sa, accuracy: 1e-5, "a batch sketches like one at a time")
        func cos(_ x: [Float], _ y: [Float]) -> Double {
            let d = zip(x, y).reduce(0.0) { $0 + Double($1.0 * $1.1) }
            let nx = x.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot(), ny = y.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot()
            return d / (nx * ny)
        }
        XCTAssertEqual(cos(sa, ClusteredHierarchy.sketch(b, dimension: 128, seed: 9)), cos(a, b), accuracy: 0.15)
    }
}
