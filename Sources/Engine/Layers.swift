import COpenBLAS
import Foundation

/// The layers shared by both architectures and GPT-2's own, each forward next to its backward, over flat Float buffers (llm.c style).
/// Backward functions accumulate (+=) into gradient buffers; a nil gradient pointer is skipped.
public enum Layers {
    public typealias P = UnsafeMutablePointer<Float>

    // MARK: embeddings

    /// out[B,T,C] = wte[tokens[b,t]] + wpe[start + t] (no position table: rotary models)
    public static func embedForward(_ out: P, _ tokens: UnsafePointer<Int32>, _ wte: P, _ wpe: P?,
                                    B: Int, T: Int, C: Int, start: Int = 0) {
        for b in 0..<B {
            for t in 0..<T {
                let o = out + (b * T + t) * C
                let e = wte + Int(tokens[b * T + t]) * C
                if let wpe {
                    let p = wpe + (start + t) * C
                    for i in 0..<C { o[i] = e[i] + p[i] }
                } else {
                    o.update(from: e, count: C)
                }
            }
        }
    }

    /// dwte[V,C], dwpe[T,C] += scatter of dout[B,T,C]
    public static func embedBackward(_ dwte: P, _ dwpe: P?, _ dout: P, _ tokens: UnsafePointer<Int32>,
                                     B: Int, T: Int, C: Int) {
        for b in 0..<B {
            for t in 0..<T {
                let d = dout + (b * T + t) * C
                let e = dwte + Int(tokens[b * T + t]) * C
                for i in 0..<C { e[i] += d[i] }
                if let p = dwpe.map({ $0 + t * C }) { for i in 0..<C { p[i] += d[i] } }
            }
        }
    }

    // MARK: layernorm

    /// out[N,C] = (x - mean) * rstd * w + b; saves mean[N], rstd[N] (nil at inference)
    public static func layerNormForward(_ out: P, _ mean: P?, _ rstd: P?, _ inp: P, _ w: P, _ b: P,
                                        N: Int, C: Int, eps: Float) {
        for n in 0..<N {
            let x = inp + n * C
            var m: Float = 0
            for i in 0..<C { m += x[i] }
            m /= Float(C)
            var v: Float = 0
            for i in 0..<C { let d = x[i] - m; v += d * d }
            v /= Float(C)
            let s = 1 / (v + eps).squareRoot()
            let o = out + n * C
            for i in 0..<C { o[i] = (x[i] - m) * s * w[i] + b[i] }
            mean?[n] = m
            rstd?[n] = s
        }
    }

    /// dinp[N,C] += ..., dw[C], db[C] += ... from dout[N,C]
    public static func layerNormBackward(_ dinp: P, _ dw: P?, _ db: P?, _ dout: P, _ inp: P, _ w: P,
                                         _ mean: P, _ rstd: P, N: Int, C: Int) {
        for n in 0..<N {
            let d = dout + n * C, x = inp + n * C, di = dinp + n * C
            let m = mean[n], s = rstd[n]
            var dnormMean: Float = 0, dnormNormMean: Float = 0
            for i in 0..<C {
                let norm = (x[i] - m) * s
                let dnorm = w[i] * d[i]
                dnormMean += dnorm
                dnormNormMean += dnorm * norm
            }
            dnormMean /= Float(C); dnormNormMean /= Float(C)
            for i in 0..<C {
                let norm = (x[i] - m) * s
                if let dw { dw[i] += norm * d[i] }
                if let db { db[i] += d[i] }
                di[i] += s * (w[i] * d[i] - dnormMean - norm * dnormNormMean)
            }
        }
    }

    // MARK: matmul (all through cblas_sgemm)

