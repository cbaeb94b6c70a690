import COpenBLAS

/// Seeded random projection R^D → R^d that keeps cosines approximately (Johnson–Lindenstrauss),
/// so clustering costs O(n·d) instead of O(n·D). The matrix is regenerated block by block from the seed, never stored whole.
public struct RandomProjection: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Entries N(0, 1/d).
        case gaussian
        /// Very sparse (Li, Hastie & Church 2006, s = 4): ±√(4/d) with probability 1/8 each, 0 otherwise.
        case sparseSign
    }

    public let inputDimension: Int
    public let outputDimension: Int
    public let kind: Kind
    public let seed: UInt64
    /// Input coordinates per generated block.
    static let blockRows = 1024

    public init(inputDimension: Int, outputDimension: Int = 256, kind: Kind = .sparseSign, seed: UInt64 = 0) {
        self.inputDimension = inputDimension; self.outputDimension = max(1, outputDimension)
        self.kind = kind; self.seed = seed
    }

    /// Sketches of all rows (each of length inputDimension; shorter rows are zero-padded, longer truncated).
    public func project(_ points: [[Float]]) -> [[Float]] {
        let n = points.count, d = outputDimension, D = inputDimension
        guard n > 0 else { return [] }
        var out = [Float](repeating: 0, count: n * d)
        var block = [Float](repeating: 0, count: Self.blockRows * d)
        var x = [Float](repeating: 0, count: Self.blockRows)
        var start = 0, blockIndex: UInt64 = 0
        while start < D {
            let rows = min(Self.blockRows, D - start)
            fill(&block, rows: rows, stream: blockIndex)
            for i in 0..<n {
                let p = points[i]
                for r in 0..<rows { let j = start + r; x[r] = j < p.count ? p[j] : 0 }
                // out_i[d] += block[rows×d]ᵀ · x[rows]; one gemv per point keeps a sketch independent of the batch.
                x.withUnsafeBufferPointer { xp in
                    block.withUnsafeBufferPointer { b in
                        out.withUnsafeMutableBufferPointer { o in
                            cblas_sgemv(CblasRowMajor, CblasTrans, Int32(rows), Int32(d), 1, b.baseAddress, Int32(d),
                                        xp.baseAddress, 1, 1, o.baseAddress! + i * d, 1)
                        }
                    }
                }
            }
            start += rows; blockIndex += 1
        }
        return (0..<n).map { Array(out[$0 * d ..< ($0 + 1) * d]) }
    }

    public func project(_ point: [Float]) -> [Float] { project([point])[0] }

    private func fill(_ block: inout [Float], rows: Int, stream: UInt64) {
        var rng = SeededRandom(seed: seed, stream: stream)
        let d = outputDimension
        switch kind {
        case .gaussian:
            let scale = 1 / Double(d).squareRoot()
            for i in 0..<(rows * d) { block[i] = Float(rng.nextGaussian() * scale) }
        case .sparseSign:
            // 3 random bits per entry: ±v with probability 1/8 each (s = 4), 21 entries per 64-bit draw.
            let v = Float((4 / Double(d)).squareRoot())
            var word: UInt64 = 0, left = 0
            for i in 0..<(rows * d) {
                if left == 0 { word = rng.next(); left = 21 }
                let u = word & 7
                word >>= 3; left -= 1
                block[i] = u == 0 ? v : (u == 1 ? -v : 0)
            }
        }
    }
}

extension RandomProjection {
    /// What an edge relays for each device: the seeded projection of its delta (the same matrix at every edge for a
    /// seed, generated once for all devices), or the delta itself when `dimension` is 0 or not smaller.
    public static func sketches(_ deltas: [String: [Float]], dimension: Int, seed: UInt64) -> [String: [Float]] {
        let d = deltas.values.map(\.count).max() ?? 0
        guard dimension > 0, dimension < d else { return deltas }
        let ids = deltas.keys.sorted()
        let out = RandomProjection(inputDimension: d, outputDimension: dimension, seed: seed).project(ids.map { deltas[$0]! })
        return Dictionary(uniqueKeysWithValues: zip(ids, out).map { ($0, $1) })
    }
}
