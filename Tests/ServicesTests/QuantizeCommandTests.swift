import Engine
import Foundation
import XCTest

/// `fi quantize` and `fi eval` as a user runs them: a quantized folder evaluates close to the fp32 one, reports its
/// weight bytes and resident memory; bad flags are errors that name them.
final class QuantizeCommandTests: XCTestCase {
    func testQuantizeThenEvalReportsSmallerWeightsAndCloseLoss() throws {
        let dir = Kit.tempDir("quantize")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("model")
        try LanguageModel(config: .llama(vocabSize: 256, contextLength: 32, layers: 2, heads: 4, kvHeads: 2, width: 64, mlpWidth: 128,
                                         tiedEmbeddings: true), seed: 3).save(directory: model)
        let text = dir.appendingPathComponent("text.txt")
        try String(repeating: "federated fine-tuning at the edge, 0123456789. ", count: 20).write(to: text, atomically: true, encoding: .utf8)
        func eval(_ folder: URL) throws -> [String: Any] {
            let (status, out, err) = try Kit.runExecutableOutput("fi", ["eval", "--model", folder.path, "--text", text.path])
            XCTAssertEqual(status, 0, err)
            return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], out)
        }
        let base = try eval(model)
        XCTAssertEqual(base["weights"] as? String, "fp32")
        XCTAssertGreaterThan(base["peak_resident_bytes"] as? Int ?? 0, 0)
        for (bits, limit, tolerance) in [(8, 0.30, 0.01), (4, 0.18, 0.03)] {
            let out = dir.appendingPathComponent("q\(bits)")
            let (status, err) = try Kit.runExecutable("fi", ["quantize", "--model", model.path, "--bits", "\(bits)", "--out", out.path])
            XCTAssertEqual(status, 0, err)
            let q = try eval(out)
            let ratio = Double(q["weight_bytes"] as! Int) / Double(q["fp32_weight_bytes"] as! Int)
            XCTAssertLessThan(ratio, limit, "\(bits)-bit weights \(ratio)× fp32")
            let (l0, l1) = (base["loss"] as! Double, q["loss"] as! Double)
            XCTAssertEqual(l1, l0, accuracy: tolerance * l0, "\(bits)-bit loss \(l1) vs fp32 \(l0)")
        }
        for (args, fragment) in [(["--bits", "3"], "--bits must be 8 or 4"), (["--bits", "4", "--group", "48"], "--group must be 32 or 64")] {
            let (status, err) = try Kit.runExecutable("fi", ["quantize", "--model", model.path, "--out", dir.appendingPathComponent("x").path] + args)
            XCTAssertNotEqual(status, 0)
            XCTAssertTrue(err.contains(fragment), err)
        }
        let (status, err) = try Kit.runExecutable("fi", ["quantize", "--model", dir.appendingPathComponent("missing").path, "--bits", "8",
                                                         "--out", dir.appendingPathComponent("y").path])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains("config.json"), err)
    }
}
