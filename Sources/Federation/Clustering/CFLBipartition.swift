/// Clustered FL (Sattler et al. 2020): split a cluster in two when its devices sit near a stationary point of the
/// joint objective (‖mean Δ‖ small relative to max ‖Δᵢ‖) while some devices still move far, and the best
/// bipartition (complete linkage on cosine) has cross-cluster cosine below a bound. Recurses into each half.
public struct CFLBipartition: ClusteringMethod {
    public let name = "cfl_bipartition"
    /// Criterion 1: split only if ‖mean Δ‖ / max‖Δᵢ‖ < this (ε1 relative).
    public var maxMeanNormRatio: Double
    /// Criterion 2: split only if max‖Δᵢ‖ > this (ε2).
    public var minMaxNorm: Double
    /// Split only if the largest cosine between the two halves is below this.
    public var maxCrossSimilarity: Double
    public var maxClusters: Int

    public init(maxMeanNormRatio: Double = 0.8, minMaxNorm: Double = 0, maxCrossSimilarity: Double = 0.5,
                maxClusters: Int = 16) {
        self.maxMeanNormRatio = maxMeanNormRatio; self.minMaxNorm = minMaxNorm
        self.maxCrossSimilarity = maxCrossSimilarity; self.maxClusters = maxClusters
    }

    public func cluster(_ points: [[Float]]) -> Clustering {
        let points = rectangular(points)
        let n = points.count
        guard n > 0 else { return Clustering(labels: [], score: 0) }
        let cos = cosineSimilarityMatrix(points)
        var groups: [[Int]] = [Array(0..<n)]
        var worstCross = -1.0
        var i = 0
        while i < groups.count {
            if groups.count < maxClusters, let (a, b, cross) = split(groups[i], points: points, cos: cos, n: n) {
                groups[i] = a; groups.insert(b, at: i + 1)
                worstCross = max(worstCross, cross)
            } else { i += 1 }
        }
        var labels = [Int](repeating: 0, count: n)
        for (g, members) in groups.enumerated() { for m in members { labels[m] = g } }
        return Clustering(labels: labels, score: worstCross)
    }

    /// The bipartition of `members` if the CFL criteria allow it.
    func split(_ members: [Int], points: [[Float]], cos: [Double], n: Int) -> ([Int], [Int], Double)? {
        guard members.count >= 2 else { return nil }
        var mean = [Float](repeating: 0, count: points[0].count)
        var maxNorm = 0.0
        for m in members {
            VectorMath.axpy(1 / Float(members.count), points[m], &mean)
            maxNorm = max(maxNorm, VectorMath.norm(points[m]))
        }
        guard maxNorm > minMaxNorm, maxNorm > 0, VectorMath.norm(mean) / maxNorm < maxMeanNormRatio else { return nil }
        let (a, b) = completeLinkageBipartition(members, cos: cos, n: n)
        var cross = -1.0
        for x in a { for y in b { cross = max(cross, cos[x * n + y]) } }
        return cross < maxCrossSimilarity ? (a, b, cross) : nil
    }
}

/// Agglomerative merging by complete linkage on similarity (merge the pair whose least-similar members are most similar)
/// until two groups remain: the bipartition with small maximum cross similarity that Sattler et al. use.
func completeLinkageBipartition(_ members: [Int], cos: [Double], n: Int) -> ([Int], [Int]) {
    var groups = members.map { [$0] }
    // link[g][h] = min similarity between groups g and h.
    var link = groups.map { g in groups.map { h in cos[g[0] * n + h[0]] } }
    while groups.count > 2 {
        var bg = 0, bh = 1, bs = -Double.infinity
        for g in 0..<groups.count { for h in (g + 1)..<groups.count where link[g][h] > bs { bs = link[g][h]; bg = g; bh = h } }
        groups[bg].append(contentsOf: groups[bh])
        for x in 0..<groups.count { link[bg][x] = min(link[bg][x], link[bh][x]); link[x][bg] = link[bg][x] }
        groups.remove(at: bh); link.remove(at: bh)
        for x in 0..<link.count { link[x].remove(at: bh) }
    }
    return (groups[0].sorted(), groups.count > 1 ? groups[1].sorted() : [])
}
