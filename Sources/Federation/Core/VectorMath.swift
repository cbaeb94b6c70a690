import COpenBLAS

// Flat-vector kernels shared by the strategies; the long ones go through cblas.

enum VectorMath {
    /// y += a·x
    @inline(__always)
    static func axpy(_ a: Float, _ x: [Float], _ y: inout [Float]) {
        precondition(x.count == y.count, "axpy length mismatch (internal)")
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                cblas_saxpy(Int32(xp.count), a, xp.baseAddress, 1, yp.baseAddress, 1)
            }
        }
    }

    static func dot(_ x: [Float], _ y: [Float]) -> Float {
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeBufferPointer { yp in cblas_sdot(Int32(xp.count), xp.baseAddress, 1, yp.baseAddress, 1) }
        }
    }

    /// ||x||₂ accumulated in Double (large adapters overflow nothing, lose little).
    static func norm(_ x: [Float]) -> Double {
        x.withUnsafeBufferPointer(sumOfSquares).squareRoot()
    }

    /// Σ xᵢ² in Double over eight independent partial sums (one serial sum waits on every add's latency);
    /// NaN or infinite exactly when some xᵢ is.
    static func sumOfSquares(_ x: UnsafeBufferPointer<Float>) -> Double {
        var p = SIMD8<Double>(repeating: 0)
        let n8 = x.count & ~7
        var i = 0
        while i < n8 {
            let v = SIMD8<Double>(Double(x[i]), Double(x[i + 1]), Double(x[i + 2]), Double(x[i + 3]),
                                  Double(x[i + 4]), Double(x[i + 5]), Double(x[i + 6]), Double(x[i + 7]))
            p += v * v
            i += 8
        }
        var s = p.sum()
        while i < x.count { s += Double(x[i]) * Double(x[i]); i += 1 }
        return s
    }

    /// G = X·Xᵀ (row-major n×n) of n rows of `width` floats each: one sgemm.
    static func gram(_ rows: [[Float]], width d: Int) -> [Float] {
        let n = rows.count
        var flat = [Float](); flat.reserveCapacity(n * d)
        for r in rows { flat.append(contentsOf: r) }
        var g = [Float](repeating: 0, count: n * n)
        flat.withUnsafeBufferPointer { x in
            g.withUnsafeMutableBufferPointer { out in
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(n), Int32(d),
                            1, x.baseAddress, Int32(d), x.baseAddress, Int32(d), 0, out.baseAddress, Int32(n))
            }
        }
        return g
    }

    static func distance(_ x: [Float], _ y: [Float]) -> Double {
        var s = 0.0
        for i in 0..<x.count { let d = Double(x[i]) - Double(y[i]); s += d * d }
        return s.squareRoot()
    }
}

/// Throws `.wrongLength` unless every vector has the first one's length (inputs to the public combines).
func requireEqualLengths(_ vectors: [[Float]]) throws(UpdateRejection) {
    guard let n = vectors.first?.count else { return }
    for v in vectors where v.count != n { throw .wrongLength(expected: n, actual: v.count) }
}

/// Σ wᵢ·xᵢ over equal-length vectors (FedAvg's combine at any tier). Weights are used as given.
public func weightedSum(_ vectors: [[Float]], weights: [Double]) throws(UpdateRejection) -> [Float] {
    try requireEqualLengths(vectors)
    return uncheckedWeightedSum(vectors, weights: weights)
}

func uncheckedWeightedSum(_ vectors: [[Float]], weights: [Double]) -> [Float] {
    guard let first = vectors.first else { return [] }
    var out = [Float](repeating: 0, count: first.count)
    for (v, w) in zip(vectors, weights) { VectorMath.axpy(Float(w), v, &out) }
    return out
}

/// Sample-proportional weights wᵢ = nᵢ / Σn (uniform when all counts are zero).
public func sampleWeights(_ samples: [Int]) -> [Double] {
    let total = samples.reduce(0) { $0 + max(0, $1) }
    if total == 0 { return samples.map { _ in 1 / Double(max(1, samples.count)) } }
    return samples.map { Double(max(0, $0)) / Double(total) }
}
