import Bus
import Foundation
import Messages
import XCTest

/// The result of a Tap.run on a background thread.
final class TapRun: @unchecked Sendable {  // safe: `result` written before `done` is signalled, read after
    let sink = LineSink()
    let done = DispatchSemaphore(value: 0)
    var result: Result<(exit: Tap.Exit, stats: TapStats), Error>?

    init(_ options: TapOptions) {
        Thread { [self] in
            result = Result { try Tap.run(options) { self.sink.append($0) } }
            done.signal()
        }.start()
    }

    func finish(within seconds: Double = 15) throws -> (exit: Tap.Exit, stats: TapStats) {
        guard done.wait(timeout: .now() + seconds) == .success, let result else { throw BusError.timeout }
        return try result.get()
    }

    var output: [String] { sink.lines.filter { !$0.diagnostic }.map(\.text) }
    var diagnostics: [String] { sink.lines.filter(\.diagnostic).map(\.text) }
}

final class TapTests: XCTestCase {
    func testTapDecodesEveryMessageTypeThroughTheProxy() throws {
        XCTAssertEqual(Set(Fixtures.bodies.map(Fixtures.caseName)), Fixtures.allCaseNames)
        let proxy = try startProxy()
        defer { proxy.stop() }
        let tap = TapRun(TapOptions(connect: proxy.xpubEndpoint, topics: ["telemetry/"], json: true, timeout: 1.5))
        let pub = try TelemetryPublisher(connect: proxy.xsubEndpoint, sender: "node-a")
        // PUB drops everything until the subscription has travelled up: probe until the tap hears one.
        XCTAssertTrue(waitUntil {
            _ = try? pub.publish(.event(Event(severity: .debug, kind: "probe")))
            return !tap.output.isEmpty
        }, "the tap never heard the publisher")
        let firstSeq = pub.nextSeq
        for body in Fixtures.bodies { try pub.publish(envelope: body) }
        let (exit, stats) = try tap.finish()
        XCTAssertEqual(exit, .timeout)

        let lines = try tap.output.map { try object($0) }
        XCTAssertTrue(lines.allSatisfy { $0["gap"] == nil && $0["late"] == nil }, "unexpected seq report: \(tap.output)")
        let messages = lines.filter { (($0["telemetry"] as? [String: Any])?["event"] as? [String: Any])?["kind"] as? String != "probe" }
        XCTAssertEqual(messages.map { $0["kind"] as? String ?? "?" }, Fixtures.bodies.map(Fixtures.caseName))
        for (i, (line, body)) in zip(messages, Fixtures.bodies).enumerated() {
            let kind = Fixtures.caseName(body)
            XCTAssertEqual(line["topic"] as? String, "telemetry/\(kind)/node-a")
            XCTAssertEqual(line["sender"] as? String, "node-a")
            XCTAssertEqual(line["seq"] as? Int, Int(firstSeq) + i)
            XCTAssertEqual(line["version"] as? Int, 1)
            XCTAssertEqual(line["reply_to"] as? Int, 0)
            XCTAssertGreaterThan(line["timestamp_us"] as? Int ?? 0, 1_700_000_000_000_000)
            // Everything the sender put in arrives: the decoded body's JSON equals the fixture's.
            let expected = try object(Envelope(sender: "x", body: body).json.rendered)[body.name] as? NSDictionary
            XCTAssertEqual(line[body.name] as? NSDictionary, expected, kind)
        }

        // The mapping itself: proto field names, proto enum names, tensor summaries without data.
        func body(_ kind: String) throws -> [String: Any] {
            let line = try XCTUnwrap(messages.first { $0["kind"] as? String == kind })
            let name = ["load", "channel", "metric", "event"].contains(kind) ? "telemetry" : kind
            return try XCTUnwrap(line[name] as? [String: Any], kind)
        }
        let register = try body("register")
        XCTAssertEqual(register["role"] as? String, "ROLE_DEVICE")
        XCTAssertEqual((register["caps"] as? [String: Any])?["memory_bytes"] as? Int, 1 << 30)
        let round = try body("round")
        XCTAssertEqual(round["paradigm"] as? String, "PARADIGM_HIERARCHICAL")
        XCTAssertEqual(round["tier"] as? String, "TIER_EDGE")
        XCTAssertEqual(round["learning_rate"] as? Double, 0.0003)
        XCTAssertEqual(round["participants"] as? [String], ["dev-1", "dev-2"])
        XCTAssertEqual(round["deadline_s"] as? Double, 12.5)
        let tensors = try XCTUnwrap(try body("model")["tensors"] as? [[String: Any]])
        XCTAssertEqual(tensors.map { $0["name"] as? String }, ["h.0.attn.c_attn.lora_A", "h.1.mlp.lora_B", "q", "topk"])
        XCTAssertEqual(tensors[1]["shape"] as? [Int], [64, 128])
        XCTAssertEqual(tensors[1]["dtype"] as? String, "DTYPE_F32")
        XCTAssertEqual(tensors[1]["bytes"] as? Int, 64 * 128 * 4)  // travelled as its own frame, summarized
        XCTAssertEqual(tensors[2]["dtype"] as? String, "DTYPE_INT8")
        XCTAssertEqual(tensors[2]["scale"] as? Double, Double("\(Float(4) / 127)"))
        XCTAssertEqual(tensors[3]["indices"] as? Int, 2)
        XCTAssertTrue(tensors.allSatisfy { $0["data"] == nil && $0["values"] == nil })
        XCTAssertEqual((try body("update")["delta"] as? [[String: Any]])?.count, 2)
        XCTAssertEqual(try body("update")["train_loss"] as? Double, 2.75)
        XCTAssertEqual((try body("cluster_map")["members"] as? [[String: Any]])?.last?["alive"] as? Bool, false)
        XCTAssertEqual(try body("ack")["reason"] as? String, "stale")
        XCTAssertEqual(try body("eval_result")["tokens"] as? Int, 4096)
        XCTAssertEqual((try body("load")["load"] as? [String: Any])?["flops"] as? Double, 1e9)
        XCTAssertEqual((try body("channel")["channel"] as? [String: Any])?["link"] as? String, "dev-1->edge-0")
        XCTAssertEqual((try body("metric")["metric"] as? [String: Any])?["labels"] as? [String: String], ["tier": "edge", "cluster": "1"])
        XCTAssertEqual((try body("event")["event"] as? [String: Any])?["severity"] as? String, "SEVERITY_WARN")
        XCTAssertEqual((try body("infer_request")["sampling"] as? [String: Any])?["top_k"] as? Int, 40)
        XCTAssertEqual((try body("activation")["hidden"] as? [String: Any])?["bytes"] as? Int, 24)
        XCTAssertEqual((try body("activation")["plan"] as? [[String: Any]])?.last?["head"] as? Bool, true)
        XCTAssertEqual(try body("token")["text"] as? String, "\n")
        XCTAssertEqual(try body("token")["stage_seconds"] as? [Double], [0.01, 0.02])
        XCTAssertEqual(try body("error")["code"] as? String, "ERROR_NO_ROUTE")

        XCTAssertEqual(stats.undecodable, 0)
        XCTAssertEqual(stats.senders["node-a"]?.gaps, 0)
        XCTAssertEqual(stats.senders["node-a"]?.lastSeq, pub.nextSeq - 1)
        let summary = try object(try XCTUnwrap(tap.diagnostics.last))["tap_summary"] as? [String: Any]
        XCTAssertEqual(summary?["messages"] as? Int, stats.messages)
        XCTAssertEqual(summary?["decoded"] as? Int, stats.messages)
    }

