import CKernels
import COpenBLAS
import Dispatch

/// Weight-only quantization of frozen matrices (activations, adapters and gradients stay fp32).
public enum QuantFormat: Sendable, Equatable, CustomStringConvertible {
    /// One fp32 scale per output row (channel): w = s_r · q, q ∈ −127…127.
    case int8
    /// Groups of 32 or 64 inputs, each with an fp16 scale d and minimum m: w = m + d · q, q ∈ 0…15.
    case q4(group: Int)

    public var bits: Int { self == .int8 ? 8 : 4 }
    public var description: String {
        switch self {
        case .int8: return "int8 per output channel"
        case .q4(let g): return "4-bit, groups of \(g)"
        }
    }

    /// Bytes of a [rows, cols] matrix in this format (codes + scales + minimums).
    func bytes(rows: Int, cols: Int) -> Int {
        switch self {
        case .int8: return rows * cols + 4 * rows
        case .q4(let g): return rows * cols / 2 + 2 * 2 * rows * (cols / g)
        }
    }

    func check(cols: Int, name: String) throws(EngineError) {
        if case .q4(let g) = self {
            guard g == 32 || g == 64 else { throw .badConfig("4-bit group size must be 32 or 64, got \(g)") }
            guard cols % g == 0 else { throw .badConfig("tensor '\(name)' has \(cols) inputs, not a multiple of the 4-bit group \(g)") }
        }
    }
}

/// Codes and scales of some rows of a quantized matrix, with whatever keeps their memory alive (an allocation or
/// a memory-mapped checkpoint file).
struct QuantizedRows: @unchecked Sendable {  // read-only after creation
    let rows: Range<Int>
    let codes: UnsafeRawPointer
    let scales: UnsafeRawPointer  // int8: Float per row; 4-bit: fp16 d per group
    let mins: UnsafeRawPointer?  // 4-bit: fp16 m per group
    let owner: [AnyObject]
}

/// An owned, aligned byte buffer.
final class ByteBuffer: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let count: Int
    init(count: Int) {
        self.count = count
        base = .allocate(byteCount: max(count, 1), alignment: 64)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: max(count, 1))
    }
    deinit { base.deallocate() }
}

/// A frozen weight matrix [rows, cols] in a quantized format, made of row blocks (one per checkpoint tensor of a
/// fused matrix). Products dequantize on the fly: a fused kernel for a few input vectors (decoding reads each code
/// once), fp32 tiles into cblas_sgemm for many.
final class QuantizedMatrix: @unchecked Sendable {  // immutable after init
    let format: QuantFormat
    let rows: Int, cols: Int
    let parts: [QuantizedRows]

    init(format: QuantFormat, rows: Int, cols: Int, parts: [QuantizedRows]) {
        self.format = format; self.rows = rows; self.cols = cols; self.parts = parts
    }

    var bytes: Int { format.bytes(rows: rows, cols: cols) }

    /// Quantizes w [rows, cols] (row-major fp32) into owned buffers, as one part covering `rowRange`.
    static func quantize(_ w: UnsafePointer<Float>, rows rowRange: Range<Int>, cols: Int, format: QuantFormat) -> QuantizedRows {
        let n = rowRange.count
        switch format {
        case .int8:
            let buf = ByteBuffer(count: n * cols + 4 * n + 64)
            let codes = buf.base.assumingMemoryBound(to: Int8.self)
            let scales = (buf.base + ((n * cols + 63) & ~63)).assumingMemoryBound(to: Float.self)
            for r in 0..<n {
                let row = w + r * cols
                var mx: Float = 0
                for c in 0..<cols { mx = max(mx, abs(row[c])) }
                let s = mx > 0 ? mx / 127 : 1
                scales[r] = s
                for c in 0..<cols { codes[r * cols + c] = Int8(max(-127, min(127, (row[c] / s).rounded()))) }
            }
            return QuantizedRows(rows: rowRange, codes: UnsafeRawPointer(codes), scales: UnsafeRawPointer(scales), mins: nil, owner: [buf])
        case .q4(let g):
            let groups = cols / g
            let codeBytes = (n * cols / 2 + 63) & ~63, metaBytes = (2 * n * groups + 63) & ~63
            let buf = ByteBuffer(count: codeBytes + 2 * metaBytes)
            let codes = buf.base.assumingMemoryBound(to: UInt8.self)
            let d = (buf.base + codeBytes).assumingMemoryBound(to: UInt16.self)
            let m = (buf.base + codeBytes + metaBytes).assumingMemoryBound(to: UInt16.self)
            for r in 0..<n {
                for gi in 0..<groups {
                    let x = w + r * cols + gi * g
                    var lo = Float.greatestFiniteMagnitude, hi = -Float.greatestFiniteMagnitude
                    for i in 0..<g { lo = min(lo, x[i]); hi = max(hi, x[i]) }
                    let dh = fi_float_to_half((hi - lo) / 15), mh = fi_float_to_half(lo)
                    d[r * groups + gi] = dh; m[r * groups + gi] = mh
                    let dd = fi_half_to_float(dh), mm = fi_half_to_float(mh)
                    let out = codes + (r * cols + gi * g) / 2
                    for b in stride(from: 0, to: g, by: 32) {
                        func code(_ v: Float) -> UInt8 { dd > 0 ? UInt8(max(0, min(15, ((v - mm) / dd).rounded()))) : 0 }
                        for i in 0..<16 { out[b / 2 + i] = code(x[b + i]) | code(x[b + i + 16]) << 4 }
                    }
                }
            }
            return QuantizedRows(rows: rowRange, codes: UnsafeRawPointer(codes), scales: UnsafeRawPointer(d), mins: UnsafeRawPointer(m), owner: [buf])
        }
    }

