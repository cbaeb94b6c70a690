import Bus
import Foundation
import XCTest

/// Endpoints for one transport; `bind` gives back the real address (tcp port 0 -> chosen port).
enum Transport: CaseIterable {
    case inproc, tcp, ipc

    func endpoint() -> String {
        let id = UUID().uuidString.prefix(8)
        switch self {
        case .inproc: return "inproc://test-\(id)"
        case .tcp: return "tcp://127.0.0.1:0"
        case .ipc: return "ipc:///tmp/fi-bus-test-\(id).ipc"
        }
    }
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
func text(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

func removeIPCFile(_ endpoint: String) {
    if endpoint.hasPrefix("ipc://") { try? FileManager.default.removeItem(atPath: String(endpoint.dropFirst(6))) }
}

final class SocketTests: XCTestCase {
    /// PUB/SUB drops messages until the subscription has reached the publisher: publish probes until one arrives.
    private func waitForSubscription(_ pub: Socket, _ sub: Socket, probe: String) throws {
        try sub.set(.receiveTimeout(milliseconds: 20))
        for _ in 0..<250 {
            try pub.send([bytes(probe)])
            if let got = try? sub.receive(), text(got[0]) == probe { break }
        }
        // Drain further probes.
        try sub.set(.receiveTimeout(milliseconds: 50))
        while let got = try? sub.receive(), text(got[0]) == probe {}
        try sub.set(.receiveTimeout(milliseconds: 2000))
    }

    func testPubSubDeliversOnlySubscribedTopicsOnEveryTransport() throws {
        for transport in Transport.allCases {
            let pub = try Socket(.pub)
            let endpoint = try pub.bind(transport.endpoint())
            defer { removeIPCFile(endpoint) }
            let sub = try Socket(.sub)
            try sub.subscribe("model/1/")
            try sub.connect(endpoint)
            try waitForSubscription(pub, sub, probe: "model/1/probe")
            try pub.send([bytes("model/2/edge"), bytes("not for us")])
            try pub.send([bytes("model/1/edge"), bytes("v1")])
            try pub.send([bytes("map"), bytes("not for us")])
            try pub.send([bytes("model/1/cloud"), bytes("v2")])
            XCTAssertEqual(try sub.receive().map(text), ["model/1/edge", "v1"], "\(transport)")
            XCTAssertEqual(try sub.receive().map(text), ["model/1/cloud", "v2"], "\(transport)")
            try sub.set(.unsubscribe(bytes("model/1/")))
            try sub.set(.receiveTimeout(milliseconds: 100))
            Thread.sleep(forTimeInterval: 0.05)
            try pub.send([bytes("model/1/edge"), bytes("after unsubscribe")])
            XCTAssertThrowsError(try sub.receive(), "\(transport)") { XCTAssertEqual($0 as? BusError, .wouldBlock) }
        }
    }

    func testRouterDealerRequestReplyWithIdentitiesOnEveryTransport() throws {
        for transport in Transport.allCases {
            let router = try Socket(.router)
            let endpoint = try router.bind(transport.endpoint())
            defer { removeIPCFile(endpoint) }
            if transport == .tcp { XCTAssertTrue(endpoint.hasPrefix("tcp://127.0.0.1:") && !endpoint.hasSuffix(":0"), endpoint) }
            let dealers = try ["dev-1", "dev-2"].map { id -> Socket in
                let d = try Socket(.dealer)
                try d.set(.routingId(bytes(id)))
                try d.set(.receiveTimeout(milliseconds: 2000))
                try d.connect(endpoint)
                return d
            }
            try router.set(.receiveTimeout(milliseconds: 2000))
            try dealers[1].send([bytes("ping"), bytes("2")])
            try dealers[0].send([bytes("ping"), bytes("1")])
            for _ in 0..<2 {
                let req = try router.receive()
                XCTAssertEqual(req.count, 3)
                try router.send([req[0], bytes("pong"), req[2]])
            }
            XCTAssertEqual(try dealers[0].receive().map(text), ["pong", "1"], "\(transport)")
            XCTAssertEqual(try dealers[1].receive().map(text), ["pong", "2"], "\(transport)")
        }
    }

    func testRouterMandatoryReportsUnknownPeer() throws {
        let router = try Socket(.router)
        try router.set(.routerMandatory(true))
        _ = try router.bind(Transport.inproc.endpoint())
        XCTAssertThrowsError(try router.send([bytes("ghost"), bytes("hello")])) { error in
            XCTAssertEqual(error as? BusError, .unroutable(peer: bytes("ghost")))
            XCTAssertTrue("\(error)".contains("ghost"))
        }
    }

    func testClosingWithPendingMessagesIsBoundedByLinger() throws {
        // A port that was just free and now has no listener.
        let probe = try Socket(.router)
        let dead = try probe.bind("tcp://127.0.0.1:0")
        probe.close()
        let start = Date()
        do {
            let context = BusContext()
            let push = try Socket(.push, context: context)
            try push.connect(dead)
            let dealer = try Socket(.dealer, context: context)
            try dealer.connect(dead)
            for i in 0..<10 {
                try push.send([bytes("pending \(i)")], dontWait: true)
                try dealer.send([[UInt8](repeating: 7, count: 100_000)], dontWait: true)
            }
            push.close()
            dealer.close()
        }  // context terminates here
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertLessThan(elapsed, 2.0)
    }

    func testSendingOnAClosedSocketIsTypedError() throws {
        let s = try Socket(.push)
        s.close()
        XCTAssertThrowsError(try s.send([bytes("x")])) { XCTAssertEqual($0 as? BusError, .closed) }
        XCTAssertThrowsError(try Socket(.pull).connect("nonsense://x")) { error in
            guard case .zmq(let call, let errno, let message)? = error as? BusError else { return XCTFail("\(error)") }
            XCTAssertTrue(call.contains("nonsense://x"))
            XCTAssertNotEqual(errno, 0)
            XCTAssertFalse(message.isEmpty)
        }
    }

    func testLargeFramesArriveIntactThroughZeroCopySend() throws {
        let big = (0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        for transport in [Transport.inproc, .tcp] {
            let pull = try Socket(.pull)
            let endpoint = try pull.bind(transport.endpoint())
            try pull.set(.receiveTimeout(milliseconds: 5000))
            let push = try Socket(.push)
            try push.connect(endpoint)
            try push.send([bytes("head"), big, bytes("tail")])
            let got = try pull.receive()
            XCTAssertEqual(got.count, 3)
            XCTAssertEqual(got[1], big, "\(transport)")
            XCTAssertEqual(text(got[2]), "tail")
        }
    }

    func testPollerReportsOnlyTheReadySocket() throws {
        let a = try Socket(.pull), b = try Socket(.pull)
        let ea = try a.bind(Transport.inproc.endpoint()), eb = try b.bind(Transport.inproc.endpoint())
        let push = try Socket(.push)
        try push.connect(eb)
        var poller = Poller()
        let ia = poller.add(a), ib = poller.add(b)
        XCTAssertEqual(try poller.poll(timeoutMilliseconds: 10), 0)
        try push.send([bytes("x")])
        XCTAssertEqual(try poller.poll(timeoutMilliseconds: 1000), 1)
        XCTAssertFalse(poller.isReadable(ia))
        XCTAssertTrue(poller.isReadable(ib))
        XCTAssertEqual(try b.receive(dontWait: true).map(text), ["x"])
        XCTAssertThrowsError(try a.receive(dontWait: true)) { XCTAssertEqual($0 as? BusError, .wouldBlock) }
        _ = ea
    }
}
