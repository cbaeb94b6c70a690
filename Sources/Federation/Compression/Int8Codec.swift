/// Symmetric int8 per tensor: scale = max|x|/127, q = round(x/scale) in [−127, 127]; |x − q·scale| ≤ scale/2.
/// Bytes: 5 header + 4 (tensor count) + 4 per tensor (scale) + n.
public struct Int8Codec: UpdateCodec {
    public let name = "int8"
    public let id: UInt8 = 2
    public init() {}

    public func encode(_ values: [Float], layout: ParameterLayout) -> EncodedUpdate {
        let sizes = tensorSizes(values.count, layout)
        var w = ByteWriter(capacity: 9 + 4 * sizes.count + values.count)
        w.header(id: id, count: values.count)
        w.u32(UInt32(sizes.count))
        var scales: [Float] = []
        var start = 0
        for size in sizes {
            var m: Float = 0
            for i in start..<(start + size) where values[i].isFinite { m = max(m, abs(values[i])) }
            scales.append(m / 127)
            start += size
        }
        for s in scales { w.f32(s) }
        start = 0
        for (size, s) in zip(sizes, scales) {
            let inv = s > 0 ? 1 / s : 0
            for i in start..<(start + size) {
                let q = (values[i] * inv).rounded()
                let c = q.isFinite ? min(127, max(-127, q)) : 0
                w.u8(UInt8(bitPattern: Int8(c)))
            }
            start += size
        }
        return EncodedUpdate(bytes: w.bytes)
    }

    public func payload(_ encoded: EncodedUpdate, layout: ParameterLayout) throws(CodecError) -> CodecPayload {
        var r = ByteReader(encoded.bytes)
        let n = try r.header(id: id, expectedCount: layout.count)
        let sizes = tensorSizes(n, layout)
        let tensors = Int(try r.u32())
        if tensors != sizes.count { throw .countMismatch(expected: sizes.count, found: tensors) }
        try r.need(4 * tensors + n)
        var scales: [Float] = []
        for _ in 0..<tensors { scales.append(try r.f32()) }
        var codes = [Int8](repeating: 0, count: n)
        for i in 0..<n { codes[i] = Int8(bitPattern: try r.u8()) }
        try r.finish()
        return .int8(scales: scales, codes: codes)
    }
}
