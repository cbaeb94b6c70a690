import Bus
import Foundation
import Messages
import XCTest

/// Collects log lines from a ZAP handler (thread-safe).
final class LogLines: @unchecked Sendable {  // safe: behind `lock`
    private let lock = NSLock()
    private var stored: [String] = []
    func append(_ line: String) { lock.lock(); stored.append(line); lock.unlock() }
    var lines: [String] { lock.lock(); defer { lock.unlock() }; return stored }
}

/// A deployment in miniature: a server key, allow-listed client keys, and contexts standing for processes.
struct CurveFixture {
    let server = try! CurveKeyPair.generate()
    let client = try! CurveKeyPair.generate()
    let stranger = try! CurveKeyPair.generate()
    let log = LogLines()

    /// The server process: binds, admits `client` (and the server key, for servers that dial each other).
    func serverContext() throws -> BusContext {
        let c = BusContext()
        try c.secure(CurveSecurity(identity: server, allowed: [client.publicKey: "client", server.publicKey: "server"]),
                     log: { [log] in log.append($0) })
        return c
    }

    func clientContext(_ identity: CurveKeyPair? = nil, serverKey: CurveKey? = nil) throws -> BusContext {
        let c = BusContext()
        try c.secure(CurveSecurity(identity: identity ?? client, serverKey: serverKey ?? server.publicKey))
        return c
    }
}

final class CurveTests: XCTestCase {
    func testCurveIsAvailableInThisLibzmq() {
        XCTAssertTrue(BusContext.curveAvailable, "libzmq lacks CURVE: every tcp socket would be plaintext")
    }

    // MARK: keys and key files

    func testGeneratedKeyFilesRoundTripAndTheSecretIsPrivate() throws {
        let dir = try tempDir()
        let pair = try CurveKeyFile.generate(name: "dev", in: dir)
        let pub = dir.appendingPathComponent("dev.key").path, sec = dir.appendingPathComponent("dev.secret").path
        XCTAssertEqual(try CurveKeyFile.readPublic(pub), pair.publicKey)
        XCTAssertEqual(try CurveKeyFile.readSecret(sec), pair.secretKey)
        XCTAssertEqual(try mode(sec), 0o600)
        XCTAssertEqual(try mode(pub), 0o644)
        XCTAssertEqual(try String(contentsOfFile: pub, encoding: .utf8), pair.publicKey.z85 + "\n")
        XCTAssertEqual(pair.publicKey.z85.count, 40)
        XCTAssertEqual(try CurveKey(z85: pair.publicKey.z85), pair.publicKey)
        XCTAssertEqual(try CurveKeyPair(secret: pair.secretKey).publicKey, pair.publicKey, "the public key derives from the secret")
        XCTAssertNotEqual(try CurveKeyPair.generate().publicKey, pair.publicKey)
        // An existing pair is kept only when asked; otherwise it is an error naming the file.
        XCTAssertEqual(try CurveKeyFile.generate(name: "dev", in: dir, keepExisting: true).publicKey, pair.publicKey)
        XCTAssertThrowsError(try CurveKeyFile.generate(name: "dev", in: dir)) { XCTAssertEqual($0 as? CurveKeyError, .exists(file: sec)) }
        XCTAssertEqual(try CurveKeyFile.readAllowList(dir.path), [pair.publicKey: "dev"], "secrets in the folder are not keys to admit")
    }

