/// Spherical k-means (cosine) for k = 2...kMax, k-means++ seeding and restarts, k chosen by silhouette.
/// k = 1 when all points point the same way (every pairwise cosine ≥ sameDirectionCosine)
/// or no k reaches minSilhouette.
public struct SilhouetteKMeans: ClusteringMethod {
    public let name = "silhouette_kmeans"
    public var kMax: Int
    public var minSilhouette: Double
    public var sameDirectionCosine: Double
    public var restarts: Int
    public var iterations: Int
    public var seed: UInt64

    public init(kMax: Int = 8, minSilhouette: Double = 0.25, sameDirectionCosine: Double = 0.9,
                restarts: Int = 5, iterations: Int = 50, seed: UInt64 = 0) {
        self.kMax = kMax; self.minSilhouette = minSilhouette; self.sameDirectionCosine = sameDirectionCosine
        self.restarts = max(1, restarts); self.iterations = max(1, iterations); self.seed = seed
    }

    public func cluster(_ points: [[Float]]) -> Clustering {
        let points = rectangular(points)
        let n = points.count
        guard n > 2 else { return Clustering(labels: [Int](repeating: 0, count: n), score: 0) }
        let cos = cosineSimilarityMatrix(points)
        if cos.allSatisfy({ $0 >= sameDirectionCosine }) {
            return Clustering(labels: [Int](repeating: 0, count: n), score: 0)
        }
        let dist = cos.map { 1 - $0 }
        let unit = points.map(unitVector)
        var best = Clustering(labels: [Int](repeating: 0, count: n), score: 0)
        var bestScore = -Double.infinity
        for k in 2...max(2, min(kMax, n - 1)) {
            let labels = sphericalKMeans(unit, k: k, cos: cos)
            let s = silhouette(labels: labels, distances: dist)
            if s > bestScore + 1e-12 { bestScore = s; best = Clustering(labels: labels, score: s) }
        }
        return bestScore >= minSilhouette ? best : Clustering(labels: [Int](repeating: 0, count: n), score: bestScore)
    }

    /// Best of `restarts` runs by total cosine to the assigned centroid.
    func sphericalKMeans(_ unit: [[Float]], k: Int, cos: [Double]) -> [Int] {
        let n = unit.count
        var bestLabels = [Int](repeating: 0, count: n)
        var bestObjective = -Double.infinity
        for restart in 0..<restarts {
            var rng = SeededRandom(seed: seed, stream: UInt64(k * 1000 + restart))
            // k-means++ on distance 1 − cos.
            var centers = [Int(rng.next() % UInt64(n))]
            var nearest = (0..<n).map { 1 - cos[$0 * n + centers[0]] }
            while centers.count < k {
                let total = nearest.reduce(0) { $0 + max(0, $1) * max(0, $1) }
                var pick = 0
                if total > 0 {
                    var u = rng.nextUnit() * total
                    for i in 0..<n { u -= max(0, nearest[i]) * max(0, nearest[i]); if u <= 0 { pick = i; break } }
                } else { pick = Int(rng.next() % UInt64(n)) }
                centers.append(pick)
                for i in 0..<n { nearest[i] = min(nearest[i], 1 - cos[i * n + pick]) }
            }
            var centroids = centers.map { unit[$0] }
            var labels = [Int](repeating: -1, count: n)
            var objective = 0.0
            for _ in 0..<iterations {
                var changed = false
                objective = 0
                for i in 0..<n {
                    var bc = 0, bs = -Double.infinity
                    for c in 0..<k {
                        let s = Double(VectorMath.dot(unit[i], centroids[c]))
                        if s > bs { bs = s; bc = c }
                    }
                    objective += bs
                    if labels[i] != bc { labels[i] = bc; changed = true }
                }
                if !changed { break }
                for c in 0..<k {
                    var m = [Float](repeating: 0, count: unit[0].count)
                    var members = 0
                    for i in 0..<n where labels[i] == c { VectorMath.axpy(1, unit[i], &m); members += 1 }
                    // An emptied cluster keeps its old centroid.
                    if members > 0 { centroids[c] = unitVector(m) }
                }
            }
            if objective > bestObjective + 1e-9 { bestObjective = objective; bestLabels = labels }
        }
        return bestLabels
    }
}