    func testTapReportsAForcedGapAndCountsAGarbageFrameWithoutStopping() throws {
        let proxy = try startProxy()
        defer { proxy.stop() }
        let tap = TapRun(TapOptions(connect: proxy.xpubEndpoint, json: true, timeout: 1.0))
        let pub = try Socket(.pub)
        try pub.connect(proxy.xsubEndpoint)
        func send(_ seq: UInt64, sender: String = "dev-gap") throws {
            let env = Envelope(sender: sender, seq: seq, body: .telemetry(.load(LoadReport(load: Double(seq) / 10))))
            try pub.send(env, prefix: [Array("telemetry/load/\(sender)".utf8)])
        }
        XCTAssertTrue(waitUntil { (try? send(0, sender: "probe")) != nil && !tap.output.isEmpty })
        try send(1)
        try send(2)
        try send(4)  // 3 is "lost"
        try pub.send([Array("telemetry/event/junk".utf8), Array("not a protobuf".utf8)])
        try send(5)
        let (exit, stats) = try tap.finish()
        XCTAssertEqual(exit, .timeout)

        let lines = try tap.output.map { try object($0) }
        let gaps = lines.compactMap { $0["gap"] as? [String: Any] }
        XCTAssertEqual(gaps.count, 1, "\(tap.output)")
        XCTAssertEqual(gaps.first?["sender"] as? String, "dev-gap")
        XCTAssertEqual(gaps.first?["from"] as? Int, 3)
        XCTAssertEqual(gaps.first?["to"] as? Int, 3)
        XCTAssertEqual(gaps.first?["missing"] as? Int, 1)
        XCTAssertEqual(gaps.first?["at_seq"] as? Int, 4)
        let seqs = lines.filter { $0["sender"] as? String == "dev-gap" }.map { $0["seq"] as? Int }
        XCTAssertEqual(seqs, [1, 2, 4, 5])  // the message after the garbage still decoded

        let error = try XCTUnwrap(tap.diagnostics.compactMap { try? object($0)["tap_error"] as? [String: Any] }.first)
        XCTAssertEqual(error["kind"] as? String, "invalidProtobuf")
        XCTAssertEqual(error["topic"] as? String, "telemetry/event/junk")
        XCTAssertEqual(error["bytes"] as? Int, "telemetry/event/junk".utf8.count + "not a protobuf".utf8.count)
        XCTAssertEqual(stats.undecodable, 1)
        XCTAssertEqual(stats.errors, ["invalidProtobuf": 1])
        XCTAssertEqual(stats.senders["dev-gap"]?.lost, 1)
        XCTAssertEqual(stats.senders["dev-gap"]?.received, 4)
    }

