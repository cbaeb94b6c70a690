import Messages
import XCTest

final class RoundTripTests: XCTestCase {
    func testEveryMessageTypeRoundTripsThroughOneFrame() throws {
        for (name, body) in Samples.bodies {
            let env = Samples.envelope(body)
            let bytes = env.encode()
            XCTAssertFalse(bytes.isEmpty, name)
            XCTAssertEqual(try Envelope.decode(bytes), env, name)
        }
    }

    func testEveryMessageTypeRoundTripsThroughFramesWithTensorsOutside() throws {
        for (name, body) in Samples.bodies {
            let env = Samples.envelope(body)
            let frames = env.encodeFrames(externalThreshold: 1)
            XCTAssertEqual(try Envelope.decode(frames: frames), env, name)
        }
        let model = Samples.envelope(Samples.bodies.first { $0.0 == "model" }!.1)
        let frames = model.encodeFrames(externalThreshold: 8)
        // adapter (24 B), sparse (8 B) go outside; half (6 B) and quant (4 B) stay inline.
        XCTAssertEqual(frames.count, 3)
        XCTAssertEqual(frames[1], Samples.adapter.bytes)
        XCTAssertEqual(frames[2], Samples.sparse.bytes)
        XCTAssertLessThan(frames[0].count, model.encode().count)
    }

    func testHeaderFieldsSurvive() throws {
        let env = Envelope(version: protocolVersion, sender: "ä-node", seq: .max, timestampUs: 123, replyTo: 99,
                           body: .leave(Leave(reason: "bye")))
        let back = try Envelope.decode(env.encode())
        XCTAssertEqual(back.sender, "ä-node")
        XCTAssertEqual(back.seq, .max)
        XCTAssertEqual(back.timestampUs, 123)
        XCTAssertEqual(back.replyTo, 99)
        XCTAssertEqual(back.version, 1)
    }

    func testTensorFloatConversions() throws {
        XCTAssertEqual(try Samples.adapter.floats(), [0.5, -1.25, 3, 0, 1e-3, -7])
        XCTAssertEqual(try Samples.half.floats(), [1, -0.5, 2.25])
        let q = try Samples.quant.floats()
        XCTAssertEqual(Samples.quant.scale, 4 / 127, accuracy: 1e-7)
        for (a, b) in zip(q, [Float(1), -2, 0.5, 4]) { XCTAssertEqual(a, b, accuracy: Samples.quant.scale / 2) }
        XCTAssertEqual(try Samples.sparse.floats(), [0, 0, 9, 0, 0, 0, 0, -3, 0, 0])
        XCTAssertEqual(try Samples.sparse.values(), [9, -3])
    }

    func testLargeTensorTravelsAsItsOwnFrameUnchanged() throws {
        let values = (0..<300_000).map { Float($0) * 0.25 }
        let t = Tensor(name: "hidden", shape: [300, 1000], floats: values)
        let env = Envelope(sender: "dev", body: .activation(StageActivation(sessionId: "s", hidden: t)))
        let frames = env.encodeFrames()
        XCTAssertEqual(frames.count, 2)
        XCTAssertEqual(frames[1].count, 1_200_000)
        XCTAssertLessThan(frames[0].count, 100)
        guard case .activation(let a) = try Envelope.decode(frames: frames).body else { return XCTFail("wrong body") }
        XCTAssertEqual(try a.hidden?.floats(), values)
    }
}

final class TensorConstructionTests: XCTestCase {
    func testQuantizingNonFiniteValuesDoesNotTrap() throws {
        let t = Tensor(name: "q", shape: [3], quantizing: [.nan, 1, -.infinity])
        XCTAssertEqual(t.bytes.count, 3)
        XCTAssertEqual(Int8(bitPattern: t.bytes[0]), 0)
        XCTAssertEqual(Int8(bitPattern: t.bytes[2]), -127)
    }
}
