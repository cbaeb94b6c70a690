import COpenBLAS

// mean(B)·mean(A) ≠ mean(B·A): averaging the factors separately is not averaging the adapters' updates.

public enum LoRAAggregationMode: String, Sendable, Equatable, CaseIterable, Codable {
    /// Average A and B separately (weighted): cheap, inexact.
    case naive
    /// FFA-LoRA: A is frozen and shared (kept from the global), only B is averaged; exact because B ↦ B·A is linear.
    case frozenA
    /// Average the products ΔW = Σ wᵢ·Bᵢ·Aᵢ and re-factorise by truncated SVD to rank r; exact when rank(ΔW) ≤ r.
    case productSVD
}

public enum LoRAAggregationError: Error, Equatable, Sendable, CustomStringConvertible {
    case wrongLength(expected: Int, actual: Int)
    case weightCount(adapters: Int, weights: Int)
    case layout(LayoutError)
    case svd(SVDError)

    public var description: String {
        switch self {
        case let .wrongLength(e, a): return "adapter has \(a) values, layout needs \(e); send adapters in the global layout"
        case let .weightCount(a, w): return "\(a) adapters but \(w) weights; give one weight per adapter"
        case let .layout(e): return e.description
        case let .svd(e): return e.description
        }
    }
}

/// Combines full adapters (not deltas) with weights summing to 1. Non-LoRA tensors are averaged linearly.
/// `global` supplies the shared A in `.frozenA` mode.
public func aggregateLoRA(_ adapters: [[Float]], weights: [Double], layout: ParameterLayout,
                          mode: LoRAAggregationMode, global: [Float]) throws(LoRAAggregationError) -> [Float] {
    guard adapters.count == weights.count else { throw .weightCount(adapters: adapters.count, weights: weights.count) }
    guard global.count == layout.count else { throw .wrongLength(expected: layout.count, actual: global.count) }
    for a in adapters where a.count != layout.count { throw .wrongLength(expected: layout.count, actual: a.count) }
    guard !adapters.isEmpty else { return global }
    var out = uncheckedWeightedSum(adapters, weights: weights)
    if mode == .naive { return out }
    let pairs: [LoRAPair]
    do { pairs = try layout.loraPairs() } catch { throw .layout(error) }
    for p in pairs {
        switch mode {
        case .frozenA:
            for i in p.aRange { out[i] = global[i] }
        case .productSVD where p.rank > 0 && p.outFeatures > 0 && p.inFeatures > 0:
            let (b, a): ([Float], [Float])
            (b, a) = try refactorisedProduct(adapters, weights: weights, pair: p)
            out.replaceSubrange(p.bRange, with: b)
            out.replaceSubrange(p.aRange, with: a)
        case .naive, .productSVD:
            break
        }
    }
    return out
}

/// Σ wᵢ·Bᵢ·Aᵢ for one pair, row-major out×in.
/// Throws `.wrongLength` when an adapter is too short for the pair's ranges.
public func weightedProduct(_ adapters: [[Float]], weights: [Double], pair p: LoRAPair) throws(LoRAAggregationError) -> [Float] {
    try requireCovers(adapters, p)
    return uncheckedWeightedProduct(adapters, weights: weights, pair: p)
}

func requireCovers(_ adapters: [[Float]], _ p: LoRAPair) throws(LoRAAggregationError) {
    let need = max(p.aRange.upperBound, p.bRange.upperBound)
    for a in adapters where a.count < need { throw .wrongLength(expected: need, actual: a.count) }
}

func uncheckedWeightedProduct(_ adapters: [[Float]], weights: [Double], pair p: LoRAPair) -> [Float] {
    var dw = [Float](repeating: 0, count: p.outFeatures * p.inFeatures)
    guard p.rank > 0, !dw.isEmpty else { return dw }
    for (x, w) in zip(adapters, weights) {
        x.withUnsafeBufferPointer { xp in
            dw.withUnsafeMutableBufferPointer { d in
                // dw[out×in] += w · B[out×r] · A[r×in]
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(p.outFeatures), Int32(p.inFeatures),
                            Int32(p.rank), Float(w), xp.baseAddress! + p.bRange.lowerBound, Int32(p.rank),
                            xp.baseAddress! + p.aRange.lowerBound, Int32(p.inFeatures), 1, d.baseAddress, Int32(p.inFeatures))
            }
        }
    }
    return dw
}

/// ‖mean(B)·mean(A) − mean(B·A)‖_F / ‖mean(B·A)‖_F over all LoRA pairs (squares summed across pairs):
/// how far naive factor averaging is from the true average update. 0 when there are no pairs or mean(BA) = 0.
public func naiveProductGap(_ adapters: [[Float]], weights: [Double], layout: ParameterLayout) throws(LoRAAggregationError) -> Double {
    guard adapters.count == weights.count else { throw .weightCount(adapters: adapters.count, weights: weights.count) }
    for a in adapters where a.count != layout.count { throw .wrongLength(expected: layout.count, actual: a.count) }
    guard !adapters.isEmpty else { return 0 }
    let pairs: [LoRAPair]
    do { pairs = try layout.loraPairs() } catch { throw .layout(error) }
    let mean = uncheckedWeightedSum(adapters, weights: weights)
    var diff2 = 0.0, ref2 = 0.0
    for p in pairs {
        let exact = uncheckedWeightedProduct(adapters, weights: weights, pair: p)
        let naive = uncheckedWeightedProduct([mean], weights: [1], pair: p)
        for i in 0..<exact.count {
            let d = Double(naive[i]) - Double(exact[i])
            diff2 += d * d
            ref2 += Double(exact[i]) * Double(exact[i])
        }
    }
    return ref2 > 0 ? (diff2 / ref2).squareRoot() : 0
}