    func testBadKeyFilesAreTypedErrorsNamingTheFile() throws {
        let dir = try tempDir()
        let good = try CurveKeyPair.generate().publicKey.z85
        func file(_ name: String, _ text: String, mode: Int = 0o600) throws -> String {
            let path = dir.appendingPathComponent(name).path
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            chmod(path, mode_t(mode))
            return path
        }
        let cases: [(String, (String) throws -> Void, (String) -> CurveKeyError)] = try [
            (file("short.key", String(good.dropLast())), { _ = try CurveKeyFile.readPublic($0) },
             { .malformed(file: $0, reason: "expected 40 Z85 characters, found 39") }),
            (file("tilde.key", "~" + good.dropFirst()), { _ = try CurveKeyFile.readPublic($0) },
             { .malformed(file: $0, reason: "character 1 ('~') is not Z85") }),
            (file("two.key", good + "\n" + good + "\n"), { _ = try CurveKeyFile.readPublic($0) },
             { .malformed(file: $0, reason: "expected one line, found 2") }),
            (file("empty.key", ""), { _ = try CurveKeyFile.readPublic($0) }, { .malformed(file: $0, reason: "expected one line, found 0") }),
            (file("open.secret", good, mode: 0o644), { _ = try CurveKeyFile.readSecret($0) }, { .secretTooOpen(file: $0, mode: 0o644) }),
            (dir.appendingPathComponent("missing.secret").path, { _ = try CurveKeyFile.readSecret($0) },
             { .unreadable(file: $0, reason: "No such file or directory") }),
            (try file("plain.txt", good), { _ = try CurveKeyFile.readAllowList($0) }, { .notADirectory(path: $0) }),
        ]
        for (path, read, expected) in cases {
            XCTAssertThrowsError(try read(path), path) { error in
                XCTAssertEqual(error as? CurveKeyError, expected(path))
                XCTAssertTrue("\(error)".contains(path), "\(error) does not name \(path)")
            }
        }
        // An allow-list with one bad key fails as a whole (naming that key), an empty one is refused.
        XCTAssertThrowsError(try CurveKeyFile.readAllowList(dir.path)) { error in
            guard case .malformed(let f, _)? = error as? CurveKeyError else { return XCTFail("\(error)") }
            XCTAssertTrue(f.hasPrefix(dir.path))
        }
        let empty = try tempDir()
        XCTAssertThrowsError(try CurveKeyFile.readAllowList(empty.path)) { XCTAssertEqual($0 as? CurveKeyError, .emptyAllowList(directory: empty.path)) }
        XCTAssertThrowsError(try CurveSecurity.load(secret: dir.appendingPathComponent("open.secret").path)) {
            XCTAssertEqual($0 as? CurveKeyError, .secretTooOpen(file: dir.appendingPathComponent("open.secret").path, mode: 0o644))
        }
    }

    // MARK: allow-listed peers

