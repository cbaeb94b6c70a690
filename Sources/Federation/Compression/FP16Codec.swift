/// IEEE 754 binary16 with round-to-nearest-even, converted by hand (Float16 is missing on some targets).
/// Relative error ≤ 2⁻¹¹ in the normal range (|x| ≥ 6.1e-5); overflow beyond 65504 becomes ±inf. 5 + 2n bytes.
public struct FP16Codec: UpdateCodec {
    public let name = "fp16"
    public let id: UInt8 = 1
    public init() {}

    public func encode(_ values: [Float], layout: ParameterLayout) -> EncodedUpdate {
        var w = ByteWriter(capacity: 5 + 2 * values.count)
        w.header(id: id, count: values.count)
        for v in values { w.u16(halfBits(v)) }
        return EncodedUpdate(bytes: w.bytes)
    }

    public func payload(_ encoded: EncodedUpdate, layout: ParameterLayout) throws(CodecError) -> CodecPayload {
        var r = ByteReader(encoded.bytes)
        let n = try r.header(id: id, expectedCount: layout.count)
        try r.need(2 * n)
        var out = [UInt16](repeating: 0, count: n)
        for i in 0..<n { out[i] = try r.u16() }
        try r.finish()
        return .float16(out)
    }
}

/// Float → binary16 bits, round to nearest even.
public func halfBits(_ f: Float) -> UInt16 {
    let bits = f.bitPattern
    let sign = UInt16((bits >> 16) & 0x8000)
    let exp = Int((bits >> 23) & 0xff)
    var mant = bits & 0x7f_ffff
    if exp == 0xff { return sign | 0x7c00 | (mant != 0 ? 0x200 | UInt16(mant >> 13) : 0) }  // inf / NaN
    let e = exp - 127 + 15
    if e >= 0x1f { return sign | 0x7c00 }  // overflow → inf
    if e <= 0 {
        // Half subnormal: value = m·2⁻²⁴.
        if e < -10 { return sign }
        mant |= 0x80_0000
        let shift = UInt32(14 - e)
        var h = mant >> shift
        let rem = mant & ((1 << shift) - 1), half = UInt32(1) << (shift - 1)
        if rem > half || (rem == half && h & 1 == 1) { h += 1 }
        return sign | UInt16(h)
    }
    var h = UInt32(e) << 10 | (mant >> 13)
    let rem = mant & 0x1fff
    if rem > 0x1000 || (rem == 0x1000 && h & 1 == 1) { h += 1 }  // a carry into the exponent is still correct
    return sign | UInt16(h)
}

/// binary16 bits → Float (exact).
public func floatFromHalfBits(_ h: UInt16) -> Float {
    let sign: Float = h & 0x8000 != 0 ? -1 : 1
    let exp = Int((h >> 10) & 0x1f)
    let mant = UInt32(h & 0x3ff)
    if exp == 0 { return sign * Float(mant) * 0x1.0p-24 }
    if exp == 0x1f {
        return Float(bitPattern: UInt32(h & 0x8000) << 16 | 0x7f80_0000 | mant << 13)
    }
    return Float(bitPattern: UInt32(h & 0x8000) << 16 | UInt32(exp - 15 + 127) << 23 | mant << 13)
}
