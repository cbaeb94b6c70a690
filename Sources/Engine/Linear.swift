/// The block's projections with their LoRA adapters: y = x·Wᵀ + b + Σ_slots s·(x·Aᵀ)·Bᵀ on the slot's rows.
/// Training on an fp32 base uses the merged weight W + s·B·A (one matmul each way); inference applies the
/// adapter unmerged, so a stage node can switch adapters per request.
extension LanguageModel {
    typealias Ptr = UnsafeMutablePointer<Float>

    /// out[N, out] = inp[N, in]·Wᵀ + bias for a weight matrix, fp32 or quantized.
    func matmul(_ id: MatrixID, _ out: Ptr, _ inp: Ptr, bias: Ptr?, N: Int) {
        if let q = quant?.matrix(id) { return q.forward(out, inp, bias: bias, N: N) }
        let d = id.dims(config)
        Layers.matmulForward(out, inp, denseMatrix(id), bias, N: N, C: d.inp, OC: d.out)
    }

    /// dinp[N, in] += dout[N, out]·W (and dW += doutᵀ·inp, db += Σ dout when given: fp32 only).
    func matmulBackward(_ id: MatrixID, _ dinp: Ptr?, _ dw: Ptr?, _ db: Ptr?, _ dout: Ptr, _ inp: Ptr, N: Int) {
        if let q = quant?.matrix(id) {
            if let dinp { q.backwardInput(dinp, dout, N: N) }
            return
        }
        let d = id.dims(config)
        Layers.matmulBackward(dinp, dw, db, dout, inp, denseMatrix(id), N: N, C: d.inp, OC: d.out)
    }

    /// out[B,T,C] = embedding rows of tokens (+ learned positions from `start`), fp32 or dequantized.
    func embedTokens(_ out: Ptr, _ tokens: UnsafePointer<Int32>, B: Int, T: Int, start: Int) {
        let C = config.width
        guard let q = quant?.embedding else {
            return Layers.embedForward(out, tokens, p.wte, p.wpe, B: B, T: T, C: C, start: start)
        }
        for i in 0..<(B * T) {
            let row = Int(tokens[i])
            q.dequantize(rows: row..<(row + 1), into: out + i * C)
            if let wpe = p.wpe { for c in 0..<C { out[i * C + c] += wpe[(start + i % T) * C + c] } }
        }
    }

    /// out[N, out] = inp[N, in]·W_mᵀ + b for matrix m of block l, no adapter.
    func baseForward(_ out: Ptr, _ inp: Ptr, _ l: Int, _ m: Projection, N: Int) {
        matmul(.block(m, l), out, inp, bias: bias(m, layer: l), N: N)
    }

    /// out[N, out] = inp·Wᵀ + b (+ adapters); the adapters' u = inp·Aᵀ are saved in `a` (training) or use uScratch.
    func linearForward(_ out: Ptr, _ inp: Ptr, _ l: Int, _ m: Projection, N: Int, a: Activations?, uScratch: Ptr? = nil) {
        let d = m.dims(config)
        guard let lora, !lora.byMatrix[l][m.rawValue].isEmpty else {
            baseForward(out, inp, l, m, N: N)
            return
        }
        let r = lora.config.rank, slots = lora.byMatrix[l][m.rawValue]
        if let a, quant == nil, let merged = lora.merged, let mo = lora.mergedOffset[l][m.rawValue] {
            // training: merged weight for the output, u = inp·Aᵀ kept for the adapter gradients
            Layers.matmulForward(out, inp, merged.base + mo, bias(m, layer: l), N: N, C: d.inp, OC: d.out)
            for si in slots {
                Layers.matmulForward(a.loraU + si * a.N * r, inp, lora.params.base + lora.slots[si].a, nil, N: N, C: d.inp, OC: r)
            }
            return
        }
        baseForward(out, inp, l, m, N: N)
        for si in slots {
            let s = lora.slots[si]
            let u = a.map { $0.loraU + si * $0.N * r } ?? uScratch!
            Layers.loraForward(out + s.rows.lowerBound, u, inp, lora.params.base + s.a, lora.params.base + s.b,
                               N: N, C: s.inp, OC: s.out, r: r, scale: lora.config.scaling, ldo: d.out)
        }
    }

    /// W_merged = W + s·B·A for every adapted matrix (before each training forward on an fp32 base).
    func refreshMerged(_ lora: LoRAWeights) {
        if lora.merged == nil { lora.merged = Arena(count: lora.mergedCount) }
        let merged = lora.merged!
        for l in 0..<config.layers {
            for m in Projection.allCases {
                guard let mo = lora.mergedOffset[l][m.rawValue] else { continue }
                let d = m.dims(config), dst = merged.base + mo
                dst.update(from: denseMatrix(m, layer: l), count: d.out * d.inp)
                for si in lora.byMatrix[l][m.rawValue] {
                    let s = lora.slots[si]
                    gemm(dst + s.rows.lowerBound * d.inp, lora.params.base + s.b, lora.params.base + s.a,
                         M: s.out, N: s.inp, K: lora.config.rank, alpha: lora.config.scaling)
                }
            }
        }
    }

    /// dinp += dout·W (+ the adapters' path); base grads when g is given, LoRA grads whenever adapted.
    func linearBackward(_ dinp: Ptr?, _ dout: Ptr, _ inp: Ptr, _ l: Int, _ m: Projection, N: Int, a: Activations,
                        g: ParameterTensors?) {
        let d = m.dims(config)
        let gw = g.map { denseMatrix(m, layer: l, in: $0) }, gb = g.flatMap { bias(m, layer: l, in: $0) }
        guard let lora, !lora.byMatrix[l][m.rawValue].isEmpty else {
            matmulBackward(.block(m, l), dinp, gw, gb, dout, inp, N: N)
            return
        }
        let r = lora.config.rank
        let merged = quant != nil ? nil : lora.merged.flatMap { arena in lora.mergedOffset[l][m.rawValue].map { arena.base + $0 } }
        // dinp through the merged weight covers the adapter path too; unmerged, each adapter adds its own.
        if let merged {
            Layers.matmulBackward(dinp, gw, gb, dout, inp, merged, N: N, C: d.inp, OC: d.out)
        } else {
            matmulBackward(.block(m, l), dinp, gw, gb, dout, inp, N: N)
        }
        for si in lora.byMatrix[l][m.rawValue] {
            let s = lora.slots[si]
            Layers.loraBackward(merged == nil ? dinp : nil, lora.grads.base + s.a, lora.grads.base + s.b, a.du,
                                dout + s.rows.lowerBound, a.loraU + si * a.N * r, inp, lora.params.base + s.a,
                                lora.params.base + s.b, N: N, C: s.inp, OC: s.out, r: r, scale: lora.config.scaling, ldo: d.out)
        }
    }

    /// logits[N, V] = x[N, C]·headᵀ
    func headForward(_ logits: Ptr, _ x: Ptr, N: Int) {
        matmul(.head, logits, x, bias: nil, N: N)
    }

    /// dx[N, C] += dlogits·head; dhead += dlogitsᵀ·x when given.
    func headBackward(_ dx: Ptr, _ dhead: Ptr?, _ dlogits: Ptr, _ x: Ptr, N: Int) {
        matmulBackward(.head, dx, dhead, nil, dlogits, x, N: N)
    }
}