    func testAllowListedPeersWorkOnEverySocketPair() throws {
        let f = CurveFixture()
        let serverContext = try f.serverContext(), clientContext = try f.clientContext()

        // DEALER -> ROUTER and back (registration, uploads, activations).
        let (router, routerEndpoint) = try Socket.serviceRouter(bind: "tcp://127.0.0.1:0", context: serverContext)
        try router.set(.receiveTimeout(milliseconds: 5000))
        let dealer = try Socket(.dealer, context: clientContext)
        try dealer.set(.routingId(bytes("dev-1")))
        try dealer.set(.receiveTimeout(milliseconds: 5000))
        try dealer.connect(routerEndpoint)
        try dealer.send([bytes("hello")])
        let got = try router.receive()
        XCTAssertEqual(got.map(text), ["dev-1", "hello"])
        try router.send([got[0], bytes("welcome")])
        XCTAssertEqual(try dealer.receive().map(text), ["welcome"])

        // SUB -> PUB (cluster map, model broadcast).
        let pub = try Socket(.pub, context: serverContext)
        let pubEndpoint = try pub.bind("tcp://127.0.0.1:0")
        let sub = try Socket(.sub, context: clientContext)
        try sub.subscribe("map")
        try sub.connect(pubEndpoint)
        XCTAssertEqual(try publishUntilHeard(pub, sub, ["map", "v1"]), ["map", "v1"])

        // PUB -> XSUB and SUB -> XPUB through the telemetry proxy.
        let proxy = try TelemetryProxy(xsub: "tcp://127.0.0.1:0", xpub: "tcp://127.0.0.1:0", context: serverContext)
        proxy.start()
        defer { proxy.stop() }
        let publisher = try Socket(.pub, context: clientContext)
        try publisher.connect(proxy.xsubEndpoint)
        let tap = try Socket(.sub, context: clientContext)
        try tap.subscribe("telemetry/")
        try tap.connect(proxy.xpubEndpoint)
        XCTAssertEqual(try publishUntilHeard(publisher, tap, ["telemetry/load/dev-1", "x"]), ["telemetry/load/dev-1", "x"])

        // PUSH -> PULL (the bus benchmark's pair), with a 4 MB zero-copy frame.
        let pull = try Socket(.pull, context: serverContext)
        try pull.set(.receiveTimeout(milliseconds: 5000))
        let push = try Socket(.push, context: clientContext)
        try push.connect(try pull.bind("tcp://127.0.0.1:0"))
        let big = (0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try push.send([big])
        XCTAssertEqual(try pull.receive(), [big])

        let stats = serverContext.curveStats
        XCTAssertEqual(stats.refused, 0)
        XCTAssertGreaterThanOrEqual(stats.admitted, 5, "every connection went through the ZAP handler")
        XCTAssertTrue(f.log.lines.isEmpty, "\(f.log.lines)")
    }

    func testInprocStaysPlainAndTcpNeedsTheKeysItUses() throws {
        let pair = try CurveKeyPair.generate()
        let context = BusContext()
        try context.secure(CurveSecurity(identity: pair))  // no allow-list, no server key
        let pull = try Socket(.pull, context: context)
        let endpoint = try pull.bind("inproc://plain-\(UUID().uuidString)")
        let push = try Socket(.push, context: context)
        try push.connect(endpoint)
        try push.send([bytes("in process")])
        try pull.set(.receiveTimeout(milliseconds: 2000))
        XCTAssertEqual(try pull.receive().map(text), ["in process"])
        XCTAssertThrowsError(try Socket(.router, context: context).bind("tcp://127.0.0.1:0")) {
            XCTAssertEqual($0 as? CurveError, .noAllowList(endpoint: "tcp://127.0.0.1:0"))
        }
        XCTAssertThrowsError(try Socket(.dealer, context: context).connect("tcp://127.0.0.1:5999")) {
            XCTAssertEqual($0 as? CurveError, .noServerKey(endpoint: "tcp://127.0.0.1:5999"))
            XCTAssertTrue("\($0)".contains("--curve-server"))
        }
        XCTAssertThrowsError(try context.secure(CurveSecurity(identity: pair))) { XCTAssertEqual($0 as? CurveError, .alreadySecured) }
    }

    // MARK: refusals

    func testUnknownKeyIsRefusedAtTheHandshakeCountedAndLoggedOnce() throws {
        let f = CurveFixture()
        let serverContext = try f.serverContext()
        let (router, endpoint) = try Socket.serviceRouter(bind: "tcp://127.0.0.1:0", context: serverContext)
        // The stranger knows the server's public key (it is public) but is not in the allow-list.
        let attacker = try f.clientContext(f.stranger)
        // Three connections with the same key (libzmq does not retry a connection refused with 400).
        let dealers = try (0..<3).map { _ in try Socket(.dealer, context: attacker, linger: 0) }
        for d in dealers {
            try d.connect(endpoint)
            for i in 0..<1000 { try? d.send([bytes("register \(i)")], dontWait: true) }
        }
        // Every attempt is refused and counted; the peer is logged once.
        let stats = try waitFor { serverContext.curveStats.refused >= 3 ? serverContext.curveStats : nil }
        Thread.sleep(forTimeInterval: 0.2)
        XCTAssertNil(try? router.receive(dontWait: true), "a refused peer's message reached the service")
        XCTAssertEqual(stats.admitted, 0)
        XCTAssertEqual(stats.refusedKeys, 1)
        XCTAssertEqual(f.log.lines.count, 1, "\(f.log.lines)")
        XCTAssertTrue(f.log.lines[0].contains(f.stranger.publicKey.z85) && f.log.lines[0].contains("127.0.0.1"), f.log.lines[0])

        // The same server still serves an allow-listed client.
        let client = try Socket(.dealer, context: try f.clientContext())
        try client.connect(endpoint)
        try client.send([bytes("hello")])
        try router.set(.receiveTimeout(milliseconds: 5000))
        XCTAssertEqual(try router.receive().last.map(text), "hello")
        XCTAssertEqual(serverContext.curveStats.admitted, 1)
    }

    func testMissingKeysAndAWrongServerKeyAreRefused() throws {
        let f = CurveFixture()
        let serverContext = try f.serverContext()
        let pull = try Socket(.pull, context: serverContext)
        let endpoint = try pull.bind("tcp://127.0.0.1:0")
        // No CURVE at all (a plain client, like a raw pyzmq DEALER): the mechanisms do not match.
        let plain = try Socket(.push, context: BusContext(), linger: 0)
        try plain.connect(endpoint)
        // An allow-listed client key, but it takes another key for the server's: the handshake cannot complete.
        let impostor = try Socket(.push, context: try f.clientContext(serverKey: f.stranger.publicKey), linger: 0)
        try impostor.connect(endpoint)
        for i in 0..<1000 {
            try? plain.send([bytes("plain \(i)")], dontWait: true)
            try? impostor.send([bytes("wrong server key \(i)")], dontWait: true)
        }
        // Raw bytes over TCP: a ZMTP 3.0 NULL greeting followed by a message, and garbage.
        let port = try XCTUnwrap(Int(endpoint.split(separator: ":").last ?? ""))
        var greeting = [UInt8](repeating: 0, count: 64)
        greeting[0] = 0xFF; greeting[9] = 0x7F; greeting[10] = 3
        for (i, c) in "NULL".utf8.enumerated() { greeting[12 + i] = c }
        try rawTCP(port: port, greeting + [0x04, 0x05] + Array("READY".utf8) + [0x00, 0x03] + Array("raw".utf8))
        try rawTCP(port: port, (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 131) })

        try pull.set(.receiveTimeout(milliseconds: 1500))
        XCTAssertThrowsError(try pull.receive(), "a peer without the right keys delivered a message") {
            XCTAssertEqual($0 as? BusError, .wouldBlock)
        }
        XCTAssertEqual(serverContext.curveStats.admitted, 0)
    }

