import COpenBLAS

// Re-factorising ΔW = Σ wᵢ·Bᵢ·Aᵢ to rank r. ΔW = P·Q with P = [w₁B₁ … wₙBₙ] (out×m) and Q = [A₁; …; Aₙ] (m×in),
// m = n·r. When m < min(out, in) we never form ΔW: SVD P and Qᵀ (thin), SVD the small core, rotate back.
// That is O((out + in)·m²) instead of O(out·in·min(out, in)).

/// Rank-r factors (B' out×r, A' r×in) of the best rank-r approximation of Σ wᵢ·Bᵢ·Aᵢ.
/// `factored` nil chooses the factored path when n·r < min(out, in).
public func refactorisedProduct(_ adapters: [[Float]], weights: [Double], pair p: LoRAPair,
                                factored: Bool? = nil) throws(LoRAAggregationError) -> (b: [Float], a: [Float]) {
    try requireCovers(adapters, p)
    do { return try refactorise(adapters, weights: weights, pair: p, factored: factored) } catch { throw .svd(error) }
}

private func refactorise(_ adapters: [[Float]], weights: [Double], pair p: LoRAPair,
                         factored: Bool?) throws(SVDError) -> (b: [Float], a: [Float]) {
    let r = p.rank, out = p.outFeatures, inF = p.inFeatures
    let m = adapters.count * r
    guard m > 0, out > 0, inF > 0 else {
        return ([Float](repeating: 0, count: out * r), [Float](repeating: 0, count: r * inF))
    }
    if !(factored ?? (m < min(out, inF))) {
        let dw = uncheckedWeightedProduct(adapters, weights: weights, pair: p)
        return try SingularValueDecomposition(dw, rows: out, cols: inF).loraFactors(rank: r)
    }
    var pm = [Float](repeating: 0, count: out * m)   // P, row-major out×m
    var qt = [Float](repeating: 0, count: inF * m)   // Qᵀ, row-major in×m
    for (i, (x, w)) in zip(adapters, weights).enumerated() {
        for o in 0..<out { for t in 0..<r { pm[o * m + i * r + t] = Float(w) * x[p.bRange.lowerBound + o * r + t] } }
        for t in 0..<r { for c in 0..<inF { qt[c * m + i * r + t] = x[p.aRange.lowerBound + t * inF + c] } }
    }
    let sp = try SingularValueDecomposition(pm, rows: out, cols: m)   // P = U₁ S₁ V₁ᵀ
    let sq = try SingularValueDecomposition(qt, rows: inF, cols: m)   // Qᵀ = U₂ S₂ V₂ᵀ
    let k1 = sp.k, k2 = sq.k
    // core = S₁ · V₁ᵀ · V₂ · S₂ (k1×k2), so ΔW = U₁ · core · U₂ᵀ.
    var core = [Float](repeating: 0, count: k1 * k2)
    sp.vt.withUnsafeBufferPointer { a in
        sq.vt.withUnsafeBufferPointer { b in
            core.withUnsafeMutableBufferPointer { c in
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(k1), Int32(k2), Int32(m),
                            1, a.baseAddress, Int32(m), b.baseAddress, Int32(m), 0, c.baseAddress, Int32(k2))
            }
        }
    }
    for i in 0..<k1 { for j in 0..<k2 { core[i * k2 + j] *= sp.s[i] * sq.s[j] } }
    let sc = try SingularValueDecomposition(core, rows: k1, cols: k2)
    let kc = sc.k
    var u = [Float](repeating: 0, count: out * kc)   // U₁·U_c
    var vt = [Float](repeating: 0, count: kc * inF)  // V_cᵀ·U₂ᵀ
    sp.u.withUnsafeBufferPointer { a in
        sc.u.withUnsafeBufferPointer { b in
            u.withUnsafeMutableBufferPointer { c in
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(out), Int32(kc), Int32(k1),
                            1, a.baseAddress, Int32(k1), b.baseAddress, Int32(kc), 0, c.baseAddress, Int32(kc))
            }
        }
    }
    sc.vt.withUnsafeBufferPointer { a in
        sq.u.withUnsafeBufferPointer { b in
            vt.withUnsafeMutableBufferPointer { c in
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(kc), Int32(inF), Int32(k2),
                            1, a.baseAddress, Int32(k2), b.baseAddress, Int32(k2), 0, c.baseAddress, Int32(inF))
            }
        }
    }
    return SingularValueDecomposition(rows: out, cols: inF, u: u, s: sc.s, vt: vt).loraFactors(rank: r)
}
