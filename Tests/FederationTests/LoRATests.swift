import Federation
import XCTest

final class LoRATests: XCTestCase {
    // One adapted projection (r = 2, in = 5, out = 6) plus a plain bias.
    let layout = try! ParameterLayout(entries: [
        (name: "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight", shape: [2, 5]),
        (name: "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight", shape: [6, 2]),
        (name: "transformer.h.0.ln_1.bias", shape: [3]),
    ])

    func adapter(a: [Float], b: [Float], bias: [Float]) -> [Float] { a + b + bias }

    func product(_ x: [Float]) throws -> [Float] {
        let p = try layout.loraPairs()[0]
        return try weightedProduct([x], weights: [1], pair: p)
    }

    func testFindsPEFTLoRAPairs() throws {
        let pairs = try layout.loraPairs()
        XCTAssertEqual(pairs.count, 1)
        XCTAssertEqual(pairs[0].prefix, "base_model.model.transformer.h.0.attn.c_attn")
        XCTAssertEqual(pairs[0].rank, 2)
        XCTAssertEqual(pairs[0].inFeatures, 5)
        XCTAssertEqual(pairs[0].outFeatures, 6)
        XCTAssertEqual(pairs[0].aRange, 0..<10)
        XCTAssertEqual(pairs[0].bRange, 10..<22)
        let lonely = try ParameterLayout(entries: [(name: "x.lora_A.weight", shape: [2, 3])])
        XCTAssertThrowsError(try lonely.loraPairs()) { XCTAssertEqual($0 as? LayoutError, .missingLoRAPartner(name: "x.lora_A.weight")) }
        let bad = try ParameterLayout(entries: [(name: "x.lora_A.weight", shape: [2, 3]), (name: "x.lora_B.weight", shape: [4, 3])])
        XCTAssertThrowsError(try bad.loraPairs())
    }

    func testSVDReconstructsMatrix() throws {
        let m = randomVector(4 * 3, seed: 3)
        let svd = try SingularValueDecomposition(m, rows: 4, cols: 3)
        XCTAssertEqual(svd.k, 3)
        XCTAssertGreaterThanOrEqual(svd.s[0], svd.s[1])
        let (b, a) = svd.loraFactors(rank: 3)
        var r = [Float](repeating: 0, count: 12)
        for i in 0..<4 { for j in 0..<3 { for t in 0..<3 { r[i * 3 + j] += b[i * 3 + t] * a[t * 3 + j] } } }
        assertClose(r, m, accuracy: 1e-5)
    }

    func testNaiveDiffersFromExactProductMean() throws {
        let x1 = adapter(a: randomVector(10, seed: 1), b: randomVector(12, seed: 2), bias: [1, 2, 3])
        let x2 = adapter(a: randomVector(10, seed: 3), b: randomVector(12, seed: 4), bias: [3, 2, 1])
        let w = [0.5, 0.5]
        let gap = try naiveProductGap([x1, x2], weights: w, layout: layout)
        XCTAssertGreaterThan(gap, 0.1)
        let naive = try aggregateLoRA([x1, x2], weights: w, layout: layout, mode: .naive, global: x1)
        let exact = try weightedProduct([x1, x2], weights: w, pair: try layout.loraPairs()[0])
        let naiveProduct = try product(naive)
        let diff = zip(naiveProduct, exact).map { abs($0 - $1) }.max() ?? 0
        XCTAssertGreaterThan(diff, 0.05)
        assertClose(Array(naive[22...]), [2, 2, 2], accuracy: 1e-6)
    }

    func testFrozenSharedAEqualsMeanOfProductsExactly() throws {
        let sharedA = randomVector(10, seed: 7)
        let global = adapter(a: sharedA, b: [Float](repeating: 0, count: 12), bias: [0, 0, 0])
        let x1 = adapter(a: sharedA, b: randomVector(12, seed: 8), bias: [1, 1, 1])
        let x2 = adapter(a: sharedA, b: randomVector(12, seed: 9), bias: [3, 3, 3])
        let w = [0.25, 0.75]
        let ffa = try aggregateLoRA([x1, x2], weights: w, layout: layout, mode: .frozenA, global: global)
        assertClose(Array(ffa[0..<10]), sharedA, accuracy: 0)
        let exact = try weightedProduct([x1, x2], weights: w, pair: try layout.loraPairs()[0])
        assertClose(try product(ffa), exact, accuracy: 1e-5)
        XCTAssertEqual(try naiveProductGap([x1, x2], weights: w, layout: layout), 0, accuracy: 1e-6)
        assertClose(Array(ffa[22...]), [2.5, 2.5, 2.5], accuracy: 1e-6)
    }

