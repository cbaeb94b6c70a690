import Bus
import Foundation
import Messages
import XCTest

/// Swift publishes over tcp; Python (pyzmq + protoc --python_out of proto/fi.proto) decodes it.
final class PythonInteropTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func testPythonDecodesTelemetryAndModelBroadcastFromTheSameProto() throws {
        try decodeInPython(context: .shared, environment: [:])
    }

    /// The same over CURVE: pyzmq reads the key files `fi keys generate` writes and passes the ZAP allow-list.
    func testPythonDecodesOverCurveWithAnAllowListedKey() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("py-curve-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: dir) }
        let keys = try CurveDeployment.create(in: dir, clients: ["python"])
        let context = BusContext()
        try context.secure(try keys.security(as: CurveDeployment.serverName, binds: true))
        try decodeInPython(context: context, environment: ["FI_CURVE_SECRET": keys.secretFile("python"),
                                                           "FI_CURVE_SERVER": keys.publicFile(CurveDeployment.serverName)])
        XCTAssertEqual(context.curveStats.admitted, 1)
    }

    private func decodeInPython(context: BusContext, environment: [String: String]) throws {
        let python = Self.root.appendingPathComponent(".venv/bin/python")
        let module = Self.root.appendingPathComponent(".build/python/fi_pb2.py")
        guard FileManager.default.isExecutableFile(atPath: python.path), FileManager.default.fileExists(atPath: module.path) else {
            return XCTFail("missing \(python.path) or \(module.path): run scripts/bootstrap first")
        }
        let pub = try Socket(.pub, context: context)
        let endpoint = try pub.bind("tcp://127.0.0.1:0")

        let process = Process()
        process.executableURL = python
        process.arguments = [Self.root.appendingPathComponent("scripts/decode_tap.py").path, endpoint, "telemetry", "model"]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        try process.run()

        let event = Envelope(sender: "cluster-manager", seq: 41,
                             body: .telemetry(.event(Event(severity: .warn, kind: "peer_dead", text: "dev-3 missed 4 heartbeats"))))
        let values = (0..<5000).map { Float($0) / 8 }
        let model = Envelope(sender: "aggregator", seq: 42, body: .model(ModelBroadcast(round: 7, cluster: 2, tier: .edge, tensors: [
            Tensor(name: "lora_A", shape: [50, 100], floats: values),
            Tensor(name: "lora_B", shape: [2], floats: [1.5, -2]),
        ])))
        // Keep publishing until the subscriber has joined and seen both (PUB drops before that).
        let deadline = Date().addingTimeInterval(20)
        while process.isRunning && Date() < deadline {
            try pub.send(event, prefix: [Array("telemetry".utf8)])
            try pub.send(model, prefix: [Array("model/2/edge".utf8)], externalThreshold: 1024)
            Thread.sleep(forTimeInterval: 0.02)
        }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(process.terminationStatus, 0, stderr)
        let lines = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n")
        var byBody: [String: [String: Any]] = [:]
        for line in lines {
            let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            byBody[obj["body"] as? String ?? ""] = obj
        }
        let tel = try XCTUnwrap(byBody["telemetry"], "python printed: \(lines) \(stderr)")
        XCTAssertEqual(tel["topic"] as? String, "telemetry")
        XCTAssertEqual(tel["sender"] as? String, "cluster-manager")
        XCTAssertEqual(tel["seq"] as? Int, 41)
        XCTAssertEqual(tel["version"] as? Int, 1)
        let ev = try XCTUnwrap(tel["event"] as? [String: Any])
        XCTAssertEqual(ev["severity"] as? String, "SEVERITY_WARN")
        XCTAssertEqual(ev["kind"] as? String, "peer_dead")
        XCTAssertEqual(ev["text"] as? String, "dev-3 missed 4 heartbeats")

        let m = try XCTUnwrap(byBody["model"]?["model"] as? [String: Any])
        XCTAssertEqual(m["round"] as? Int, 7)
        XCTAssertEqual(m["cluster"] as? Int, 2)
        XCTAssertEqual(m["tier"] as? String, "TIER_EDGE")
        let tensors = try XCTUnwrap(m["tensors"] as? [[String: Any]])
        XCTAssertEqual(tensors.count, 2)
        XCTAssertEqual(tensors[0]["name"] as? String, "lora_A")
        XCTAssertEqual(tensors[0]["shape"] as? [Int], [50, 100])
        XCTAssertEqual(tensors[0]["dtype"] as? String, "DTYPE_F32")
        XCTAssertEqual(tensors[0]["frame"] as? Int, 1)  // travelled as its own frame
        XCTAssertEqual((tensors[0]["values"] as? [Double])?.map { Float($0) }, values)
        XCTAssertEqual(tensors[1]["frame"] as? Int, 0)  // small: inline
        XCTAssertEqual(tensors[1]["values"] as? [Double], [1.5, -2])
    }
}