    /// out[N,OC] = inp[N,C] · w[OC,C]ᵀ + bias[OC]
    public static func matmulForward(_ out: P, _ inp: P, _ w: P, _ bias: P?, N: Int, C: Int, OC: Int) {
        if let bias {
            for n in 0..<N { (out + n * OC).update(from: bias, count: OC) }
        }
        if N == 1 {  // one decoding step: a matrix-vector product, without sgemm's packing of w
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(OC), Int32(C), 1, w, Int32(C), inp, 1, bias == nil ? 0 : 1, out, 1)
            return
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(N), Int32(OC), Int32(C),
                    1, inp, Int32(C), w, Int32(C), bias == nil ? 0 : 1, out, Int32(OC))
    }

    /// dinp[N,C] += dout·w; dw[OC,C] += doutᵀ·inp; dbias[OC] += Σ dout (nil grads skipped)
    public static func matmulBackward(_ dinp: P?, _ dw: P?, _ dbias: P?, _ dout: P, _ inp: P, _ w: P,
                                      N: Int, C: Int, OC: Int) {
        if let dinp {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(N), Int32(C), Int32(OC),
                        1, dout, Int32(OC), w, Int32(C), 1, dinp, Int32(C))
        }
        if let dw {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(OC), Int32(C), Int32(N),
                        1, dout, Int32(OC), inp, Int32(C), 1, dw, Int32(C))
        }
        if let dbias {
            for n in 0..<N {
                let d = dout + n * OC
                for o in 0..<OC { dbias[o] += d[o] }
            }
        }
    }

    // MARK: LoRA

    /// u[N,r] = inp[N,C]·A[r,C]ᵀ; out[N,OC] += scale · u·B[OC,r]ᵀ (out rows `ldo` apart: a slice of a fused output)
    public static func loraForward(_ out: P, _ u: P, _ inp: P, _ a: P, _ b: P,
                                   N: Int, C: Int, OC: Int, r: Int, scale: Float, ldo: Int? = nil) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(N), Int32(r), Int32(C),
                    1, inp, Int32(C), a, Int32(C), 0, u, Int32(r))
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(N), Int32(OC), Int32(r),
                    scale, u, Int32(r), b, Int32(r), 1, out, Int32(ldo ?? OC))
    }

    /// dB[OC,r] += s·doutᵀu; du[N,r] = s·dout·B; dA[r,C] += duᵀ·inp; dinp[N,C] += du·A (dout rows `ldo` apart)
    public static func loraBackward(_ dinp: P?, _ da: P, _ db: P, _ du: P, _ dout: P, _ u: P, _ inp: P,
                                    _ a: P, _ b: P, N: Int, C: Int, OC: Int, r: Int, scale: Float, ldo: Int? = nil) {
        let ld = Int32(ldo ?? OC)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(OC), Int32(r), Int32(N),
                    scale, dout, ld, u, Int32(r), 1, db, Int32(r))
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(N), Int32(r), Int32(OC),
                    scale, dout, ld, b, Int32(r), 0, du, Int32(r))
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(r), Int32(C), Int32(N),
                    1, du, Int32(r), inp, Int32(C), 1, da, Int32(C))
        if let dinp {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(N), Int32(C), Int32(r),
                        1, du, Int32(r), a, Int32(C), 1, dinp, Int32(C))
        }
    }

    // MARK: attention

    /// Keys visible to the query at position `last` (itself included): all earlier ones, or the last `window`.
    @inline(__always) static func visible(_ last: Int, _ window: Int?) -> Int {
        guard let window else { return 0 }
        return max(0, last - window + 1)
    }

    /// Causal (grouped-query) attention of T queries at positions start..<start+T over Tk = start+T keys.
    /// q[B,T,·] with row stride qs holds NH heads of size hs; k,v[B,Tk,·] with row stride ks hold NKV heads
    /// (query head h reads key/value head h / group, group = NH/NKV); out[B,T,NH·hs]; att[B,NH,T,Tk] saved.
    /// A share of heads passes its first head's model index and the model's group: k/v then start at that head's
    /// key/value head.
    public static func attentionForward(_ out: P, _ att: P, q: P, qs: Int, k: P, v: P, ks: Int,
                                        B: Int, T: Int, Tk: Int, NH: Int, NKV: Int, hs: Int, start: Int,
                                        window: Int? = nil, bq: Int? = nil, bk: Int? = nil, group: Int? = nil, firstHead: Int = 0) {
        let scale = 1 / Float(hs).squareRoot(), group = group ?? NH / NKV, os = NH * hs
        let qBatch = bq ?? T * qs, kBatch = bk ?? Tk * ks
        for b in 0..<B {
            for h in 0..<NH {
                let kv = ((firstHead + h) / group - firstHead / group) * hs
                let qp = q + b * qBatch + h * hs, kp = k + b * kBatch + kv, vp = v + b * kBatch + kv
                let a = att + (b * NH + h) * T * Tk
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(Tk), Int32(hs),
                            scale, qp, Int32(qs), kp, Int32(ks), 0, a, Int32(Tk))
                for t in 0..<T {
                    let row = a + t * Tk
                    let last = start + t, first = visible(last, window)
                    var mx = -Float.greatestFiniteMagnitude
                    for j in first...last where row[j] > mx { mx = row[j] }
                    var sum: Float = 0
                    for j in first...last { let e = expf(row[j] - mx); row[j] = e; sum += e }
                    let inv = 1 / sum
                    for j in first...last { row[j] *= inv }
                    for j in 0..<first { row[j] = 0 }
                    for j in (last + 1)..<max(Tk, last + 1) { row[j] = 0 }
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(T), Int32(hs), Int32(Tk),
                            1, a, Int32(Tk), vp, Int32(ks), 0, out + b * T * os + h * hs, Int32(os))
            }
        }
    }

    /// Training backward (start 0, Tk = T) with q, k, v side by side in qkv[B,T,NH·hs + 2·NKV·hs]:
    /// dqkv[B,T,·] += ..., scratch[T,T]. Key/value heads shared by a group sum the group's gradients.
    public static func attentionBackward(_ dqkv: P, _ scratch: P, _ dout: P, _ qkv: P, _ att: P,
                                         B: Int, T: Int, NH: Int, NKV: Int, hs: Int, window: Int? = nil) {
        let scale = 1 / Float(hs).squareRoot(), group = NH / NKV
        let os = NH * hs, stride = (NH + 2 * NKV) * hs
        for b in 0..<B {
            for h in 0..<NH {
                let kv = (h / group) * hs
                let base = qkv + b * T * stride, dbase = dqkv + b * T * stride
                let q = base + h * hs, k = base + os + kv, v = base + os + NKV * hs + kv
                let dq = dbase + h * hs, dk = dbase + os + kv, dv = dbase + os + NKV * hs + kv
                let a = att + (b * NH + h) * T * T
                let d = dout + b * T * os + h * hs
                // datt[T,T] = dout·vᵀ
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(T), Int32(hs),
                            1, d, Int32(os), v, Int32(stride), 0, scratch, Int32(T))
                // dv += attᵀ·dout
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(T), Int32(hs), Int32(T),
                            1, a, Int32(T), d, Int32(os), 1, dv, Int32(stride))
                // softmax backward in place: dpre = att ⊙ (datt − Σ att⊙datt)
                for t in 0..<T {
                    let ar = a + t * T, dr = scratch + t * T, first = visible(t, window)
                    var dot: Float = 0
                    for j in first...t { dot += ar[j] * dr[j] }
                    for j in first...t { dr[j] = ar[j] * (dr[j] - dot) }
                    for j in 0..<first { dr[j] = 0 }
                    for j in (t + 1)..<T { dr[j] = 0 }
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(T), Int32(hs), Int32(T),
                            scale, scratch, Int32(T), k, Int32(stride), 1, dq, Int32(stride))
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(T), Int32(hs), Int32(T),
                            scale, scratch, Int32(T), q, Int32(stride), 1, dk, Int32(stride))
            }
        }
    }

    // MARK: GELU (tanh approximation, as GPT-2)

    static let geluScale: Float = (2 / Float.pi).squareRoot()

    /// tanh as a clamped 13/6 rational (Eigen's fast float tanh, ~1 ulp): libm tanhf was a fifth of a training step.
    @inline(__always) public static func fastTanh(_ v: Float) -> Float {
        let x = min(max(v, -7.90531110763549805), 7.90531110763549805)
        let x2 = x * x
        var p: Float = -2.76076847742355e-16
        p = p * x2 + 2.00018790482477e-13
        p = p * x2 - 8.60467152213735e-11
        p = p * x2 + 5.12229709037114e-08
        p = p * x2 + 1.48572235717979e-05
        p = p * x2 + 6.37261928875436e-04
        p = p * x2 + 4.89352455891786e-03
        var q: Float = 1.19825839466702e-06
        q = q * x2 + 1.18534705686654e-04
        q = q * x2 + 2.26843463243900e-03
        q = q * x2 + 4.89352518554385e-03
        return x * p / q
    }

    /// out[N] = gelu(inp[N])
    public static func geluForward(_ out: P, _ inp: P, N: Int) {
        for i in 0..<N {
            let x = inp[i]
            out[i] = 0.5 * x * (1 + fastTanh(geluScale * (x + 0.044715 * x * x * x)))
        }
    }

    /// dinp[N] += gelu'(inp) · dout
    public static func geluBackward(_ dinp: P, _ inp: P, _ dout: P, N: Int) {
        for i in 0..<N {
            let x = inp[i]
            let u = geluScale * (x + 0.044715 * x * x * x)
            let th = fastTanh(u)
            let sech2 = 1 - th * th
            let g = 0.5 * (1 + th) + 0.5 * x * sech2 * geluScale * (1 + 3 * 0.044715 * x * x)
            dinp[i] += g * dout[i]
        }
    }

    // MARK: residual

    /// out[N] = a[N] + b[N]
    public static func residualForward(_ out: P, _ a: P, _ b: P, N: Int) {
        for i in 0..<N { out[i] = a[i] + b[i] }
    }

    /// da[N] += dout; db[N] += dout
    public static func residualBackward(_ da: P, _ db: P, _ dout: P, N: Int) {
        for i in 0..<N { da[i] += dout[i]; db[i] += dout[i] }
    }

    // MARK: softmax + cross-entropy (fused)

    /// logits[N,V] → probs in place; losses[N] = −log p[target]; returns Σ losses
    @discardableResult
    public static func softmaxCrossEntropyForward(_ probs: P, _ losses: P, _ targets: UnsafePointer<Int32>,
                                                  N: Int, V: Int) -> Double {
        var total: Double = 0
        for n in 0..<N {
            let row = probs + n * V
            var mx = -Float.greatestFiniteMagnitude
            for i in 0..<V where row[i] > mx { mx = row[i] }
            var sum: Float = 0
            for i in 0..<V { let e = expf(row[i] - mx); row[i] = e; sum += e }
            let inv = 1 / sum
            for i in 0..<V { row[i] *= inv }
            let l = -logf(max(row[Int(targets[n])], 1e-30))
            losses[n] = l
            total += Double(l)
        }
        return total
    }

    /// probs[N,V] → dlogits in place for loss = scale · Σ losses: scale · (p − onehot)
    public static func softmaxCrossEntropyBackward(_ probs: P, _ targets: UnsafePointer<Int32>,
                                                   N: Int, V: Int, scale: Float) {
        for n in 0..<N {
            let row = probs + n * V
            for i in 0..<V { row[i] *= scale }
            row[Int(targets[n])] -= scale
        }
    }
}
