import Aggregator
import Bus
import ClusterManager
import Experiments
import DeviceWorker
import Engine
import Foundation
import InferenceRouter
import Messages
import Stage
import XCTest

/// Every service on its own CURVE-secured context (as in separate processes) over tcp loopback, and an intruder
/// whose key is not allow-listed. It knows the server's public key (public keys are not secret).
final class TransportSecurityTests: XCTestCase {
    final class Lines: @unchecked Sendable {  // safe: behind `lock`
        private let lock = NSLock()
        private var stored: [String] = []
        func add(_ s: String) { lock.lock(); stored.append(s); lock.unlock() }
        var all: [String] { lock.lock(); defer { lock.unlock() }; return stored }
    }

    func testUnknownKeyGetsNothingFromAnyServiceAndAnUnlistedDeviceGetsNoAssignment() async throws {
        let s = try Kit.setup("curve", devices: 2, rounds: 1, deadline: 30)
        defer { try? FileManager.default.removeItem(at: s.dir) }
        let keys = try CurveDeployment.create(in: s.dir.appendingPathComponent("keys"), clients: ["device"])
        let intruder = try CurveKeyPair.generate()
        var logs: [String: Lines] = [:]
        func service(_ name: String) throws -> BusContext {
            let c = BusContext(), lines = Lines()
            logs[name] = lines
            try c.secure(try keys.security(as: CurveDeployment.serverName, binds: true), log: { lines.add($0) })
            return c
        }
        func client(_ identity: CurveKeyPair) throws -> BusContext {
            let c = BusContext()
            try c.secure(CurveSecurity(identity: identity, serverKey: try CurveKeyFile.readPublic(keys.publicFile(CurveDeployment.serverName))))
            return c
        }
        let tcp = "tcp://127.0.0.1:0"
        let proxyContext = try service("proxy"), managerContext = try service("manager"), aggregatorContext = try service("aggregator")
        let routerContext = try service("router"), stageContext = try service("stage")

        let proxy = try TelemetryProxy(xsub: tcp, xpub: tcp, context: proxyContext)
        proxy.start()
        let manager = try ClusterManagerService(.init(router: tcp, pub: tcp, telemetry: proxy.xsubEndpoint, heartbeatMs: 200, liveness: 50,
                                                      partitions: 2), context: managerContext)
        var o = AggregatorService.Options(manager: manager.routerEndpoint, router: tcp, pub: tcp, experiment: s.experiment)
        o.heartbeatMs = 200; o.quiet = true; o.evaluate = false; o.telemetry = proxy.xsubEndpoint
        let aggregator = try AggregatorService(o, initial: try s.experiment.initialAdapter(),
                                               context: aggregatorContext)
        let router = try InferenceRouter(bind: tcp, config: .tiny, context: routerContext)
        let stage = try StageServer(model: LanguageModel(config: .tiny, seed: 3),
                                    options: StageNodeOptions(id: "stage-0", role: .edge, bind: tcp, router: router.endpoint,
                                                              heartbeatInterval: .milliseconds(200)), context: stageContext)
        manager.start(); aggregator.start()
        defer { stage.stop(); router.stop(); aggregator.stop(); manager.stop(); proxy.stop() }

        // Two echo device workers: one with an allow-listed key, one with the intruder's.
        func device(_ context: BusContext) throws -> DeviceWorkerService {
            var d = DeviceWorkerService.Options(manager: manager.routerEndpoint, model: s.model, data: s.data, experiment: s.experiment)
            d.echo = true; d.quiet = true; d.heartbeatMs = 200; d.telemetry = proxy.xsubEndpoint
            return try DeviceWorkerService(d, context: context)
        }
        let member = try device(try client(try CurveKeyPair(secret: CurveKeyFile.readSecret(keys.secretFile("device")))))
        let outsider = try device(try client(intruder))
        member.start(); outsider.start()
        defer { member.stop(); outsider.stop() }

        // The intruder sends 1,000 messages to every socket that sends or receives, and listens on every PUB.
        let attacker = try client(intruder)
        func dealer(_ endpoint: String, _ body: Body) throws -> Socket {
            let d = try Socket(.dealer, context: attacker, linger: 0)
            try d.set(.routingId(Array("device-0".utf8)))  // an id a real device holds
            try d.connect(endpoint)
            for i in 0..<1000 { try? d.send(Envelope(sender: "device-0", seq: UInt64(i + 1), body: body), dontWait: true) }
            return d
        }
        func listener(_ endpoint: String) throws -> Socket {
            let sub = try Socket(.sub, context: attacker, linger: 0)
            try sub.subscribe("")
            try sub.connect(endpoint)
            return sub
        }
        let telemetry = Envelope(sender: "intruder", seq: 1, body: .telemetry(.event(Event(severity: .info, kind: "intruder"))))
        let publisher = try Socket(.pub, context: attacker, linger: 0)
        try publisher.connect(proxy.xsubEndpoint)
        let upload = UpdateUpload(round: 1, baseVersion: 0, samples: 1_000_000, trainLoss: 0,
                                  delta: [Messages.Tensor(name: "synthetic", shape: [4], floats: [1e6, 1e6, 1e6, 1e6])])
        let attackers: [(String, Socket)] = [
            ("manager ROUTER", try dealer(manager.routerEndpoint, .register(Register(role: .device, nodeId: "device-0")))),
            ("manager PUB", try listener(manager.pubEndpoint)),
            ("aggregator ROUTER", try dealer(aggregator.routerEndpoint, .update(upload))),
            ("aggregator PUB", try listener(aggregator.pubEndpoint)),
            ("inference-router ROUTER", try dealer(router.endpoint, .inferRequest(InferenceRequest(requestId: "x", deviceId: "host", promptText: "a")))),
            ("stage ROUTER", try dealer(stage.endpoint, .register(Register(role: .edgeServer, nodeId: "stage-9", endpoint: "tcp://127.0.0.1:1")))),
            ("proxy XSUB", publisher),
            ("proxy XPUB", try listener(proxy.xpubEndpoint)),
        ]
        for _ in 0..<1000 { try publisher.send(telemetry, prefix: [Array("telemetry/event/intruder".utf8)], dontWait: true) }
        // A tap with an allow-listed key, to see what reaches subscribers.
        let tap = try Socket(.sub, context: try client(try CurveKeyPair(secret: CurveKeyFile.readSecret(keys.secretFile("device")))))
        try tap.subscribe("")
        try tap.connect(proxy.xpubEndpoint)

        // Refusals per service context: the intruder's sockets plus the outsider device (manager, proxy).
        let expected = ["proxy": 3, "manager": 3, "aggregator": 2, "router": 1, "stage": 1]
        let contexts = ["proxy": proxyContext, "manager": managerContext, "aggregator": aggregatorContext, "router": routerContext,
                        "stage": stageContext]
        let end = Date().addingTimeInterval(10)
        while Date() < end, !expected.allSatisfy({ contexts[$0.key]!.curveStats.refused >= $0.value }) { try await Task.sleep(for: .milliseconds(50)) }
        // The member device is assigned and serves: the services were live and admitting the whole time.
        while Date() < end, await member.assignedId.isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        try await Task.sleep(for: .milliseconds(600))  // time for anything that got through to show

        for (name, count) in expected {
            let stats = contexts[name]!.curveStats
            print("\(name): admitted \(stats.admitted), refused \(stats.refused) (\(stats.refusedKeys) key), logged \(stats.logged)")
            XCTAssertGreaterThanOrEqual(stats.refused, count, name)
            XCTAssertEqual(stats.refusedKeys, 1, "\(name): only the intruder's key is refused")
            XCTAssertEqual(logs[name]!.all.count, 1, "\(name) logs the refused peer once: \(logs[name]!.all)")
            XCTAssertTrue(logs[name]!.all.first?.contains(intruder.publicKey.z85) ?? false, name)
        }
        for (name, socket) in attackers where socket.type != .pub {
            XCTAssertNil(try? socket.receive(dontWait: true), "the intruder heard from the \(name)")
        }
        let memberId = await member.assignedId
        XCTAssertFalse(memberId.isEmpty, "the allow-listed device got an assignment")
        let outsiderId = await outsider.assignedId
        XCTAssertEqual(outsiderId, "", "the unlisted device got an assignment")
        let devices = try await manager.snapshot().members.filter { $0.role == .device }.map(\.nodeId)
        XCTAssertEqual(devices, [memberId], "only the allow-listed device is registered")
        let status = try await aggregator.status()
        XCTAssertTrue(status.rejections.isEmpty, "the aggregator saw uploads it had to reject: \(status.rejections)")
        let nodes = try await router.nodeIds()
        XCTAssertEqual(nodes, ["stage-0"], "no node registered through the intruder")
        var heard: [String] = []
        while let frames = try? tap.receive(dontWait: true) { heard.append(String(decoding: frames[0], as: UTF8.self)) }
        XCTAssertFalse(heard.contains { $0.contains("intruder") }, "intruder telemetry reached a subscriber")
        XCTAssertEqual(proxy.stats.dropped, 0)
    }

