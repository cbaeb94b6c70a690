import CMessages

/// Element type of a tensor payload (proto `DType`). Payloads are little-endian.
public enum DType: UInt32, Sendable, Equatable, CaseIterable {
    case f32 = 1
    case f16 = 2
    /// value = Int8 × scale
    case int8 = 3

    public var byteSize: Int {
        switch self {
        case .f32: 4
        case .f16: 2
        case .int8: 1
        }
    }
}

/// A named, shaped, typed payload. Dense when `indices` is empty; otherwise `bytes` holds only the
/// elements at `indices` (flat, row-major) and every other element is zero.
public struct Tensor: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var dtype: DType
    /// Only meaningful for `.int8`.
    public var scale: Float
    public var bytes: [UInt8]
    public var indices: [UInt32]

    public init(name: String, shape: [Int], dtype: DType, scale: Float = 0, bytes: [UInt8], indices: [UInt32] = []) {
        self.name = name
        self.shape = shape
        self.dtype = dtype
        self.scale = scale
        self.bytes = bytes
        self.indices = indices
    }

    /// Dense f32 tensor; `floats.count` should equal the product of `shape`.
    public init(name: String, shape: [Int], floats: [Float]) {
        self.init(name: name, shape: shape, dtype: .f32, bytes: Self.littleEndianBytes(floats))
    }

    /// Dense f16 tensor, rounding each value to the nearest half.
    public init(name: String, shape: [Int], halfFrom floats: [Float]) {
        var out = [UInt8](repeating: 0, count: floats.count * 2)
        for (i, f) in floats.enumerated() {
            let bits = Float16(f).bitPattern
            out[2 * i] = UInt8(truncatingIfNeeded: bits)
            out[2 * i + 1] = UInt8(truncatingIfNeeded: bits >> 8)
        }
        self.init(name: name, shape: shape, dtype: .f16, bytes: out)
    }

    /// Dense int8 tensor with a symmetric per-tensor scale (max |x| / 127).
    public init(name: String, shape: [Int], quantizing floats: [Float]) {
        let maxAbs = floats.reduce(Float(0)) { Swift.max($0, abs($1)) }
        let scale = maxAbs > 0 && maxAbs.isFinite ? maxAbs / 127 : 1
        let q = floats.map { x -> UInt8 in
            let v = (x / scale).rounded()
            return UInt8(bitPattern: v.isNaN ? 0 : Int8(Swift.max(-127, Swift.min(127, v))))
        }
        self.init(name: name, shape: shape, dtype: .int8, scale: scale, bytes: q)
    }

    /// Product of `shape`, or nil if it overflows or a dimension is negative.
    public var elementCount: Int? {
        var n = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (m, overflow) = n.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            n = m
        }
        return n
    }

    /// Checks the payload against shape, dtype and indices; throws the decoder's errors.
    public func validate(limits: DecodeLimits = .default) throws {
        guard let count = elementCount else {
            throw MessageError.overCap(size: Int.max, cap: limits.maxBytes)
        }
        let stored = indices.isEmpty ? count : indices.count
        let (expected, overflow) = stored.multipliedReportingOverflow(by: dtype.byteSize)
        if overflow || expected > limits.maxBytes {
            throw MessageError.overCap(size: overflow ? Int.max : expected, cap: limits.maxBytes)
        }
        guard bytes.count == expected else {
            throw MessageError.shapeMismatch(name: name, expected: expected, actual: bytes.count)
        }
        for i in indices where Int(i) >= count {
            throw MessageError.indexOutOfRange(name: name, index: i, count: count)
        }
        if dtype == .int8 && !scale.isFinite {
            throw MessageError.invalidField(field: "Tensor.scale", reason: "int8 tensor '\(name)' has non-finite scale \(scale)")
        }
    }

    /// The stored elements as f32 (f16 widened, int8 × scale); for a sparse tensor, only the stored ones.
    public func values() throws -> [Float] {
        let n = bytes.count / dtype.byteSize
        if dtype == .f32, UInt32(1).littleEndian == 1 {
            // Little-endian host: the payload is the floats' memory; one copy.
            return [Float](unsafeUninitializedCapacity: n) { out, count in
                bytes.withUnsafeBytes { raw in
                    if let dst = out.baseAddress, let src = raw.baseAddress { UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: 4 * n) }
                }
                count = n
            }
        }
        var out = [Float](repeating: 0, count: n)
        out.withUnsafeMutableBufferPointer { o in
            bytes.withUnsafeBytes { raw in
                switch dtype {
                case .f32:
                    for i in 0..<n { o[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
                case .f16:
                    for i in 0..<n { o[i] = Float(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))) }
                case .int8:
                    for i in 0..<n { o[i] = Float(Int8(bitPattern: raw[i])) * scale }
                }
            }
        }
        return out
    }

    /// The dense tensor as f32 (sparse tensors are scattered into zeros). Throws if it is inconsistent.
    public func floats() throws -> [Float] {
        try validate(limits: DecodeLimits(maxBytes: Int.max, maxFrames: Int.max))
        let v = try values()
        guard !indices.isEmpty else { return v }
        var dense = [Float](repeating: 0, count: elementCount ?? 0)
        for (k, i) in indices.enumerated() { dense[Int(i)] = v[k] }
        return dense
    }

    static func littleEndianBytes(_ floats: [Float]) -> [UInt8] {
        let n = floats.count * 4
        if UInt32(1).littleEndian == 1 {
            return [UInt8](unsafeUninitializedCapacity: n) { out, count in
                floats.withUnsafeBytes { src in if let d = out.baseAddress, let s = src.baseAddress { UnsafeMutableRawPointer(d).copyMemory(from: s, byteCount: n) } }
                count = n
            }
        }
        var out = [UInt8](repeating: 0, count: n)
        out.withUnsafeMutableBytes { raw in
            for (i, f) in floats.enumerated() { raw.storeBytes(of: f.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
        }
        return out
    }
}

extension Tensor {
    init(c: UnsafeMutablePointer<Fi__V1__Tensor>, _ ctx: inout DecodeContext) throws {
        let t = c.pointee
        let name = readString(t.name)
        let dtype: DType = try readEnum(t.dtype.rawValue, field: "Tensor.dtype")
        let bytes: [UInt8]
        if t.frame > 0 {
            guard t.data.len == 0 else {
                throw MessageError.invalidField(field: "Tensor.data", reason: "tensor '\(name)' has inline data and frame \(t.frame); send one")
            }
            bytes = try ctx.frame(Int(t.frame))
        } else {
            bytes = readBytes(t.data)
        }
        self.init(name: name, shape: readScalars(t.shape, t.n_shape).map { Int($0) }, dtype: dtype,
                  scale: t.scale, bytes: bytes, indices: readScalars(t.indices, t.n_indices))
        try validate(limits: ctx.limits)
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__Tensor> {
        let p: UnsafeMutablePointer<Fi__V1__Tensor> = arena.message(fi__v1__tensor__init)
        p.pointee.name = arena.string(name)
        p.pointee.n_shape = shape.count
        p.pointee.shape = arena.array(shape.map { UInt32(truncatingIfNeeded: $0) })
        p.pointee.dtype = Fi__V1__DType(rawValue: dtype.rawValue)
        p.pointee.scale = scale
        p.pointee.n_indices = indices.count
        p.pointee.indices = arena.array(indices)
        if let threshold = arena.externalThreshold, bytes.count >= threshold, !bytes.isEmpty {
            arena.frames.append(bytes)  // shares the array's storage, no copy
            p.pointee.frame = UInt32(arena.frames.count)
        } else {
            p.pointee.data = arena.bytes(bytes)
        }
        return p
    }
}
