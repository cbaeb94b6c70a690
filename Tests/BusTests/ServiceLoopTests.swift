import Bus
import Foundation
import Messages
import XCTest

/// A tiny service in the intended style: state confined to its loop, a ROUTER that answers heartbeats.
final class EchoService: @unchecked Sendable {  // safe: `seen` is only touched on `loop`'s thread
    let loop = ServiceLoop(name: "echo")
    let endpoint: String
    var seen: [String] = []

    init(answer: Bool = true) throws {
        let router = try Socket(.router)
        try router.set(.routerMandatory(true))
        endpoint = try router.bind("tcp://127.0.0.1:0")
        loop.add(router) { [unowned self] socket, frames in
            let request = try Envelope.decode(received: frames, prefixCount: 1)
            seen.append(request.sender)
            guard answer, case .heartbeat(let hb) = request.body else { return }
            let reply = Envelope(sender: "echo", seq: UInt64(seen.count), replyTo: request.seq,
                                 body: .ack(UpdateAck(round: hb.round, accepted: true)))
            try socket.send(reply, prefix: [frames[0]])
        }
        loop.start()
    }
}

final class ServiceLoopTests: XCTestCase {
    func testTimersFireOnTheLoopThread() async throws {
        let loop = ServiceLoop(name: "timers")
        final class Counts: @unchecked Sendable { var ticks = 0; var once = 0; var cancelled = 0 }  // safe: loop-confined
        let counts = Counts()
        loop.every(.milliseconds(10)) { counts.ticks += 1 }
        loop.after(.milliseconds(30)) { counts.once += 1 }
        let id = loop.after(.milliseconds(40)) { counts.cancelled += 1 }
        loop.cancel(id)
        loop.start()
        try await Task.sleep(for: .milliseconds(200))
        let (ticks, once, cancelled) = try await loop.perform { (counts.ticks, counts.once, counts.cancelled) }
        XCTAssertGreaterThanOrEqual(ticks, 5)
        XCTAssertLessThanOrEqual(ticks, 21)
        XCTAssertEqual(once, 1)
        XCTAssertEqual(cancelled, 0)
        loop.stop()
        do {
            _ = try await loop.perform { 1 }
            XCTFail("perform after stop must throw")
        } catch {
            XCTAssertEqual(error as? BusError, .stopped)
        }
    }

    func testRequestClientGetsTheMatchingReply() async throws {
        let service = try EchoService()
        let client = try RequestClient(connect: service.endpoint, sender: "dev-9")
        for round in UInt64(1)...5 {
            let reply = try await client.request(.heartbeat(Heartbeat(round: round, load: 0.1)), timeout: .seconds(5))
            XCTAssertEqual(reply.sender, "echo")
            XCTAssertEqual(reply.body, .ack(UpdateAck(round: round, accepted: true)))
            XCTAssertEqual(reply.replyTo, round)
        }
        try await client.send(.leave(Leave(reason: "done")))
        try await Task.sleep(for: .milliseconds(50))
        let seen = try await service.loop.perform { service.seen }
        XCTAssertEqual(seen, Array(repeating: "dev-9", count: 6))
        client.close()
        service.loop.stop()
    }

    func testRequestWithoutReplyTimesOut() async throws {
        let service = try EchoService(answer: false)
        let client = try RequestClient(connect: service.endpoint, sender: "dev-1")
        let start = Date()
        do {
            _ = try await client.request(.heartbeat(Heartbeat(round: 1)), timeout: .milliseconds(150))
            XCTFail("expected a timeout")
        } catch {
            XCTAssertEqual(error as? BusError, .timeout)
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 2)
        client.close()
        service.loop.stop()
    }

    func testStopClosesSocketsPromptlyWithPendingOutput() throws {
        let loop = ServiceLoop(name: "stopper")
        let push = try Socket(.push)
        try push.connect("tcp://127.0.0.1:1")  // nobody listens: messages stay queued
        loop.add(push) { _, _ in }
        loop.every(.milliseconds(1)) { try? push.send([[UInt8](repeating: 1, count: 1000)], dontWait: true) }
        loop.start()
        Thread.sleep(forTimeInterval: 0.05)
        let start = Date()
        loop.stop()
        XCTAssertLessThan(Date().timeIntervalSince(start), 2)
        XCTAssertTrue(push.isClosed)
        XCTAssertFalse(loop.isRunning)
    }

    func testHandlersSeeEnvelopesWithExternalTensorFrames() async throws {
        let loop = ServiceLoop(name: "sink")
        let pull = try Socket(.pull)
        let endpoint = try pull.bind("inproc://sink-\(UUID().uuidString)")
        final class Box: @unchecked Sendable { var got: [Envelope] = [] }  // safe: loop-confined
        let box = Box()
        loop.add(pull) { _, frames in box.got.append(try Envelope.decode(frames: frames)) }
        loop.start()
        let push = try Socket(.push)
        try push.connect(endpoint)
        let t = Tensor(name: "hidden", shape: [64, 768], floats: (0..<(64 * 768)).map { Float($0) })
        let env = Envelope(sender: "dev", seq: 1, body: .activation(StageActivation(sessionId: "s", hidden: t)))
        try push.send(env)
        for _ in 0..<200 where try await loop.perform({ box.got.count }) == 0 { try await Task.sleep(for: .milliseconds(5)) }
        let got = try await loop.perform { box.got }
        XCTAssertEqual(got, [env])
        loop.stop()
    }
}