    /// `fi keys generate` writes the pair; every service refuses to start on a bad key file and names the file.
    func testKeysCommandAndBadKeyFilesAtStartup() throws {
        let dir = Kit.tempDir("keys")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (status, err) = try Kit.runExecutable("fi", ["keys", "generate", "--name", "server", "--name", "dev-1", "--out", dir.path])
        XCTAssertEqual(status, 0, err)
        let secret = dir.appendingPathComponent("dev-1.secret").path
        XCTAssertEqual((try FileManager.default.attributesOfItem(atPath: secret)[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        XCTAssertEqual(try CurveKeyPair(secret: CurveKeyFile.readSecret(secret)).publicKey,
                       try CurveKeyFile.readPublic(dir.appendingPathComponent("dev-1.key").path))
        let again = try Kit.runExecutable("fi", ["keys", "generate", "--name", "server", "--out", dir.path])
        XCTAssertNotEqual(again.0, 0, "an existing secret was overwritten")
        XCTAssertTrue(again.1.contains("server.secret exists"), again.1)
        XCTAssertEqual(try Kit.runExecutable("fi", ["keys", "generate", "--name", "server", "--out", dir.path, "--if-missing"]).0, 0)

        let open = dir.appendingPathComponent("open.secret").path
        try FileManager.default.copyItem(atPath: secret, toPath: open)
        chmod(open, 0o644)
        let broken = dir.appendingPathComponent("broken.key").path
        try "not a key\n".write(toFile: broken, atomically: true, encoding: .utf8)
        let missing = dir.appendingPathComponent("missing.secret").path
        let server = dir.appendingPathComponent("server.key").path
        let cases: [(String, [String], [String: String], String)] = [
            ("cluster-manager", ["--health", "--curve-secret", missing], [:], missing),
            ("aggregator", ["--health", "--synthetic-adapter", "4"], ["FI_CURVE_SECRET": open], "chmod 600 \(open)"),
            ("device-worker", ["--health", "--echo", "--curve-secret", secret], ["FI_CURVE_SERVER": broken], broken),
            ("stage-node", ["--health", "--id", "s", "--role", "edge", "--bind", "tcp://127.0.0.1:1", "--model", "m"],
             ["FI_CURVE_SECRET": secret, "FI_CURVE_ALLOW": server], "\(server) is not a folder"),
            ("inference-router", ["--health", "--model", "m", "--curve-allow", dir.path], [:], "need --curve-secret"),
        ]
        for (exe, args, env, expected) in cases {
            let (status, err) = try Kit.runExecutable(exe, args, env: env)
            XCTAssertNotEqual(status, 0, "\(exe) started with a bad key")
            XCTAssertTrue(err.contains(expected), "\(exe): \(err)")
        }
    }
}
