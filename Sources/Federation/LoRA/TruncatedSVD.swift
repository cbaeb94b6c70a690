import COpenBLAS
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// SVD through LAPACK's sgesdd_, which Debian's libopenblas exports. Looked up with dlsym so the call uses the
// C convention without a header (openblas-pthread ships no lapacke.h).

public enum SVDError: Error, Equatable, Sendable, CustomStringConvertible {
    case lapackUnavailable
    case lapackFailed(info: Int32)
    case badShape(rows: Int, cols: Int, count: Int)

    public var description: String {
        switch self {
        case .lapackUnavailable: return "sgesdd_ not found in the linked OpenBLAS; install libopenblas0 with LAPACK"
        case let .lapackFailed(info): return "LAPACK sgesdd_ failed with info=\(info) (non-convergence or bad argument)"
        case let .badShape(r, c, n): return "matrix \(r)x\(c) needs \(r * c) values, got \(n)"
        }
    }
}

private typealias SgesddFn = @convention(c) (
    UnsafePointer<CChar>, UnsafePointer<Int32>, UnsafePointer<Int32>, UnsafeMutablePointer<Float>, UnsafePointer<Int32>,
    UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafePointer<Int32>, UnsafeMutablePointer<Float>,
    UnsafePointer<Int32>, UnsafeMutablePointer<Float>, UnsafePointer<Int32>, UnsafeMutablePointer<Int32>,
    UnsafeMutablePointer<Int32>, Int) -> Void

// Looked up once; a C function pointer is Sendable.
private let sgesdd: SgesddFn? = {
    guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "sgesdd_") else { return nil }
    return unsafeBitCast(sym, to: SgesddFn.self)
}()

/// Thin SVD of a row-major rows×cols matrix: M = U·diag(S)·Vᵀ with U rows×k, Vᵀ k×cols, k = min(rows, cols),
/// singular values descending.
public struct SingularValueDecomposition: Sendable {
    public var rows: Int, cols: Int
    /// Row-major rows×k.
    public var u: [Float]
    public var s: [Float]
    /// Row-major k×cols.
    public var vt: [Float]
    public var k: Int { s.count }

    /// From parts already computed (U rows×k, S, Vᵀ k×cols).
    init(rows: Int, cols: Int, u: [Float], s: [Float], vt: [Float]) {
        self.rows = rows; self.cols = cols; self.u = u; self.s = s; self.vt = vt
    }

    public init(_ m: [Float], rows: Int, cols: Int) throws(SVDError) {
        guard rows > 0, cols > 0, m.count == rows * cols else { throw .badShape(rows: rows, cols: cols, count: m.count) }
        guard let sgesdd else { throw .lapackUnavailable }
        // Row-major M is column-major Mᵀ (cols×rows). SVD of Mᵀ = V S Uᵀ: LAPACK's U is our V, its Vᵀ is our Uᵀ.
        let k = min(rows, cols)
        var a = m
        var sv = [Float](repeating: 0, count: k)
        var lu = [Float](repeating: 0, count: cols * k)   // column-major cols×k = V
        var lvt = [Float](repeating: 0, count: k * rows)  // column-major k×rows = Uᵀ
        var mm = Int32(cols), nn = Int32(rows), lda = Int32(cols), ldu = Int32(cols), ldvt = Int32(k)
        var info: Int32 = 0
        var iwork = [Int32](repeating: 0, count: 8 * k)
        var jobz = CChar(UInt8(ascii: "S"))
        var query: Float = 0, lwork: Int32 = -1
        sgesdd(&jobz, &mm, &nn, &a, &lda, &sv, &lu, &ldu, &lvt, &ldvt, &query, &lwork, &iwork, &info, 1)
        guard info == 0 else { throw .lapackFailed(info: info) }
        lwork = Int32(query) + 1
        var work = [Float](repeating: 0, count: Int(lwork))
        sgesdd(&jobz, &mm, &nn, &a, &lda, &sv, &lu, &ldu, &lvt, &ldvt, &work, &lwork, &iwork, &info, 1)
        guard info == 0 else { throw .lapackFailed(info: info) }
        // Our U (rows×k, row-major): U[i][j] = Uᵀ[j][i] = lvt column-major (j, i) = lvt[i*k + j]. Already row-major.
        // Our Vᵀ (k×cols, row-major): Vᵀ[j][c] = V[c][j] = lu column-major (c, j) = lu[j*cols + c]. Already row-major.
        self.rows = rows; self.cols = cols
        self.u = lvt; self.s = sv; self.vt = lu
    }

    /// Rank-r factors of the best rank-r approximation: B = U_r·√S_r (rows×r), A = √S_r·V_rᵀ (r×cols).
    /// Ranks beyond k are zero-filled so the shapes always match a LoRA pair of rank r.
    public func loraFactors(rank r: Int) -> (b: [Float], a: [Float]) {
        var b = [Float](repeating: 0, count: rows * r)
        var a = [Float](repeating: 0, count: r * cols)
        for j in 0..<min(r, k) {
            let root = s[j].squareRoot()
            for i in 0..<rows { b[i * r + j] = u[i * k + j] * root }
            for c in 0..<cols { a[j * cols + c] = vt[j * cols + c] * root }
        }
        return (b, a)
    }
}
