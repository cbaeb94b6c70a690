import Federation
import XCTest

final class CompressionTests: XCTestCase {
    func testFP16RoundTripWithinRelative1e3AndCountsBytes() throws {
        var values: [Float] = []
        for (i, s) in [1e-3, 1.0, 37.0, 1e3].enumerated() { values += randomVector(50, seed: UInt64(i), scale: s) }
        let codec = FP16Codec()
        let layout = ParameterLayout.flat(values.count)
        let enc = codec.encode(values, layout: layout)
        XCTAssertEqual(enc.byteCount, 5 + 2 * values.count)
        let dec = try codec.decode(enc, layout: layout)
        for (x, y) in zip(values, dec) where abs(x) > 6.2e-5 {
            XCTAssertLessThanOrEqual(abs(x - y) / abs(x), 1e-3, "\(x) → \(y)")
        }
        XCTAssertEqual(floatFromHalfBits(halfBits(65504)), 65504)
        XCTAssertEqual(floatFromHalfBits(halfBits(1e6)), .infinity)
        XCTAssertEqual(floatFromHalfBits(halfBits(-2.5)), -2.5)
        XCTAssertEqual(halfBits(1 + 0x1.0p-11), halfBits(1), "halfway rounds to even")
        XCTAssertEqual(floatFromHalfBits(halfBits(0x1.0p-24)), 0x1.0p-24, "smallest subnormal")
        XCTAssertTrue(floatFromHalfBits(halfBits(.nan)).isNaN)
    }

    #if os(Linux) && arch(x86_64)
    func testHandMadeHalfConversionMatchesFloat16() {
        var rng = SeededRandom(seed: 42)
        for _ in 0..<20_000 {
            // Random bit patterns cover normals, subnormals, overflow and ties.
            let f = Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))
            guard !f.isNaN else { continue }
            XCTAssertEqual(halfBits(f), Float16(f).bitPattern, "\(f)")
        }
        for h in UInt16(0)...UInt16.max where !Float16(bitPattern: h).isNaN {
            XCTAssertEqual(floatFromHalfBits(h), Float(Float16(bitPattern: h)))
        }
    }
    #endif

    func testInt8ErrorAtMostHalfScalePerTensor() throws {
        let layout = try ParameterLayout(entries: [(name: "small", shape: [40]), (name: "large", shape: [8, 5])])
        let values = randomVector(40, seed: 1, scale: 0.01) + randomVector(40, seed: 2, scale: 10)
        let codec = Int8Codec()
        let enc = codec.encode(values, layout: layout)
        XCTAssertEqual(enc.byteCount, 9 + 4 * 2 + 80)
        let dec = try codec.decode(enc, layout: layout)
        for t in 0..<2 {
            let r = layout.range(of: t)
            let scale = (values[r].map { abs($0) }.max() ?? 0) / 127
            for i in r { XCTAssertLessThanOrEqual(abs(values[i] - dec[i]), scale / 2 * 1.0001 + 1e-9, "tensor \(t) index \(i)") }
        }
        XCTAssertEqual(try codec.decode(codec.encode([0, 0], layout: .flat(2)), layout: .flat(2)), [0, 0])
    }

    func testTopKKeepsLargestMagnitudesAndCountsBytes() throws {
        let values: [Float] = [0.1, -5, 0.2, 3, -0.3, 0.05, 1, -2]
        let codec = TopKCodec(fraction: 0.25)
        let enc = codec.encode(values, layout: .flat(8))
        XCTAssertEqual(enc.byteCount, 9 + 8 * 2)
        XCTAssertEqual(try codec.decode(enc, layout: .flat(8)), [0, -5, 0, 3, 0, 0, 0, 0])
        XCTAssertEqual(TopKCodec(fraction: 0.25).selectIndices([1, 1, 1, 1]), [0])
    }

    func testErrorFeedbackDeliversEverythingButTheFinalResidual() throws {
        let n = 20
        var feedback = ErrorFeedback(codec: TopKCodec(fraction: 0.1))
        let layout = ParameterLayout.flat(n)
        var sumInputs = [Float](repeating: 0, count: n), sumDecoded = [Float](repeating: 0, count: n)
        for round in 0..<6 {
            let x = randomVector(n, seed: UInt64(100 + round))
            let enc = feedback.encode(x, layout: layout, device: "dev")
            let dec = try feedback.codec.decode(enc, layout: layout)
            if round == 0 { assertClose(feedback.residual(for: "dev") ?? [], zip(x, dec).map { $0 - $1 }, accuracy: 0) }
            for i in 0..<n { sumInputs[i] += x[i]; sumDecoded[i] += dec[i] }
        }
        let residual = feedback.residual(for: "dev") ?? []
        assertClose(sumDecoded, zip(sumInputs, residual).map { $0 - $1 }, accuracy: 1e-5)
        XCTAssertGreaterThan(residual.map { abs($0) }.max() ?? 0, 0, "top-k dropped something")
        XCTAssertNil(feedback.residual(for: "other"))
    }

    func testDecodersRejectCorruptPayloads() {
        let layout = ParameterLayout.flat(4)
        let enc = TopKCodec(fraction: 0.5).encode([1, 2, 3, 4], layout: layout)
        XCTAssertThrowsError(try TopKCodec(fraction: 0.5).decode(EncodedUpdate(bytes: Array(enc.bytes.dropLast())), layout: layout)) {
            XCTAssertEqual($0 as? CodecError, .truncated(needed: enc.byteCount, available: enc.byteCount - 1))
        }
        XCTAssertThrowsError(try FP16Codec().decode(enc, layout: layout)) {
            XCTAssertEqual($0 as? CodecError, .wrongCodec(expected: 1, found: 3))
        }
        var bad = enc.bytes
        bad[9] = 200  // first sparse index
        XCTAssertThrowsError(try TopKCodec(fraction: 0.5).decode(EncodedUpdate(bytes: bad), layout: layout)) {
            XCTAssertEqual($0 as? CodecError, .indexOutOfRange(index: 200, count: 4))
        }
        XCTAssertThrowsError(try Int8Codec().decode(Int8Codec().encode([1, 2, 3], layout: .flat(3)), layout: layout)) {
            XCTAssertEqual($0 as? CodecError, .countMismatch(expected: 4, found: 3))
        }
        XCTAssertEqual(Float32Codec().encode([1, 2, 3, 4], layout: layout).byteCount, 21)
    }
}