    func testTapStopsAfterCountMessages() throws {
        let proxy = try startProxy()
        defer { proxy.stop() }
        let tap = TapRun(TapOptions(connect: proxy.xpubEndpoint, topics: ["telemetry/load/"], count: 3, timeout: 10))
        let pub = try TelemetryPublisher(connect: proxy.xsubEndpoint, sender: "dev-1")
        var finished: (exit: Tap.Exit, stats: TapStats)?
        XCTAssertTrue(waitUntil {
            _ = try? pub.publish(.event(Event(severity: .info, kind: "filtered out")))
            _ = try? pub.publish(.load(LoadReport(load: 0.5)))
            if tap.done.wait(timeout: .now()) == .success { tap.done.signal(); finished = try? tap.finish() }
            return finished != nil
        })
        XCTAssertEqual(finished?.exit, .count)
        XCTAssertEqual(finished?.stats.messages, 3)
        // Only load reports pass the filter, so the sender's seq skips; a filtered tap does not call that a gap.
        XCTAssertEqual(try tap.output.map { try object($0)["kind"] as? String }, ["load", "load", "load"])
        XCTAssertEqual(finished?.stats.gaps, 0)
    }

    func testProxyReportsSubscriptionsAndCountsForwardedMessages() throws {
        final class Seen: @unchecked Sendable { let lock = NSLock(); var prefixes: [String] = [] }  // safe: behind `lock`
        let seen = Seen()
        let proxy = try startProxy { change in
            seen.lock.lock(); seen.prefixes.append((change.subscribe ? "+" : "-") + change.prefix); seen.lock.unlock()
        }
        defer { proxy.stop() }
        let sub = try Socket(.sub)
        try sub.subscribe("telemetry/metric/")
        try sub.connect(proxy.xpubEndpoint)
        XCTAssertTrue(waitUntil { seen.lock.lock(); defer { seen.lock.unlock() }; return seen.prefixes == ["+telemetry/metric/"] })
        try sub.set(.receiveTimeout(milliseconds: 20))
        let pub = try TelemetryPublisher(connect: proxy.xsubEndpoint, sender: "agg")
        var got: Envelope?
        XCTAssertTrue(waitUntil {
            _ = try? pub.publish(.metric(Metric(name: "round_seconds", value: 1.5)))
            got = (try? sub.receive()).flatMap { try? Envelope.decode(received: $0, prefixCount: 1) }
            return got != nil
        })
        XCTAssertEqual(got?.body, .telemetry(.metric(Metric(name: "round_seconds", value: 1.5))))
        XCTAssertGreaterThanOrEqual(proxy.stats.forwarded, 1)
        XCTAssertEqual(proxy.stats.subscriptions, 1)
        XCTAssertEqual(TelemetryTopic.topic(for: .round(RoundAnnouncement(round: 1)), sender: "cloud"), "telemetry/round/cloud")
    }
}
