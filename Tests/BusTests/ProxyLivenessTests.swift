import Bus
import Foundation
import Messages
import XCTest

final class ProxyLivenessTests: XCTestCase {
    func testTelemetryFlowsThroughXsubXpubProxyWithTopicFilter() throws {
        let loop = ServiceLoop(name: "proxy")
        let xsub = try Socket(.xsub), xpub = try Socket(.xpub)
        let front = try xsub.bind("tcp://127.0.0.1:0")
        let back = try xpub.bind("inproc://proxy-\(UUID().uuidString)")
        loop.addProxy(frontend: xsub, backend: xpub)
        loop.start()
        defer { loop.stop() }

        let pub = try Socket(.pub)
        try pub.connect(front)
        let sub = try Socket(.sub)
        try sub.subscribe("telemetry/load")
        try sub.connect(back)
        try sub.set(.receiveTimeout(milliseconds: 20))
        let load = Envelope(sender: "dev-1", seq: 1, body: .telemetry(.load(LoadReport(load: 0.25, flops: 1e9, queue: 2))))
        let event = Envelope(sender: "dev-1", seq: 2, body: .telemetry(.event(Event(severity: .info, kind: "x"))))
        var got: Envelope?
        for _ in 0..<250 where got == nil {
            try pub.send(event, prefix: [Array("telemetry/event".utf8)])
            try pub.send(load, prefix: [Array("telemetry/load".utf8)])
            if let frames = try? sub.receive() {
                XCTAssertEqual(String(decoding: frames[0], as: UTF8.self), "telemetry/load")
                got = try Envelope.decode(received: frames, prefixCount: 1)
            }
        }
        XCTAssertEqual(got, load)
    }

    func testPeerIsDeadAfterMissedHeartbeats() {
        var live = PeerLiveness<String>(interval: .seconds(1), misses: 3)
        let t0 = ContinuousClock.now
        live.heard(from: "a", at: t0)
        live.heard(from: "b", at: t0)
        live.heard(from: "b", at: t0 + .seconds(2))
        XCTAssertEqual(live.expire(at: t0 + .milliseconds(2999)), [])
        XCTAssertTrue(live.isAlive("a", at: t0 + .milliseconds(2999)))
        XCTAssertFalse(live.isAlive("a", at: t0 + .seconds(3)))
        XCTAssertEqual(live.expire(at: t0 + .seconds(3)), ["a"])
        XCTAssertEqual(live.peers, ["b"])
        XCTAssertEqual(live.expire(at: t0 + .seconds(5)), ["b"])
        XCTAssertFalse(live.isAlive("zzz", at: t0))
    }
}