    func testProductSVDIsExactWhenSumFitsRank() throws {
        // Aᵢ = Rᵢ·A0 share a row space, so rank(Σ wᵢBᵢAᵢ) ≤ r = 2 although the Aᵢ differ.
        let a0 = randomVector(10, seed: 1)
        func mix(_ r: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: 10)
            for i in 0..<2 {
                for j in 0..<5 {
                    let first: Float = r[i * 2] * a0[j]
                    out[i * 5 + j] = first + r[i * 2 + 1] * a0[5 + j]
                }
            }
            return out
        }
        let x1 = adapter(a: mix([1, 2, 0, 1]), b: randomVector(12, seed: 5), bias: [0, 0, 0])
        let x2 = adapter(a: mix([0.5, -1, 3, 0.2]), b: randomVector(12, seed: 6), bias: [0, 0, 0])
        let x3 = adapter(a: mix([-2, 0.3, 1, 1]), b: randomVector(12, seed: 7), bias: [0, 0, 0])
        let w = [0.2, 0.3, 0.5]
        let exact = try weightedProduct([x1, x2, x3], weights: w, pair: try layout.loraPairs()[0])
        let svd = try aggregateLoRA([x1, x2, x3], weights: w, layout: layout, mode: .productSVD, global: x1)
        assertClose(try product(svd), exact, accuracy: 1e-4)
        let naive = try aggregateLoRA([x1, x2, x3], weights: w, layout: layout, mode: .naive, global: x1)
        let naiveError = zip(try product(naive), exact).map { abs($0 - $1) }.max() ?? 0
        XCTAssertGreaterThan(naiveError, 0.05)
    }

    func testFactoredRefactorisationMatchesDirectSVD() throws {
        let big = try ParameterLayout(entries: [(name: "m.lora_A.weight", shape: [2, 10]), (name: "m.lora_B.weight", shape: [12, 2])])
        let pair = try big.loraPairs()[0]
        let xs = (0..<3).map { randomVector(big.count, seed: UInt64(40 + $0)) }
        let w = [0.5, 0.3, 0.2]
        func prod(_ f: (b: [Float], a: [Float])) throws -> [Float] { try weightedProduct([f.a + f.b], weights: [1], pair: pair) }
        let direct = try refactorisedProduct(xs, weights: w, pair: pair, factored: false)
        let factored = try refactorisedProduct(xs, weights: w, pair: pair, factored: true)
        assertClose(try prod(factored), try prod(direct), accuracy: 1e-4)
        XCTAssertThrowsError(try weightedProduct([[1, 2]], weights: [1], pair: pair))
        // Rank-r sum (all Aᵢ equal): the factored path is exact too.
        let shared = xs.map { Array(xs[0][0..<20]) + Array($0[20...]) }
        let exact = try weightedProduct(shared, weights: w, pair: pair)
        assertClose(try prod(try refactorisedProduct(shared, weights: w, pair: pair, factored: true)), exact, accuracy: 1e-4)
    }

    func testFrozenAModeOfAnyRoundKeepsAAndAveragesB() throws {
        let a0 = randomVector(10, seed: 1)
        let start = adapter(a: a0, b: [Float](repeating: 0, count: 12), bias: [0, 0, 0])
        let b1 = randomVector(12, seed: 2), b2 = randomVector(12, seed: 3)
        var agg = RoundAggregate(rule: CombineRule(loraMode: .frozenA))
        agg.add(ModelUpdate(device: "a", samples: 1, baseVersion: 0, delta: [Float](repeating: 0.1, count: 10) + b1 + [0, 0, 0]))
        agg.add(ModelUpdate(device: "b", samples: 1, baseVersion: 0, delta: [Float](repeating: 0, count: 10) + b2 + [2, 2, 2]))
        var opt = ServerOptimizer(ServerOptimizerConfig())
        let c = try XCTUnwrap(agg.combine(base: start, layout: layout, optimizer: &opt, version: 1))
        let x = zip(start, c.step).map { $0 + $1 }
        assertClose(Array(x[0..<10]), a0, accuracy: 0, "A stays frozen")
        assertClose(Array(x[10..<22]), zip(b1, b2).map { 0.5 * ($0 + $1) }, accuracy: 1e-6)
        assertClose(Array(x[22...]), [1, 1, 1], accuracy: 1e-6)
    }

    func testProductSVDRoundStepsToTheExactMeanOfTheProducts() throws {
        // Members share A' (so the mean product has rank ≤ r and the exact combine is checkable); B differs.
        let a0 = randomVector(10, seed: 5), aNew = randomVector(10, seed: 6)
        let base = adapter(a: a0, b: [Float](repeating: 0, count: 12), bias: [0, 0, 0])
        let bs = [randomVector(12, seed: 7), randomVector(12, seed: 8)]
        var agg = RoundAggregate(rule: CombineRule(loraMode: .productSVD))
        for (i, b) in bs.enumerated() {
            agg.add(ModelUpdate(device: "d\(i)", samples: i + 1, baseVersion: 0, delta: zip(adapter(a: aNew, b: b, bias: [0, 0, 0]), base).map { $0 - $1 }))
        }
        var opt = ServerOptimizer(ServerOptimizerConfig())
        let c = try XCTUnwrap(agg.combine(base: base, layout: layout, optimizer: &opt, version: 1))
        let x = zip(base, c.step).map { $0 + $1 }
        let want = try weightedProduct(bs.map { adapter(a: aNew, b: $0, bias: []) }, weights: [1.0 / 3, 2.0 / 3], pair: try layout.loraPairs()[0])
        assertClose(try product(x), want, accuracy: 1e-4)
        XCTAssertNotNil(c.naiveProductGap)
        XCTAssertNil(c.combineError)
    }

    // Async exact modes. Zero-initialised B (as LoRA starts) keeps the target products at rank ≤ r, so exact is checkable.

    func testFedAsyncProductModeMixesTheProducts() throws {
        let x = adapter(a: randomVector(10, seed: 11), b: [Float](repeating: 0, count: 12), bias: [0, 0, 0])
        let delta = randomVector(10, seed: 12) + randomVector(12, seed: 13) + [1, 1, 1]
        var xNew = x
        for i in xNew.indices { xNew[i] += delta[i] }
        let beta = 0.6  // alpha 0.6, constant staleness, τ = 0
        let want = try weightedProduct([x, xNew], weights: [1 - beta, beta], pair: try layout.loraPairs()[0])
        var exact = FedAsync(alpha: 0.6, staleness: .constant, loraMode: .productSVD)
        var naive = FedAsync(alpha: 0.6, staleness: .constant)
        var g1 = GlobalModel(layout: layout, parameters: x), g2 = g1
        let update = ModelUpdate(device: "d", samples: 1, baseVersion: 0, delta: delta)
        _ = try exact.submit(update, base: x, staleness: 0, to: &g1)
        _ = try naive.submit(update, base: x, staleness: 0, to: &g2)
        assertClose(try product(g1.parameters), want, accuracy: 1e-4)
        XCTAssertGreaterThan(zip(try product(g2.parameters), want).map { abs($0 - $1) }.max() ?? 0, 0.05, "naive mixes A and B apart")
        assertClose(Array(g1.parameters[22...]), [0.6, 0.6, 0.6], accuracy: 1e-6, "non-LoRA tensors mix linearly")
        XCTAssertEqual(g1.version, 1)
    }

    func testFedBuffProductModeStepsTheProductsIncludingAStaleUpdate() throws {
        // K = 1, η = 1 and constant staleness: each release adds the update's product change to the global's product.
        // Both updates move A from A0 to the same A', so every target product is (·)·A' (rank ≤ r).
        let a0 = randomVector(10, seed: 21), aNew = randomVector(10, seed: 22)
        let b1 = randomVector(12, seed: 23), b2 = randomVector(12, seed: 24)
        let x0 = adapter(a: a0, b: [Float](repeating: 0, count: 12), bias: [0, 0, 0])
        func delta(_ b: [Float], from base: [Float]) -> [Float] { zip(aNew + b + [1, 1, 1], base).map { $0 - $1 } }
        var strategy = FedBuff(bufferSize: 1, staleness: .constant, loraMode: .productSVD)
        var global = GlobalModel(layout: layout, parameters: x0)
        _ = try strategy.submit(ModelUpdate(device: "a", round: 1, samples: 1, baseVersion: 0, delta: delta(b1, from: x0)), base: x0, staleness: 0, to: &global)
        XCTAssertEqual(global.version, 1)
        // Trained from version 0 (τ = 1): its base is the model it was dispatched with, not the current global.
        _ = try strategy.submit(ModelUpdate(device: "b", round: 1, samples: 1, baseVersion: 0, delta: delta(b2, from: x0)), base: x0, staleness: 1, to: &global)
        XCTAssertEqual(global.version, 2)
        XCTAssertNil(strategy.lastError)
        let pair = try layout.loraPairs()[0]
        let want = try weightedProduct([adapter(a: aNew, b: b1, bias: []), adapter(a: aNew, b: b2, bias: [])], weights: [1, 1], pair: pair)
        assertClose(try product(global.parameters), want, accuracy: 1e-4)
        assertClose(Array(global.parameters[22...]), [2, 2, 2], accuracy: 1e-5)
        // Naive adds the raw deltas: A moves twice (A0 + 2(A' − A0)), so the product is off.
        var naive = FedBuff(bufferSize: 1, staleness: .constant)
        var g = GlobalModel(layout: layout, parameters: x0)
        _ = try naive.submit(ModelUpdate(device: "a", round: 1, samples: 1, baseVersion: 0, delta: delta(b1, from: x0)), base: x0, staleness: 0, to: &g)
        _ = try naive.submit(ModelUpdate(device: "b", round: 1, samples: 1, baseVersion: 0, delta: delta(b2, from: x0)), base: x0, staleness: 1, to: &g)
        XCTAssertGreaterThan(zip(try product(g.parameters), want).map { abs($0 - $1) }.max() ?? 0, 0.05)
    }

}
