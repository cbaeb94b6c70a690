import Federation
import XCTest

final class ClusteringTests: XCTestCase {
    /// Devices i = 0..<n take direction i % clusters plus Gaussian noise of relative size `noise`.
    func planted(devices n: Int, clusters: Int, dim: Int, noise: Double, seed: UInt64) -> (points: [[Float]], truth: [Int]) {
        let directions = (0..<clusters).map { unitVector(randomVector(dim, seed: seed &+ UInt64($0))) }
        var points: [[Float]] = []
        for i in 0..<n {
            let n = randomVector(dim, seed: seed &+ 1000 &+ UInt64(i), scale: noise / Double(dim).squareRoot())
            points.append(zip(directions[i % clusters], n).map { 2 * ($0 + $1) })
        }
        return (points, (0..<n).map { $0 % clusters })
    }

    func testAdjustedRandIndexKnownValues() {
        XCTAssertEqual(adjustedRandIndex([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2]), 1, accuracy: 1e-12)
        XCTAssertEqual(adjustedRandIndex([0, 0, 1, 1, 2, 2], [2, 2, 0, 0, 1, 1]), 1, accuracy: 1e-12)
        // Contingency [[2,1,0],[0,1,2]]: index 2, expected 6·3/15 = 1.2, max 4.5 → 0.8/3.3 = 8/33.
        XCTAssertEqual(adjustedRandIndex([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2]), 8.0 / 33, accuracy: 1e-12)
        XCTAssertEqual(adjustedRandIndex([0, 0, 0, 0], [0, 1, 2, 3]), 0, accuracy: 1e-12)
        XCTAssertEqual(adjustedRandIndex([0, 0, 1, 1], [0, 1, 0, 1]), -0.5, accuracy: 1e-12)
    }

    func testSilhouetteKMeansRecoversThreePlantedDirections() {
        let (points, truth) = planted(devices: 24, clusters: 3, dim: 400, noise: 0.5, seed: 11)
        let result = SilhouetteKMeans(kMax: 6, seed: 3).cluster(points)
        XCTAssertEqual(result.k, 3)
        XCTAssertEqual(adjustedRandIndex(result.labels, truth), 1, accuracy: 1e-12)
        XCTAssertGreaterThan(result.score, 0.25)
        XCTAssertEqual(result, SilhouetteKMeans(kMax: 6, seed: 3).cluster(points), "deterministic for a seed")
    }

    func testClusteringOnRandomProjectionSketchRecoversPlantedClusters() {
        let (points, truth) = planted(devices: 18, clusters: 3, dim: 3000, noise: 0.5, seed: 5)
        for kind in [RandomProjection.Kind.sparseSign, .gaussian] {
            let sketch = RandomProjection(inputDimension: 3000, outputDimension: 64, kind: kind, seed: 9)
            let sketches = sketch.project(points)
            XCTAssertEqual(sketches.count, 18)
            XCTAssertEqual(sketches[0].count, 64)
            XCTAssertEqual(sketch.project(points[0]), sketches[0])
            let result = SilhouetteKMeans(seed: 1).cluster(sketches)
            XCTAssertEqual(adjustedRandIndex(result.labels, truth), 1, accuracy: 1e-12, "\(kind)")
        }
    }

    func testRandomProjectionRoughlyPreservesCosine() {
        let a = randomVector(2000, seed: 1), b = zip(a, randomVector(2000, seed: 2)).map { $0 + $1 }  // cos ≈ 0.707
        let p = RandomProjection(inputDimension: 2000, outputDimension: 256, kind: .gaussian, seed: 4).project([a, b])
        let exact = cosineSimilarityMatrix([a, b])[1], sketched = cosineSimilarityMatrix(p)[1]
        XCTAssertEqual(exact, 0.707, accuracy: 0.03)
        XCTAssertEqual(sketched, exact, accuracy: 0.1)
    }

    func testCFLBipartitionRecoversPlantedClusters() {
        let (points, truth) = planted(devices: 15, clusters: 3, dim: 300, noise: 0.5, seed: 21)
        let result = CFLBipartition().cluster(points)
        XCTAssertEqual(result.k, 3)
        XCTAssertEqual(adjustedRandIndex(result.labels, truth), 1, accuracy: 1e-12)
    }

    func testBothMethodsPickOneClusterWhenUpdatesAreAlike() {
        let (points, _) = planted(devices: 12, clusters: 1, dim: 300, noise: 0.3, seed: 2)
        let methods: [any ClusteringMethod] = [SilhouetteKMeans(seed: 0), CFLBipartition()]
        for m in methods {
            let r = m.cluster(points)
            XCTAssertEqual(r.k, 1, m.name)
            XCTAssertEqual(r.labels, [Int](repeating: 0, count: 12), m.name)
        }
        // Same direction but larger noise (pairwise cosine below 0.9): the silhouette rule still says k = 1.
        let (noisy, _) = planted(devices: 12, clusters: 1, dim: 300, noise: 0.6, seed: 2)
        XCTAssertLessThan(cosineSimilarityMatrix(noisy).min() ?? 1, 0.9)
        XCTAssertEqual(SilhouetteKMeans(seed: 0).cluster(noisy).k, 1)
    }

    func testCenteringRevealsClustersHiddenUnderACommonUpdate() {
        let (points, truth) = planted(devices: 15, clusters: 3, dim: 300, noise: 0.3, seed: 8)
        let common = unitVector(randomVector(300, seed: 999)).map { 8 * $0 }
        let shifted = points.map { zip($0, common).map { $0 + $1 } }
        XCTAssertGreaterThan(cosineSimilarityMatrix(shifted).min() ?? 0, 0.9, "raw cosines all look alike")
        XCTAssertEqual(SilhouetteKMeans(seed: 0).cluster(shifted).k, 1)
        let result = SilhouetteKMeans(seed: 0).cluster(centered(shifted))
        XCTAssertEqual(adjustedRandIndex(result.labels, truth), 1, accuracy: 1e-12)
    }

    func testCosineSimilarityMatrixValues() {
        let m = cosineSimilarityMatrix([[1, 0], [0, 2], [-3, 0], [1, 1]])
        XCTAssertEqual(m[0 * 4 + 0], 1, accuracy: 1e-6)
        XCTAssertEqual(m[0 * 4 + 1], 0, accuracy: 1e-6)
        XCTAssertEqual(m[0 * 4 + 2], -1, accuracy: 1e-6)
        XCTAssertEqual(m[0 * 4 + 3], 0.5.squareRoot(), accuracy: 1e-6)
    }

    func testIFCAPicksLowestFiniteLoss() {
        XCTAssertEqual(ifcaAssign(losses: [0.5, 0.2, 0.9]), 1)
        XCTAssertEqual(ifcaAssign(losses: [.nan, 1, 1]), 1)
        XCTAssertNil(ifcaAssign(losses: [.nan, .infinity]))
        XCTAssertEqual(ifcaAssign(lossMatrix: [[3, 2, 1], [0, 5, 5]]), [2, 0])
    }
}
