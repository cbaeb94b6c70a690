import Bus
import Foundation
import Messages
import XCTest

/// The proxy in-process, telemetry published from Swift, examples/tap.py (pyzmq + fi_pb2 from proto/fi.proto) decoding it.
final class PythonTapTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    final class Counter: @unchecked Sendable {  // safe: `value` behind `lock`
        private let lock = NSLock()
        private var count = 0
        func increment() { lock.lock(); count += 1; lock.unlock() }
        var value: Int { lock.lock(); defer { lock.unlock() }; return count }
    }

    func testPythonTapDecodesSwiftTelemetryAndReportsAForcedGap() throws {
        let python = Self.root.appendingPathComponent(".venv/bin/python")
        let module = Self.root.appendingPathComponent(".build/python/fi_pb2.py")
        guard FileManager.default.isExecutableFile(atPath: python.path), FileManager.default.fileExists(atPath: module.path) else {
            return XCTFail("missing \(python.path) or \(module.path): run scripts/bootstrap first")
        }
        let subscriptions = Counter()
        let proxy = try startProxy { if $0.subscribe { subscriptions.increment() } }
        defer { proxy.stop() }

        // A Swift SUB for everything, so both publishers forward all they send once they have heard it.
        // Then the Python tap is live as soon as the proxy's XPUB has registered its subscription.
        let keeper = try Socket(.sub)
        try keeper.subscribe("")
        try keeper.connect(proxy.xpubEndpoint)
        let node = try TelemetryPublisher(connect: proxy.xsubEndpoint, sender: "swift-node")
        let raw = try Socket(.pub)
        try raw.connect(proxy.xsubEndpoint)
        func sendLoad(_ seq: UInt64, sender: String) throws {
            let env = Envelope(sender: sender, seq: seq, body: .telemetry(.load(LoadReport(load: Double(seq) / 8))))
            try raw.send(env, prefix: [Array("telemetry/load/\(sender)".utf8)])
        }
        var heard = Set<String>()
        XCTAssertTrue(waitUntil {
            _ = try? node.publish(.event(Event(severity: .debug, kind: "probe")))
            try? sendLoad(0, sender: "probe")
            while let frames = try? keeper.receive(dontWait: true) {
                if let env = try? Envelope.decode(received: frames, prefixCount: 1) { heard.insert(env.sender) }
            }
            return heard == ["swift-node", "probe"]
        }, "publishers never reached the proxy")

        let before = subscriptions.value
        let process = Process()
        process.executableURL = python
        process.arguments = [Self.root.appendingPathComponent("examples/tap.py").path, proxy.xpubEndpoint, "--count", "7", "--timeout", "20"]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        XCTAssertTrue(waitUntil(20) { subscriptions.value > before }, "the Python tap never subscribed")

        try node.publish(.load(LoadReport(load: 0.5, flops: 1e9, queue: 3)))
        try node.publish(.channel(ChannelState(link: "dev-1->edge-0", rateBps: 2e7, snrDb: 13.5, rttS: 0.004)))
        try node.publish(.metric(Metric(name: "round_seconds", value: 4.25, labels: ["tier": "edge"])))
        try node.publish(.event(Event(severity: .warn, kind: "peer_dead", text: "dev-3 missed 4 heartbeats")))
        try sendLoad(1, sender: "dev-gap")
        try sendLoad(2, sender: "dev-gap")
        try sendLoad(4, sender: "dev-gap")  // 3 never sent: a forced gap

        XCTAssertTrue(waitUntil(25) { !process.isRunning }, "tap.py did not stop after --count 7")
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(process.isRunning ? nil : process.terminationStatus, 0, stderr)

        let lines = try stdout.split(separator: "\n").map { try object(String($0)) }
        XCTAssertEqual(lines.count, 7, stdout)
        // protobuf's JSON mapping: uint64 as strings, enums by name, proto field names.
        let fromNode = lines.filter { $0["sender"] as? String == "swift-node" }
        let reports = fromNode.compactMap { ($0["telemetry"] as? [String: Any])?.keys.first }
        XCTAssertEqual(reports, ["load", "channel", "metric", "event"])
        let seqs = fromNode.compactMap { ($0["seq"] as? String).flatMap { UInt64($0) } }
        XCTAssertEqual(seqs, Array((node.nextSeq - 4)..<node.nextSeq))
        let load = (fromNode.first?["telemetry"] as? [String: Any])?["load"] as? [String: Any]
        XCTAssertEqual(load?["load"] as? Double, 0.5)
        XCTAssertEqual(load?["flops"] as? Double, 1e9)
        XCTAssertEqual(load?["queue"] as? Int, 3)
        let event = (fromNode.last?["telemetry"] as? [String: Any])?["event"] as? [String: Any]
        XCTAssertEqual(event?["severity"] as? String, "SEVERITY_WARN")
        XCTAssertEqual(event?["text"] as? String, "dev-3 missed 4 heartbeats")
        XCTAssertEqual(lines.filter { $0["sender"] as? String == "dev-gap" }.map { $0["seq"] as? String }, ["1", "2", "4"])

        let diagnostics = try stderr.split(separator: "\n").map { try object(String($0)) }
        let gap = try XCTUnwrap(diagnostics.first { $0["gap"] != nil }, stderr)
        XCTAssertEqual(gap["gap"] as? String, "dev-gap")
        XCTAssertEqual(gap["missing"] as? Int, 1)
        XCTAssertEqual(gap["at_seq"] as? Int, 4)
        let summary = try XCTUnwrap(diagnostics.last)
        XCTAssertEqual(summary["messages"] as? Int, 7)
        XCTAssertEqual(summary["undecodable"] as? Int, 0)
        let senders = summary["senders"] as? [String: [String: Any]]
        XCTAssertEqual(senders?["dev-gap"]?["lost"] as? Int, 1)
        XCTAssertEqual(senders?["swift-node"]?["gaps"] as? Int, 0)
    }
}
