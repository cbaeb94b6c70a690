import COpenBLAS

// Devices whose adapter updates point the same way share a cluster (CFL, IFCA anchors).

/// Labels 0..<k, numbered in order of first appearance so equal partitions compare equal.
public struct Clustering: Sendable, Equatable {
    public var labels: [Int]
    public var k: Int
    /// Method's quality score (silhouette for k-means; cross-cluster cosine for CFL).
    public var score: Double

    public init(labels: [Int], score: Double) {
        var map: [Int: Int] = [:]
        self.labels = labels.map { l in
            if let m = map[l] { return m }
            map[l] = map.count
            return map.count - 1
        }
        self.k = map.count
        self.score = score
    }

    public func members(of cluster: Int) -> [Int] { labels.indices.filter { labels[$0] == cluster } }
}

public protocol ClusteringMethod: Sendable {
    var name: String { get }
    /// Groups the points (one row per device: a delta or its sketch). Deterministic for a given seed.
    func cluster(_ points: [[Float]]) -> Clustering
}

/// Cosine similarities between rows, row-major n×n (a zero row has similarity 0 to everything).
public func cosineSimilarityMatrix(_ points: [[Float]]) -> [Double] {
    let unit = rectangular(points).map(unitVector)
    let n = unit.count
    guard n > 0, let d = unit.first?.count else { return [] }
    let gram = VectorMath.gram(unit, width: d)
    return gram.map { Double(min(1, max(-1, $0))) }
}

/// Rows zero-padded to the longest row, so ragged input from the wire cannot read out of bounds.
public func rectangular(_ points: [[Float]]) -> [[Float]] {
    let d = points.map(\.count).max() ?? 0
    return points.map { $0.count == d ? $0 : $0 + [Float](repeating: 0, count: d - $0.count) }
}

/// x / ||x|| (zero stays zero).
public func unitVector(_ x: [Float]) -> [Float] {
    let n = VectorMath.norm(x)
    guard n > 0 else { return x }
    let inv = Float(1 / n)
    return x.map { $0 * inv }
}

/// Mean silhouette for a labelling under distance matrix `dist` (row-major n×n). Singletons score 0.
public func silhouette(labels: [Int], distances dist: [Double]) -> Double {
    let n = labels.count
    let k = (labels.max() ?? -1) + 1
    guard n > 1, k > 1 else { return 0 }
    var sizes = [Int](repeating: 0, count: k)
    for l in labels { sizes[l] += 1 }
    var total = 0.0
    var sums = [Double](repeating: 0, count: k)
    for i in 0..<n {
        for c in 0..<k { sums[c] = 0 }
        for j in 0..<n where j != i { sums[labels[j]] += dist[i * n + j] }
        let own = labels[i]
        guard sizes[own] > 1 else { continue }
        let a = sums[own] / Double(sizes[own] - 1)
        var b = Double.infinity
        for c in 0..<k where c != own && sizes[c] > 0 { b = min(b, sums[c] / Double(sizes[c])) }
        let m = max(a, b)
        total += m > 0 ? (b - a) / m : 0
    }
    return total / Double(n)
}

/// Rows minus their mean. Devices in different domains share a large common update (they all learn the language);
/// removing it leaves the domain-specific directions that clustering should see.
public func centered(_ points: [[Float]]) -> [[Float]] {
    let points = rectangular(points)
    guard let d = points.first?.count else { return points }
    var mean = [Float](repeating: 0, count: d)
    for p in points where p.count == d { VectorMath.axpy(1 / Float(points.count), p, &mean) }
    return points.map { p in
        guard p.count == d else { return p }
        var c = p
        VectorMath.axpy(-1, mean, &c)
        return c
    }
}