    func testOversizedFramesAreDroppedBeforeTheDecoder() throws {
        for secured in [false, true] {
            let f = CurveFixture()
            let serverContext = secured ? try f.serverContext() : BusContext()
            serverContext.maxInboundFrameBytes = 1024
            let pull = try Socket(.pull, context: serverContext)
            let endpoint = try pull.bind("tcp://127.0.0.1:0")
            let push = try Socket(.push, context: secured ? try f.clientContext() : BusContext(), linger: 0)
            try push.connect(endpoint)
            try push.send([[UInt8](repeating: 1, count: 1024)])
            try pull.set(.receiveTimeout(milliseconds: 5000))
            XCTAssertEqual(try pull.receive().first?.count, 1024, "at the cap passes")
            try push.send([[UInt8](repeating: 2, count: 1025)])  // libzmq closes the connection
            try pull.set(.receiveTimeout(milliseconds: 500))
            XCTAssertThrowsError(try pull.receive(), "secured: \(secured)") { XCTAssertEqual($0 as? BusError, .wouldBlock) }
        }
    }

    // MARK: pure parts

    func testRefusalLogWritesOneLinePerKeyAndAtMostBurstPerWindow() throws {
        var log = RefusalLog(burst: 2, window: .seconds(60), capacity: 100)
        let t0 = ContinuousClock.now
        let keys = try (0..<5).map { _ in try CurveKeyPair.generate().publicKey }
        XCTAssertNotNil(log.record(key: keys[0], address: "10.0.0.1", reason: "r", at: t0))
        XCTAssertNil(log.record(key: keys[0], address: "10.0.0.1", reason: "r", at: t0 + .seconds(120)), "once per peer")
        XCTAssertNotNil(log.record(key: keys[1], address: "10.0.0.2", reason: "r", at: t0 + .seconds(1)))
        XCTAssertNil(log.record(key: keys[2], address: "10.0.0.3", reason: "r", at: t0 + .seconds(2)), "burst used up")
        XCTAssertNil(log.record(key: keys[3], address: "10.0.0.4", reason: "r", at: t0 + .seconds(3)))
        let next = try XCTUnwrap(log.record(key: keys[4], address: "10.0.0.5", reason: "r", at: t0 + .seconds(61)))
        XCTAssertTrue(next.contains("2 more refused peers not logged"), next)
        XCTAssertEqual(log.distinctKeys, 5)
    }

    // MARK: helpers

    private func tempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("curve-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    private func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    /// PUB drops until the subscription has arrived: publish until the subscriber hears it.
    private func publishUntilHeard(_ pub: Socket, _ sub: Socket, _ message: [String]) throws -> [String] {
        try sub.set(.receiveTimeout(milliseconds: 20))
        for _ in 0..<250 {
            try pub.send(message.map(bytes))
            if let got = try? sub.receive() { return got.map(text) }
        }
        return []
    }

    private func waitFor<T>(timeout: Double = 5, _ check: () -> T?) throws -> T {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if let v = check() { return v }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return try XCTUnwrap(check(), "condition not met within \(timeout) s")
    }

    /// Writes bytes to 127.0.0.1:port from a plain TCP socket, then closes it.
    private func rawTCP(port: Int, _ payload: [UInt8]) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 } }
        XCTAssertTrue(ok)
        _ = payload.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        Thread.sleep(forTimeInterval: 0.1)
    }
}
