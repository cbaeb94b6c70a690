/// Top-k sparsification: keep the k largest |x| (k = ⌈fraction·n⌉, at least 1), send (index u32, value f32) pairs.
/// Bytes: 5 header + 4 (k) + 8k. Pair with `ErrorFeedback` so what is dropped is sent later.
public struct TopKCodec: UpdateCodec {
    public let name = "topk"
    public let id: UInt8 = 3
    public var fraction: Double

    public init(fraction: Double) { self.fraction = fraction.isFinite ? min(1, max(0, fraction)) : 1 }

    public func keptCount(of n: Int) -> Int {
        n == 0 ? 0 : min(n, max(1, Int((fraction * Double(n)).rounded(.up))))
    }

    /// Indices of the k largest magnitudes, ascending; ties at the threshold go to lower indices.
    public func selectIndices(_ values: [Float]) -> [Int] {
        let k = keptCount(of: values.count)
        guard k > 0 else { return [] }
        var mags = values.map { $0.isNaN ? 0 : abs($0) }
        mags.sort(by: >)
        let threshold = mags[k - 1]
        var kept: [Int] = []
        kept.reserveCapacity(k)
        var above = 0
        for v in values where abs(v) > threshold { above += 1 }
        var tiesLeft = k - above
        for (i, v) in values.enumerated() {
            let m = abs(v)
            if m > threshold { kept.append(i) } else if m == threshold && tiesLeft > 0 { kept.append(i); tiesLeft -= 1 }
        }
        return kept
    }

    public func encode(_ values: [Float], layout: ParameterLayout) -> EncodedUpdate {
        let kept = selectIndices(values)
        var w = ByteWriter(capacity: 9 + 8 * kept.count)
        w.header(id: id, count: values.count)
        w.u32(UInt32(kept.count))
        for i in kept { w.u32(UInt32(i)) }
        for i in kept { w.f32(values[i]) }
        return EncodedUpdate(bytes: w.bytes)
    }

    public func payload(_ encoded: EncodedUpdate, layout: ParameterLayout) throws(CodecError) -> CodecPayload {
        var r = ByteReader(encoded.bytes)
        let n = try r.header(id: id, expectedCount: layout.count)
        let k = Int(try r.u32())
        if k > n { throw .countMismatch(expected: n, found: k) }
        try r.need(8 * k)
        var idx = [Int](repeating: 0, count: k)
        for j in 0..<k {
            idx[j] = Int(try r.u32())
            if idx[j] >= n { throw .indexOutOfRange(index: idx[j], count: n) }
        }
        var values = [Float](repeating: 0, count: k)
        for j in 0..<k { values[j] = try r.f32() }
        try r.finish()
        return .sparse(count: n, indices: idx, values: values)
    }
}
