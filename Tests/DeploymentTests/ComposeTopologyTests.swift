import Bus
import Data
import Engine
import Foundation
import Messages
import Reports
import XCTest

/// compose/docker-compose.yml started without Docker (LocalCompose): the same executables, commands
/// and FI_* environment, on loopback ports and temp folders.
final class ComposeTopologyTests: XCTestCase {
    static var repoRoot: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }
    static var composeURL: URL { repoRoot.appendingPathComponent("compose/docker-compose.yml") }

    /// Where `swift build --build-tests` put the executables: next to the test bundle.
    static func binDir() throws -> URL {
        for candidate in [Bundle(for: ComposeTopologyTests.self).bundleURL, Bundle.main.bundleURL, URL(fileURLWithPath: CommandLine.arguments[0])] {
            let dir = candidate.deletingLastPathComponent()
            if FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("cluster-manager").path) { return dir }
        }
        let fallback = repoRoot.appendingPathComponent(".build/debug")
        guard FileManager.default.isExecutableFile(atPath: fallback.appendingPathComponent("cluster-manager").path) else {
            XCTFail("the executables are not built in \(fallback.path): run swift build --build-tests")
            throw CocoaError(.fileNoSuchFile)
        }
        return fallback
    }

    /// A temp root with the image folder (/opt/fi: examples/ and the models volume), a tiny model in the
    /// models volume, tiny two-domain partitions in the data volume, and a tiny experiment file.
    func makeStack(devices: Int) throws -> LocalCompose {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("deploy-\(UUID().uuidString.prefix(8))")
        let fm = FileManager.default
        let experiment = root.appendingPathComponent("experiment.yaml")
        try fm.createDirectory(at: root, withIntermediateDirectories: true)
        try """
        name: compose-test
        seed: 5
        model: models/base
        data: {devices: \(devices), scheme: domain}
        lora: {rank: 2, alpha: 4, targets: [c_attn]}
        federation: {rounds: 3, local_steps: 8, batch: 2, seq: 32, lr: 0.02, quorum: \(devices), deadline_s: 20, eval_tokens: 512}
        scenario: {devices: {count: \(devices)}}
        """.write(to: experiment, atomically: true, encoding: .utf8)
        let file = try ComposeFile.load(Self.composeURL, variables: ["FI_EXPERIMENT": experiment.path, "FI_HEARTBEAT_MS": "200"])
        let imageRoot = root.appendingPathComponent("image/opt/fi")
        let stack = LocalCompose(file: file, binDir: try Self.binDir(), root: root, image: ["/opt/fi": imageRoot])
        // Named volumes start as a copy of the image's folder; here the image's models/ is the volume itself.
        try fm.createDirectory(at: imageRoot, withIntermediateDirectories: true)
        try fm.createDirectory(at: stack.volumeDirectory("models"), withIntermediateDirectories: true)
        try fm.createSymbolicLink(at: imageRoot.appendingPathComponent("models"), withDestinationURL: stack.volumeDirectory("models"))
        try fm.createSymbolicLink(at: imageRoot.appendingPathComponent("examples"), withDestinationURL: Self.repoRoot.appendingPathComponent("examples"))
        try LanguageModel(config: .tiny, seed: 7).save(directory: stack.volumeDirectory("models").appendingPathComponent("base"))
        try Self.tinyPartitions(into: stack.volumeDirectory("data"), devices: devices)
        return stack
    }

    /// Two domains with very different byte statistics, so a few LoRA steps lower the loss.
    static func tinyPartitions(into dir: URL, devices: Int) throws {
        func docs(_ domain: String, _ make: (Int) -> String) -> DomainDocuments {
            DomainDocuments(name: domain, documents: (0..<24).map { Document(domain: domain, source: "\(domain)-\($0)", text: make($0)) })
        }
        let corpus = Corpus(version: "test", domains: [docs("vowels") { String(repeating: "aeiou eia oua \($0 % 3) ", count: 30) },
                                                       docs("digits") { String(repeating: "0123 4567 89 \($0 % 5)- ", count: 30) }])
        try DataPreparation.prepare(corpus: corpus, spec: PartitionSpec(devices: devices, scheme: .domain, seed: 1, sizeSigma: 0),
                                    chunkBytes: 256, into: dir)
    }

    func testComposeTopologyRunsFederationRoundsAndTapSeesTelemetry() throws {
        let stack = try makeStack(devices: 2)
        defer { stack.down(); try? FileManager.default.removeItem(at: stack.root) }
        let start = Date()
        // CURVE is on (the keys service made the pairs): an intruder with its own key, who knows the server's
        // public key, sends 1,000 messages to every bound socket and listens on every PUB.
        var intruder: Intruder?
        // As in a deployment, the tap is listening before the federation starts (this one finishes in seconds).
        try stack.up(scale: ["device-worker": 2], first: ["tap"], timeout: 30) { r in
            if r.service == "tap" { try Self.waitUntilTapHears(stack, tap: r, timeout: 20) }
            // The manager and the aggregator exit or get busy once the workers run: attack them now.
            if r.service == "device-worker", r.index == 0 {
                intruder = try Intruder(stack)
                try intruder?.attack(["cluster-manager": [5550: .dealer, 5551: .sub], "cloud-aggregator": [5560: .dealer, 5561: .sub]])
            }
        }
        try intruder?.attack(["telemetry": [5580: .pub, 5581: .sub], "inference-router": [5570: .dealer],
                              "stage-edge": [5590: .dealer], "stage-cloud": [5590: .dealer]])

        // Every long-running replica passes its compose health check (--health plus the bound port). The
        // aggregator passed it before the workers started (their depends_on) and may be done already.
        for r in stack.replicas where !["keys", "data", "cloud-aggregator"].contains(r.service) {
            XCTAssertNoThrow(try stack.waitHealthy(r, timeout: 20), "\(r.service)-\(r.index)")
        }
        // The data service kept the prepared partitions (--if-missing).
        let data = try XCTUnwrap(stack.replicas.first { $0.service == "data" })
        XCTAssertEqual(data.process.isRunning ? nil : data.process.terminationStatus, 0)
        XCTAssertTrue(try String(contentsOf: data.log.appendingPathExtension("out"), encoding: .utf8).contains("left as it is"))

        // Split inference through the compose router and stage nodes, as `fi infer` from the host.
        let router = "tcp://127.0.0.1:\(try stack.hostPort("inference-router", 5570))"
        var infer: (Int32, String) = (-1, "")
        let inferEnd = Date().addingTimeInterval(20)
        repeat {
            infer = try LocalCompose.run([stack.binDir.appendingPathComponent("fi").path, "infer", "--router", router, "--device", "host",
                                          "--prompt", "aei", "--max-tokens", "3", "--timeout", "10"] + Self.hostKeys(stack), timeout: 15)
            if infer.0 != 0 { Thread.sleep(forTimeInterval: 0.3) }
        } while infer.0 != 0 && Date() < inferEnd
        XCTAssertEqual(infer.0, 0, infer.1)
        XCTAssertTrue(infer.1.contains("3 tokens"), infer.1)

        // The cloud aggregator exits 0 after the last round.
        let aggregator = try XCTUnwrap(stack.replicas.first { $0.service == "cloud-aggregator" })
        let end = Date().addingTimeInterval(60)
        while aggregator.process.isRunning && Date() < end { Thread.sleep(forTimeInterval: 0.1) }
        XCTAssertFalse(aggregator.process.isRunning, "the federation did not finish: \(stack.tail(aggregator))")
        XCTAssertEqual(aggregator.process.isRunning ? nil : aggregator.process.terminationStatus, 0, stack.tail(aggregator))

        let metrics = stack.volumeDirectory("runs").appendingPathComponent("cloud/metrics.jsonl")
        let records = try String(contentsOf: metrics, encoding: .utf8).split(separator: "\n")
            .map { try JSONDecoder().decode(MetricRecord.self, from: Foundation.Data($0.utf8)) }
        XCTAssertEqual(records.map(\.round), [0, 1, 2, 3])
        XCTAssertEqual(records.last?.participants, 2, "both scaled workers trained")
        XCTAssertEqual(Set(records[0].valLoss.keys), ["vowels", "digits"], "each worker got its own partition")
        let mean = { (l: [String: Double]) in l.values.reduce(0, +) / Double(max(1, l.count)) }
        XCTAssertLessThan(mean(records[3].valLoss), mean(records[0].valLoss))

        // The tap (fi tap --json) saw telemetry from the manager, the aggregator and both workers.
        Thread.sleep(forTimeInterval: 0.5)
        let tap = try XCTUnwrap(stack.replicas.first { $0.service == "tap" })
        let lines = try String(contentsOf: tap.log.appendingPathExtension("out"), encoding: .utf8).split(separator: "\n")
        let senders = Set(lines.compactMap { line -> String? in
            guard let o = try? JSONSerialization.jsonObject(with: Foundation.Data(line.utf8)) as? [String: Any] else { return nil }
            return (o["sender"] as? String) ?? ((o["envelope"] as? [String: Any])?["sender"] as? String)
        })
        // Every service publishes on each heartbeat (the manager its live-node count, the aggregator its completed
        // round), so the tap sees all of them even though PUB drops what it sends before its connection is up.
        // Scaled workers publish under the id the manager assigned them.
        XCTAssertTrue(senders.isSuperset(of: ["cloud-0", "cluster-manager", "device-0", "device-1"]), "senders seen: \(senders); aggregator: \(stack.tail(aggregator))")
        XCTAssertFalse(senders.contains("device"), "a worker kept its pre-assignment name; senders seen: \(senders)")
        XCTAssertTrue(senders.contains("edge-stage-0") && senders.contains("cloud-stage-0"), "senders seen: \(senders)")

        // The intruder got nothing: no reply, no broadcast, no telemetry to the tap, no partition (both workers
        // trained, above); every service it knocked on refused it at the handshake and logged it once.
        let attacker = try XCTUnwrap(intruder)
        let received = attacker.received()
        print("intruder: \(attacker.sent) messages sent to 6 services, \(received) received back")
        XCTAssertEqual(attacker.sent, 6 * 1000)
        XCTAssertEqual(received, 0)
        XCTAssertFalse(senders.contains("intruder"), "intruder telemetry reached the tap")
        for service in ["telemetry", "cluster-manager", "cloud-aggregator", "inference-router", "stage-edge", "stage-cloud"] {
            let r = try XCTUnwrap(stack.replicas.first { $0.service == service })
            let refusals = try String(contentsOf: r.log.appendingPathExtension("err"), encoding: .utf8).split(separator: "\n")
                .filter { $0.contains("CURVE: refused") }
            XCTAssertEqual(refusals.count, 1, "\(service) logs the intruder once: \(refusals)")
            XCTAssertTrue(refusals.first?.contains(attacker.key.publicKey.z85) ?? false, "\(service): \(refusals)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 90)
    }

    /// `fi infer` and the probe from the host use the `host` pair the keys service made.
    static func hostKeys(_ stack: LocalCompose) -> [String] {
        let keys = stack.volumeDirectory("keys")
        return ["--curve-secret", keys.appendingPathComponent("host.secret").path, "--curve-server", keys.appendingPathComponent("server.key").path]
    }

    /// A process with its own CURVE key (not in the allow-list) that knows the server's public key.
    final class Intruder {
        let key = try! CurveKeyPair.generate()
        let context = BusContext()
        let stack: LocalCompose
        private(set) var sockets: [Socket] = []
        private(set) var sent = 0

        init(_ stack: LocalCompose) throws {
            self.stack = stack
            let server = try CurveKeyFile.readPublic(stack.volumeDirectory("keys").appendingPathComponent("server.key").path)
            try context.secure(CurveSecurity(identity: key, serverKey: server))
        }

        /// DEALERs send 1,000 registrations, PUBs 1,000 telemetry events; SUBs listen to everything.
        func attack(_ targets: [String: [Int: SocketType]]) throws {
            for (service, ports) in targets {
                for (port, type) in ports {
                    let socket = try Socket(type, context: context, linger: 0)
                    if type == .sub { try socket.subscribe("") }
                    try socket.connect("tcp://127.0.0.1:\(try stack.hostPort(service, port))")
                    sockets.append(socket)
                    guard type != .sub else { continue }
                    for i in 0..<1000 {
                        let body: Body = type == .pub ? .telemetry(.event(Event(severity: .info, kind: "intruder")))
                            : .register(Register(role: .device, nodeId: "device-0"))
                        try? socket.send(Envelope(sender: "intruder", seq: UInt64(i + 1), body: body),
                                         prefix: type == .pub ? [Array("telemetry/event/intruder".utf8)] : [], dontWait: true)
                        sent += 1
                    }
                }
            }
        }

        /// Messages that reached the intruder on any socket.
        func received() -> Int {
            sockets.filter { $0.type != .pub }.reduce(0) { n, s in
                var k = n
                while (try? s.receive(dontWait: true)) != nil { k += 1 }
                return k
            }
        }
    }

    /// Publishes probe events to the proxy until the tap prints one: its subscription has reached the proxy.
    static func waitUntilTapHears(_ stack: LocalCompose, tap: LocalCompose.Replica, timeout: Double) throws {
        let context = BusContext()
        let keys = stack.volumeDirectory("keys")
        try context.secure(CurveSecurity.load(secret: keys.appendingPathComponent("host.secret").path,
                                              server: keys.appendingPathComponent("server.key").path))
        let probe = try TelemetryPublisher(connect: "tcp://127.0.0.1:\(try stack.hostPort("telemetry", 5580))", sender: "tap-probe",
                                           context: context)
        defer { probe.close() }
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            try probe.publish(.event(Event(severity: .debug, kind: "probe", text: "is the tap listening?")))
            Thread.sleep(forTimeInterval: 0.1)
            if let out = try? String(contentsOf: tap.log.appendingPathExtension("out"), encoding: .utf8), out.contains("tap-probe") { return }
        }
        XCTFail("the tap printed no probe within \(timeout) s: \(stack.tail(tap))")
    }

    /// A bad value in a service's compose environment stops the executable at once with a message naming the variable.
    func testBadComposeEnvironmentValuesFailNamingTheVariable() throws {
        let stack = try makeStack(devices: 2)
        defer { stack.down(); try? FileManager.default.removeItem(at: stack.root) }
        let cases: [(service: String, variable: String, value: String)] = [
            ("cluster-manager", "FI_ROUTER", "tcp://host:notaport"),
            ("cluster-manager", "FI_HEARTBEAT_MS", "abc"),
            ("device-worker", "FI_HEARTBEAT_MS", "abc"),
            ("cloud-aggregator", "FI_MANAGER", "tcp://cluster-manager:99999"),
            ("inference-router", "FI_LIVENESS", "four"),
            ("stage-edge", "FI_BIND", "tcp://0.0.0.0:port"),
            ("telemetry", "FI_XSUB", "udp://0.0.0.0:5580"),
            ("cluster-manager", "FI_CURVE_SECRET", "/nonexistent/server.secret"),
            ("device-worker", "FI_CURVE_SECRET", ""),  // FI_CURVE_SERVER alone
        ]
        for c in cases {
            let service = try XCTUnwrap(stack.file.services[c.service])
            let r = try stack.start(service, index: stack.replicas.count, extraEnvironment: [c.variable: c.value])
            let end = Date().addingTimeInterval(15)
            while r.process.isRunning && Date() < end { Thread.sleep(forTimeInterval: 0.05) }
            XCTAssertFalse(r.process.isRunning, "\(c.service) kept running with \(c.variable)=\(c.value)")
            if r.process.isRunning { continue }
            XCTAssertNotEqual(r.process.terminationStatus, 0, "\(c.service) with \(c.variable)=\(c.value)")
            let err = try String(contentsOf: r.log.appendingPathExtension("err"), encoding: .utf8)
            XCTAssertTrue(err.contains(c.variable), "\(c.service) stderr does not name \(c.variable): \(err)")
        }
    }

    /// Unknown FI_* variables are ignored by the executables, so a misspelt one would pass silently: every
    /// variable in the compose file must be a flag in its command's --help, and so must a health check's --health.
    func testEveryComposeVariableIsAFlagOfItsExecutable() throws {
        let file = try ComposeFile.load(Self.composeURL, variables: [:])
        let bin = try Self.binDir()
        for s in file.services.values.sorted(by: { $0.name < $1.name }) {
            let words = s.command.prefix { !$0.hasPrefix("-") }
            let (status, help) = try LocalCompose.run([bin.appendingPathComponent(words[0]).path] + words.dropFirst() + ["--help"], timeout: 10)
            XCTAssertEqual(status, 0, s.name)
            for key in s.environment.keys where key.hasPrefix("FI_") {
                let flag = "--" + key.dropFirst(3).lowercased().replacingOccurrences(of: "_", with: "-")
                XCTAssertTrue(help.contains(flag + " ") || help.contains(flag + "\n"), "\(s.name): \(key) is no flag (\(flag)) of \(words.joined(separator: " "))")
            }
            for arg in s.command where arg.hasPrefix("--") {
                XCTAssertTrue(help.contains(arg), "\(s.name): \(arg) is no flag of \(words.joined(separator: " "))")
            }
            if let test = s.healthcheck?.joined(separator: " "), test.contains("--health") {
                XCTAssertTrue(help.contains("--health"), "\(s.name): its health check uses --health, which \(words[0]) lacks")
            }
        }
    }

    func testComposeFileParsesWithScaledWorkersAndDependencyOrder() throws {
        let file = try ComposeFile.load(Self.composeURL, variables: [:])
        let order = try file.startOrder().map(\.name)
        XCTAssertEqual(Set(order), ["keys", "telemetry", "tap", "data", "cluster-manager", "cloud-aggregator", "device-worker",
                                    "inference-router", "stage-edge", "stage-cloud"])
        for (a, b) in [("keys", "telemetry"), ("telemetry", "cluster-manager"), ("data", "device-worker"), ("cluster-manager", "cloud-aggregator"),
                       ("cloud-aggregator", "device-worker"), ("inference-router", "stage-edge")] {
            XCTAssertLessThan(try XCTUnwrap(order.firstIndex(of: a)), try XCTUnwrap(order.firstIndex(of: b)), "\(a) before \(b)")
        }
        XCTAssertEqual(try file.startOrder(profiles: ["hierarchical"]).count, order.count + 2)
        // Scaled workers carry no per-replica identity: the manager assigns id and partition.
        let worker = try XCTUnwrap(file.services["device-worker"])
        XCTAssertNil(worker.environment["FI_ID"])
        XCTAssertEqual(worker.environment["FI_MANAGER"], "tcp://cluster-manager:5550")
        XCTAssertEqual(file.services["cluster-manager"]?.environment["FI_HEARTBEAT_MS"], "1000")
        XCTAssertEqual(ComposeFile.interpolate("a ${X:-d} ${Y:-d} $$Z ${W-e}", ["X": "1", "Y": ""]), "a 1 d $Z e")
    }
}
