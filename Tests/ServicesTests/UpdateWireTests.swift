import Experiments
import Federation
import Messages
import Wire
import XCTest

/// The device's update encoding: Federation's codecs, carried as tensors; the aggregator decodes exactly what the
/// codec decodes.
final class UpdateWireTests: XCTestCase {
    let layout = try! Federation.ParameterLayout(entries: [("a.lora_A.weight", [2, 5]), ("a.lora_B.weight", [4, 2]), ("b", [7])])

    func values(_ seed: Int) -> [Float] {
        (0..<layout.count).map { i in Float(sin(Double(i * 7 + seed)) * (i % 5 == 0 ? 3 : 0.2)) }
    }

    func testEveryCodecOnTheWireDecodesToWhatTheCodecDecodes() throws {
        for (name, fraction) in [("fp16", 0.0), ("int8", 0.0), ("topk", 0.2)] {
            let codec = try makeUpdateCodec(name: name, topKFraction: fraction > 0 ? fraction : nil)
            var encoder = try UpdateEncoder(codec: name, topkFraction: fraction > 0 ? fraction : 0.01, errorFeedback: false)
            let x = values(1)
            let tensors = encoder.encode(x, layout: layout)
            XCTAssertNil(AdapterWire.mismatch(tensors, layout: layout), name)
            let expected = try codec.decode(codec.encode(x, layout: layout), layout: layout)
            XCTAssertEqual(try AdapterWire.flat(tensors), expected, name)
            XCTAssertNotEqual(expected, x, "\(name) is lossy")
            XCTAssertNil(encoder.residual, "no error feedback asked")
        }
        var plain = try UpdateEncoder(codec: "fp32", topkFraction: 0.01)
        XCTAssertEqual(try AdapterWire.flat(plain.encode(values(2), layout: layout)), values(2))
        XCTAssertNil(plain.residual)
        XCTAssertThrowsError(try UpdateEncoder(codec: "zip", topkFraction: 0.01))
    }

    /// With error feedback, what the wire carried over several rounds is what was trained minus the last residual.
    func testErrorFeedbackOnTheWireDeliversEverythingButTheResidual() throws {
        var encoder = try UpdateEncoder(codec: "topk", topkFraction: 0.1)
        var sent = [Float](repeating: 0, count: layout.count), trained = sent
        for round in 0..<5 {
            let x = values(10 + round)
            let got = try AdapterWire.flat(encoder.encode(x, layout: layout))
            for i in sent.indices { sent[i] += got[i]; trained[i] += x[i] }
        }
        let residual = try XCTUnwrap(encoder.residual)
        for i in sent.indices { XCTAssertEqual(sent[i], trained[i] - residual[i], accuracy: 1e-5) }
        XCTAssertGreaterThan(residual.map(abs).max() ?? 0, 0)
    }

    func testUploadsThatDoNotFitTheLayoutAreRejectedByKind() {
        let good = AdapterWire.tensors(values(3), layout: layout)
        let ok = UpdateWire.upload(UpdateUpload(round: 4, baseVersion: 4, samples: 9, delta: good), bytes: 100, layout: layout, sketch: false)
        XCTAssertEqual(try ok.delta.get(), values(3))
        XCTAssertEqual(ok.samples, 9)
        var tooBig = good
        tooBig[2] = Messages.Tensor(name: "b", shape: [70], floats: [Float](repeating: 0, count: 70))
        for (delta, kind) in [(tooBig, "too_large"), (Array(good.dropLast()), "wrong_shape")] {
            let u = UpdateWire.upload(UpdateUpload(round: 4, delta: delta), bytes: 10, layout: layout, sketch: false)
            guard case .failure(let r) = u.delta else { return XCTFail("accepted \(kind)") }
            XCTAssertEqual(r.kind, kind)
        }
        let sketch = UpdateWire.upload(UpdateUpload(round: 4, delta: good), bytes: 10, layout: layout, sketch: true)
        guard case .failure(let r) = sketch.delta else { return XCTFail("three tensors are not a sketch") }
        XCTAssertEqual(r.kind, "bad_sketch")
    }

    func testNewExperimentKeysAreCheckedByName() throws {
        XCTAssertEqual(try Experiment.parse(yaml: "federation: {eval_devices: 200}").federation.evalDevices, 200)
        XCTAssertThrowsError(try Experiment.parse(yaml: "federation: {eval_devices: -1}")) { XCTAssertTrue("\($0)".contains("federation.eval_devices"), "\($0)") }
        XCTAssertEqual(try Experiment.parse(yaml: "compression: {codec: topk, error_feedback: false}").compression.errorFeedback, false)
        XCTAssertThrowsError(try Experiment.parse(yaml: "compression: {error_feedback: 3}")) { XCTAssertTrue("\($0)".contains("compression.error_feedback"), "\($0)") }
        XCTAssertEqual(try Experiment.parse(yaml: "data: {chunk_bytes: 512}").data.chunkBytes, 512)
        XCTAssertThrowsError(try Experiment.parse(yaml: "data: {chunk_bytes: 8}")) { XCTAssertTrue("\($0)".contains("data.chunk_bytes"), "\($0)") }
        XCTAssertThrowsError(try Experiment.parse(yaml: "data: {chunk_bytes: big}")) { XCTAssertTrue("\($0)".contains("data.chunk_bytes"), "\($0)") }
        XCTAssertThrowsError(try Experiment.parse(yaml: "simulation: yes please")) { XCTAssertTrue("\($0)".contains("simulation"), "\($0)") }
    }
}
