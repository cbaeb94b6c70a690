import Bus
import Foundation
import Messages
import XCTest

/// The tap's logic without sockets.
final class TapSessionTests: XCTestCase {
    func frames(_ body: Body, sender: String = "dev-1", seq: UInt64) -> [[UInt8]] {
        let env = Envelope(sender: sender, seq: seq, timestampUs: 1_700_000_123_456_789, body: body)
        return [Array(TelemetryTopic.topic(for: body, sender: sender).utf8)] + env.encodeFrames(externalThreshold: 16)
    }

    func testGarbageIsCountedByKindAndTheNextMessageStillDecodes() throws {
        var session = TapSession(json: true)
        let garbage = [[UInt8]]([Array("telemetry/load/x".utf8), [0x0a, 0xff, 0xff]])
        let bad = session.consume(garbage)
        XCTAssertEqual(bad.count, 1)
        XCTAssertTrue(bad[0].diagnostic)
        XCTAssertEqual(try object(bad[0].text)["tap_error"].flatMap { ($0 as? [String: Any])?["kind"] as? String }, "truncated")
        XCTAssertTrue(session.consume([]).first?.diagnostic ?? false)  // no frames at all
        let good = session.consume(frames(.heartbeat(Heartbeat(round: 3, load: 0.25)), seq: 1))
        XCTAssertEqual(try object(good[0].text)["kind"] as? String, "heartbeat")
        XCTAssertEqual(session.stats.messages, 3)
        XCTAssertEqual(session.stats.undecodable, 2)
        XCTAssertEqual(session.stats.errors, ["truncated": 2])
        XCTAssertEqual(session.stats.decoded, 1)
    }

    func testAnEnvelopeWithoutATopicFrameDecodes() throws {
        var session = TapSession(json: true)
        let env = Envelope(sender: "raw", seq: 9, body: .leave(Leave(reason: "bye")))
        let line = try object(session.consume([env.encode()])[0].text)
        XCTAssertEqual(line["topic"] as? String, "")
        XCTAssertEqual((line["leave"] as? [String: Any])?["reason"] as? String, "bye")
    }

    func testHumanReadableLinesShowSenderSeqKindAndFields() {
        var session = TapSession(json: false)
        let load = session.consume(frames(.telemetry(.load(LoadReport(load: 0.5, flops: 2e9, queue: 3))), seq: 1))
        XCTAssertEqual(load.map(\.text), ["22:15:23.456 dev-1 #1 load load=0.5 flops=2000000000.0 queue=3"])
        let model = session.consume(frames(.model(ModelBroadcast(round: 2, tier: .edge, tensors: [Fixtures.adapter])), seq: 3))
        XCTAssertEqual(model.count, 2)
        XCTAssertEqual(model[0].text, "22:15:23.456 dev-1 #3 model round=2 cluster=0 tier=TIER_EDGE model_version=0 "
                       + "tensors=[{name=h.0.attn.c_attn.lora_A shape=[2,3] dtype=DTYPE_F32 bytes=24}]")
        XCTAssertEqual(model[1].text, "warning: gap from dev-1: seq 2 missing (1 message) before #3")
        XCTAssertFalse(model[1].diagnostic)
        XCTAssertTrue(session.summary().text.contains("dev-1: 2 received, 1 gaps, 1 lost, last seq 3"))
    }

    func testJSONRenderingEscapesStringsAndSpellsNonFiniteNumbers() throws {
        let v = JSONValue.object([("text", .string("a\"b\\c\nd\u{1}é")), ("nan", .double(.nan)), ("inf", .double(-.infinity)),
                                  ("tiny", .double(1e-9)), ("big", .uint(.max)), ("lr", .float(3e-4))])
        XCTAssertEqual(v.rendered, #"{"text":"a\"b\\c\nd\u0001é","nan":"NaN","inf":"-Infinity","tiny":1e-09,"big":18446744073709551615,"lr":0.0003}"#)
        let parsed = try object(v.rendered)
        XCTAssertEqual(parsed["text"] as? String, "a\"b\\c\nd\u{1}é")
        XCTAssertEqual(parsed["lr"] as? Double, 0.0003)
    }
}
