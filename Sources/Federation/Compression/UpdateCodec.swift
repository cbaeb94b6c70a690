// Update compression: every codec turns a flat update into self-describing bytes whose count is exactly what travels.
// Wire format shared by all codecs: [codec id u8][element count u32 LE][codec payload].

public enum CodecError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated(needed: Int, available: Int)
    case wrongCodec(expected: UInt8, found: UInt8)
    case countMismatch(expected: Int, found: Int)
    case indexOutOfRange(index: Int, count: Int)
    case trailingBytes(Int)

    public var description: String {
        switch self {
        case let .truncated(n, a): return "encoded update is truncated: needs \(n) bytes, has \(a); resend the whole payload"
        case let .wrongCodec(e, f): return "payload was encoded with codec id \(f), decoder expects \(e); agree on the codec"
        case let .countMismatch(e, f): return "payload holds \(f) values, layout expects \(e); encode against the current layout"
        case let .indexOutOfRange(i, c): return "sparse index \(i) is outside 0..<\(c); the payload is corrupt"
        case let .trailingBytes(n): return "\(n) unexpected bytes after the payload; the payload is corrupt"
        }
    }
}

/// Encoded update; `bytes.count` is the wire size.
public struct EncodedUpdate: Sendable, Equatable {
    public var bytes: [UInt8]
    public var byteCount: Int { bytes.count }
    public init(bytes: [UInt8]) { self.bytes = bytes }
}

public protocol UpdateCodec: Sendable {
    var name: String { get }
    /// First byte of every payload this codec writes.
    var id: UInt8 { get }
    /// `layout` gives the tensors (per-tensor scales); a layout whose count differs from values is treated as one tensor.
    func encode(_ values: [Float], layout: ParameterLayout) -> EncodedUpdate
    /// What the payload holds, checked against `layout` (the wire carries this form; `decode` widens it).
    func payload(_ encoded: EncodedUpdate, layout: ParameterLayout) throws(CodecError) -> CodecPayload
}

extension UpdateCodec {
    public func decode(_ encoded: EncodedUpdate, layout: ParameterLayout) throws(CodecError) -> [Float] {
        let p = try payload(encoded, layout: layout)
        return p.values(tensorSizes: tensorSizes(p.count, layout))
    }
}

/// An encoded update in the codec's own number format. The wire (Sources/Wire) carries it as tensors without
/// encoding again, so a device's codec is the one place where values are rounded, quantised or dropped.
public enum CodecPayload: Sendable, Equatable {
    case float32([Float])
    /// IEEE 754 binary16 bits, one per value.
    case float16([UInt16])
    /// One scale per tensor; value = code × its tensor's scale.
    case int8(scales: [Float], codes: [Int8])
    /// `count` values, zero except at `indices` (the encoder writes them ascending).
    case sparse(count: Int, indices: [Int], values: [Float])

    public var count: Int {
        switch self {
        case .float32(let v): return v.count
        case .float16(let h): return h.count
        case .int8(_, let codes): return codes.count
        case .sparse(let n, _, _): return n
        }
    }

    /// The decoded values; `sizes` are the tensors' element counts (int8's scales apply per tensor).
    public func values(tensorSizes sizes: [Int]) -> [Float] {
        switch self {
        case .float32(let v): return v
        case .float16(let h): return h.map(floatFromHalfBits)
        case .int8(let scales, let codes):
            var out = [Float](repeating: 0, count: codes.count)
            var i = 0
            for (size, s) in zip(sizes, scales) {
                for _ in 0..<size where i < codes.count { out[i] = Float(codes[i]) * s; i += 1 }
            }
            return out
        case .sparse(let n, let idx, let v):
            var out = [Float](repeating: 0, count: n)
            for (i, x) in zip(idx, v) { out[i] = x }
            return out
        }
    }
}

/// Tensor sizes to use for `values` under `layout`.
func tensorSizes(_ count: Int, _ layout: ParameterLayout) -> [Int] {
    layout.count == count ? layout.tensorSizes : [count]
}

struct ByteWriter {
    var bytes: [UInt8] = []
    init(capacity: Int) { bytes.reserveCapacity(capacity) }
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { bytes.append(UInt8(v & 0xff)); bytes.append(UInt8(v >> 8)) }
    mutating func u32(_ v: UInt32) { for s in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8((v >> UInt32(s)) & 0xff)) } }
    mutating func f32(_ v: Float) { u32(v.bitPattern) }
    /// Header shared by all codecs.
    mutating func header(id: UInt8, count: Int) { u8(id); u32(UInt32(truncatingIfNeeded: count)) }
}

struct ByteReader {
    let bytes: [UInt8]
    var at = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    mutating func need(_ n: Int) throws(CodecError) {
        if bytes.count - at < n { throw .truncated(needed: at + n, available: bytes.count) }
    }
    mutating func u8() throws(CodecError) -> UInt8 { try need(1); at += 1; return bytes[at - 1] }
    mutating func u16() throws(CodecError) -> UInt16 {
        try need(2); at += 2; return UInt16(bytes[at - 2]) | UInt16(bytes[at - 1]) << 8
    }
    mutating func u32() throws(CodecError) -> UInt32 {
        try need(4); at += 4
        return UInt32(bytes[at - 4]) | UInt32(bytes[at - 3]) << 8 | UInt32(bytes[at - 2]) << 16 | UInt32(bytes[at - 1]) << 24
    }
    mutating func f32() throws(CodecError) -> Float { Float(bitPattern: try u32()) }
    /// Reads and checks the shared header; returns the element count.
    mutating func header(id: UInt8, expectedCount: Int) throws(CodecError) -> Int {
        let found = try u8()
        if found != id { throw .wrongCodec(expected: id, found: found) }
        let n = Int(try u32())
        if n != expectedCount { throw .countMismatch(expected: expectedCount, found: n) }
        return n
    }
    func finish() throws(CodecError) { if at != bytes.count { throw .trailingBytes(bytes.count - at) } }
}

/// Raw float32: the baseline every other codec's byte count is compared with. 5 + 4n bytes.
public struct Float32Codec: UpdateCodec {
    public let name = "fp32"
    public let id: UInt8 = 0
    public init() {}
    public func encode(_ values: [Float], layout: ParameterLayout) -> EncodedUpdate {
        var w = ByteWriter(capacity: 5 + 4 * values.count)
        w.header(id: id, count: values.count)
        for v in values { w.f32(v) }
        return EncodedUpdate(bytes: w.bytes)
    }
    public func payload(_ encoded: EncodedUpdate, layout: ParameterLayout) throws(CodecError) -> CodecPayload {
        var r = ByteReader(encoded.bytes)
        let n = try r.header(id: id, expectedCount: layout.count)
        try r.need(4 * n)
        var out = [Float](repeating: 0, count: n)
        for i in 0..<n { out[i] = try r.f32() }
        try r.finish()
        return .float32(out)
    }
}
