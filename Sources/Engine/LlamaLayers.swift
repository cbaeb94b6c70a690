import Foundation

/// The Llama-family layers (RMSNorm, rotary embeddings, SwiGLU), each forward next to its backward, over flat buffers.
/// Backward functions accumulate (+=) into gradient buffers, as the GPT-2 layers do.
extension Layers {
    // MARK: RMSNorm

    /// out[N,C] = x · rstd · w with rstd = 1/√(mean(x²) + eps); saves rstd[N] (nil at inference)
    public static func rmsNormForward(_ out: P, _ rstd: P?, _ inp: P, _ w: P, N: Int, C: Int, eps: Float) {
        for n in 0..<N {
            let x = inp + n * C, o = out + n * C
            var ss: Float = 0
            for i in 0..<C { ss += x[i] * x[i] }
            let s = 1 / (ss / Float(C) + eps).squareRoot()
            for i in 0..<C { o[i] = x[i] * s * w[i] }
            rstd?[n] = s
        }
    }

    /// dinp[N,C] += rstd·(w⊙dout − x·rstd²·mean(x⊙w⊙dout)); dw[C] += Σ dout⊙x·rstd
    public static func rmsNormBackward(_ dinp: P, _ dw: P?, _ dout: P, _ inp: P, _ w: P, _ rstd: P, N: Int, C: Int) {
        for n in 0..<N {
            let d = dout + n * C, x = inp + n * C, di = dinp + n * C, s = rstd[n]
            var dot: Float = 0
            for i in 0..<C { dot += w[i] * d[i] * x[i] }
            let k = s * s * dot / Float(C)
            for i in 0..<C {
                if let dw { dw[i] += d[i] * x[i] * s }
                di[i] += s * (w[i] * d[i] - x[i] * k)
            }
        }
    }

    // MARK: rotary position embeddings

    /// Rotates heads in place: for each of `heads` heads of size hs at row stride `stride` in x[T, ·], pairs
    /// (i, i + hs/2) turn by the angle of position start + t: (a, b) → (a·cos − b·sin, b·cos + a·sin).
    /// cos/sin are [positions, hs/2] tables. `inverse` applies the transpose (the backward of the forward).
    public static func ropeForward(_ x: P, stride: Int, T: Int, heads: Int, hs: Int, start: Int,
                                   cos: UnsafePointer<Float>, sin: UnsafePointer<Float>, inverse: Bool = false) {
        let half = hs / 2
        let sign: Float = inverse ? -1 : 1
        for t in 0..<T {
            let c = cos + (start + t) * half, s = sin + (start + t) * half
            let row = x + t * stride
            for h in 0..<heads {
                let v = row + h * hs
                for i in 0..<half {
                    let a = v[i], b = v[i + half], si = sign * s[i]
                    v[i] = a * c[i] - b * si
                    v[i + half] = b * c[i] + a * si
                }
            }
        }
    }

    /// d(pre-rotation) from d(post-rotation), in place: the same rotation transposed.
    public static func ropeBackward(_ dx: P, stride: Int, T: Int, heads: Int, hs: Int, start: Int,
                                    cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        ropeForward(dx, stride: stride, T: T, heads: heads, hs: hs, start: start, cos: cos, sin: sin, inverse: true)
    }

    // MARK: SwiGLU

    /// out[N,M] = silu(gate)·up, with gate and up the two halves of each row of gu[N, 2M]
    public static func swigluForward(_ out: P, _ gu: P, N: Int, M: Int) {
        for n in 0..<N {
            let g = gu + n * 2 * M, u = g + M, o = out + n * M
            for i in 0..<M { o[i] = g[i] / (1 + expf(-g[i])) * u[i] }
        }
    }

    /// dgu[N,2M] += (d gate, d up) from dout[N,M]
    public static func swigluBackward(_ dgu: P, _ gu: P, _ dout: P, N: Int, M: Int) {
        for n in 0..<N {
            let g = gu + n * 2 * M, u = g + M, dg = dgu + n * 2 * M, du = dg + M, d = dout + n * M
            for i in 0..<M {
                let sig = 1 / (1 + expf(-g[i]))
                let silu = g[i] * sig
                dg[i] += d[i] * u[i] * sig * (1 + g[i] * (1 - sig))
                du[i] += d[i] * silu
            }
        }
    }
}