    /// The rows of `part` r0..<r1 (part-local) as fp32 into out (row stride ld).
    private func dequantize(_ p: QuantizedRows, _ r0: Int, _ r1: Int, into out: UnsafeMutablePointer<Float>, ld: Int) {
        switch format {
        case .int8:
            fi_q8_dequant(p.codes.assumingMemoryBound(to: Int8.self), p.scales.assumingMemoryBound(to: Float.self),
                          Int32(r0), Int32(r1), Int32(cols), out, Int32(ld))
        case .q4(let g):
            fi_q4_dequant(p.codes.assumingMemoryBound(to: UInt8.self), p.scales.assumingMemoryBound(to: UInt16.self),
                          p.mins!.assumingMemoryBound(to: UInt16.self), Int32(g), Int32(r0), Int32(r1), Int32(cols), out, Int32(ld))
        }
    }

    /// Rows `range` of the matrix as fp32 into out[range.count, cols] (row stride ld).
    func dequantize(rows range: Range<Int>, into out: UnsafeMutablePointer<Float>, ld: Int? = nil) {
        let ld = ld ?? cols
        for p in parts {
            let lo = max(p.rows.lowerBound, range.lowerBound), hi = min(p.rows.upperBound, range.upperBound)
            guard lo < hi else { continue }
            dequantize(p, lo - p.rows.lowerBound, hi - p.rows.lowerBound, into: out + (lo - range.lowerBound) * ld, ld: ld)
        }
    }

    /// y[v, rows] (+)= W·x[v] for nx ≤ 4 vectors x (row stride ldx) into y (row stride ldy), rows of one part split
    /// over the BLAS threads.
    private func matvec(_ x: UnsafePointer<Float>, ldx: Int, nx: Int, _ y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool) {
        for p in parts {
            let n = p.rows.count, threads = n * cols >= 1 << 16 ? max(1, BLASThreads.count) : 1
            let yp = y + p.rows.lowerBound
            let xs = UnsafeSendable(x), ys = UnsafeSendable(yp)
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                let r0 = n * t / threads, r1 = n * (t + 1) / threads
                switch format {
                case .int8:
                    fi_q8_matvec(p.codes.assumingMemoryBound(to: Int8.self), p.scales.assumingMemoryBound(to: Float.self),
                                 Int32(r0), Int32(r1), Int32(cols), xs.value, Int32(ldx), Int32(nx), ys.value, Int32(ldy), accumulate ? 1 : 0)
                case .q4(let g):
                    fi_q4_matvec(p.codes.assumingMemoryBound(to: UInt8.self), p.scales.assumingMemoryBound(to: UInt16.self),
                                 p.mins!.assumingMemoryBound(to: UInt16.self), Int32(g), Int32(r0), Int32(r1), Int32(cols),
                                 xs.value, Int32(ldx), Int32(nx), ys.value, Int32(ldy), accumulate ? 1 : 0)
                }
            }
        }
    }

    /// Rows per fp32 tile (about 256 KB, so a tile stays in L2 while sgemm reads it).
    var tileRows: Int { max(16, min(rows, 65536 / max(cols, 1))) }

    /// out[N, rows] = inp[N, cols]·Wᵀ + bias
    func forward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, bias: UnsafePointer<Float>?, N: Int) {
        if let bias { for n in 0..<N { (out + n * rows).update(from: bias, count: rows) } }
        if N <= 16 {  // a prompt or a decode batch: the fused kernel, four vectors per pass over the codes
            for n0 in stride(from: 0, to: N, by: 4) {
                matvec(inp + n0 * cols, ldx: cols, nx: min(4, N - n0), out + n0 * rows, ldy: rows, accumulate: bias != nil)
            }
            return
        }
        let R = tileRows
        let tile = Arena(count: R * cols)
        for r0 in stride(from: 0, to: rows, by: R) {
            let r1 = min(rows, r0 + R)
            dequantize(rows: r0..<r1, into: tile.base)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(N), Int32(r1 - r0), Int32(cols), 1, inp, Int32(cols),
                        tile.base, Int32(cols), bias == nil ? 0 : 1, out + r0, Int32(rows))
        }
    }

    /// dinp[N, cols] += dout[N, rows]·W (the input gradient; frozen weights get none)
    func backwardInput(_ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, N: Int) {
        let R = tileRows
        let tile = Arena(count: R * cols)
        for r0 in stride(from: 0, to: rows, by: R) {
            let r1 = min(rows, r0 + R)
            dequantize(rows: r0..<r1, into: tile.base)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(N), Int32(cols), Int32(r1 - r0), 1, dout + r0, Int32(rows),
                        tile.base, Int32(cols), 1, dinp, Int32(cols))
        }
    }
}

/// A pointer handed to concurrentPerform workers that write disjoint rows.
struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Every quantized matrix of a model: token embedding, untied head, and the four matrices of each block.
final class QuantizedWeights: @unchecked Sendable {  // immutable after init; shared by clones
    let format: QuantFormat
    let embedding: QuantizedMatrix
    let head: QuantizedMatrix?
    let blocks: [[QuantizedMatrix]]  // [layer][Projection.rawValue]

    init(format: QuantFormat, embedding: QuantizedMatrix, head: QuantizedMatrix?, blocks: [[QuantizedMatrix]]) {
        self.format = format; self.embedding = embedding; self.head = head; self.blocks = blocks
    }

    func matrix(_ id: MatrixID) -> QuantizedMatrix {
        switch id {
        case .embedding: return embedding
        case .head: return head ?? embedding
        case .block(let m, let l): return blocks[l][m.rawValue]
        }
    }

    var bytes: Int { embedding.bytes + (head?.bytes ?? 0) + blocks.joined().reduce(0) { $0 + $1.bytes } }
}
