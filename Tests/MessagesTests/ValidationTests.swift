import Messages
import XCTest

final class ValidationTests: XCTestCase {
    private func assertError(_ frames: [[UInt8]], _ expected: MessageError, limits: DecodeLimits = .default,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Envelope.decode(frames: frames, limits: limits), file: file, line: line) { error in
            XCTAssertEqual(error as? MessageError, expected, file: file, line: line)
        }
    }

    func testEmptyInputIsTruncated() {
        assertError([[]], .truncated)
        assertError([], .truncated)
    }

    func testCutEncodingIsTruncated() {
        let bytes = Samples.envelope(.leave(Leave(reason: "a long enough reason"))).encode()
        assertError([Array(bytes.dropLast(3))], .truncated)
    }

    func testBadWireTypeIsInvalidProtobuf() {
        assertError([[0x0f, 0x01]], .invalidProtobuf)  // field 1, wire type 7
    }

    func testOtherVersionIsRejected() {
        assertError([[0x08, 0x02, 0x5a, 0x00]], .unsupportedVersion(2))  // version 2, empty heartbeat
        assertError([[0x5a, 0x00]], .unsupportedVersion(0))
    }

    func testMissingBodyIsRejected() {
        assertError([[0x08, 0x01, 0x18, 0x05]], .missingBody)  // version 1, seq 5
    }

    func testUnknownEnumIsRejected() {
        assertError([[0x08, 0x01, 0x52, 0x02, 0x08, 0x63]], .unknownEnum(field: "Register.role", value: 99))
        // Tensor dtype 0 (unspecified) inside a ModelBroadcast: field 21 -> tag 0xaa 0x01, tensors field 5 -> 0x2a.
        assertError([[0x08, 0x01, 0xaa, 0x01, 0x04, 0x2a, 0x02, 0x18, 0x00]], .unknownEnum(field: "Tensor.dtype", value: 0))
    }

    func testTelemetryWithoutReportIsRejected() {
        assertError([[0x08, 0x01, 0xf2, 0x01, 0x00]], .missingField("Telemetry.report"))
    }

    func testShapeMustMatchByteCount() {
        let bad = Tensor(name: "w", shape: [2, 2], dtype: .f32, bytes: [UInt8](repeating: 0, count: 12))
        let env = Samples.envelope(.model(ModelBroadcast(round: 1, tensors: [bad])))
        assertError([env.encode()], .shapeMismatch(name: "w", expected: 16, actual: 12))
        let half = Tensor(name: "h", shape: [3], dtype: .f16, bytes: [UInt8](repeating: 0, count: 4))
        assertError([Samples.envelope(.update(UpdateUpload(round: 1, delta: [half]))).encode()],
                    .shapeMismatch(name: "h", expected: 6, actual: 4))
        XCTAssertThrowsError(try bad.floats())
    }

    func testSparseTensorsCheckIndices() {
        let countOff = Tensor(name: "s", shape: [10], dtype: .int8, scale: 1, bytes: [1, 2, 3], indices: [0, 1])
        assertError([Samples.envelope(.model(ModelBroadcast(round: 1, tensors: [countOff]))).encode()],
                    .shapeMismatch(name: "s", expected: 2, actual: 3))
        let outside = Tensor(name: "s", shape: [10], dtype: .int8, scale: 1, bytes: [1, 2], indices: [0, 10])
        assertError([Samples.envelope(.model(ModelBroadcast(round: 1, tensors: [outside]))).encode()],
                    .indexOutOfRange(name: "s", index: 10, count: 10))
    }

    func testHugeDeclaredShapeIsOverCapNotAllocated() {
        let t = Tensor(name: "big", shape: [1 << 20, 1 << 20], dtype: .f32, bytes: [])
        assertError([Samples.envelope(.model(ModelBroadcast(round: 1, tensors: [t]))).encode()],
                    .overCap(size: 1 << 42, cap: DecodeLimits.default.maxBytes))
    }

    func testInputOverCapIsRejectedBeforeUnpacking() {
        let bytes = Samples.envelope(.leave(Leave(reason: String(repeating: "x", count: 100)))).encode()
        assertError([bytes], .overCap(size: bytes.count, cap: 64), limits: DecodeLimits(maxBytes: 64))
        let frames = Samples.envelope(.model(ModelBroadcast(round: 1, tensors: [Samples.adapter]))).encodeFrames(externalThreshold: 1)
        assertError(frames, .tooManyFrames(count: 2, cap: 1), limits: DecodeLimits(maxFrames: 1))
    }

    func testMissingTensorFrameIsReported() {
        let frames = Samples.envelope(.activation(StageActivation(sessionId: "s", hidden: Samples.adapter))).encodeFrames(externalThreshold: 1)
        XCTAssertEqual(frames.count, 2)
        assertError([frames[0]], .missingFrame(index: 1))
    }

    func testDecodeErrorsAreCounted() {
        let before = decodeErrors.count("unsupportedVersion")
        _ = try? Envelope.decode([0x08, 0x07, 0x5a, 0x00])
        XCTAssertGreaterThanOrEqual(decodeErrors.count("unsupportedVersion"), before + 1)
        XCTAssertTrue(MessageError.unsupportedVersion(7).description.contains("7"))
    }
}
