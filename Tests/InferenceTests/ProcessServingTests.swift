import Bus
import Engine
import Foundation
import InferenceRouter
import Messages
import Stage
import Testbed
import XCTest

/// The executables as separate processes over tcp loopback: a cluster manager, the inference router and stage nodes.
final class ProcessServingTests: XCTestCase {
    /// A temp folder with the tiny model, free ports, and the processes started so far (stopped by PID at the end).
    final class Stack {
        let dir: URL
        let bin: URL
        let model: URL
        var processes: [String: ServiceProcess] = [:]

        init() throws {
            guard let bin = ServiceProcess.executablesNextTo(needing: "stage-node") else {
                // A failure, not a skip: a skip would hide a build that lost an executable.
                XCTFail("the executables are not built: run swift build --build-tests")
                throw CocoaError(.fileNoSuchFile)
            }
            self.bin = bin
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("serving-\(UUID().uuidString.prefix(8))")
            model = dir.appendingPathComponent("model")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try LanguageModel(config: Deployment.config, seed: Deployment.seed).save(directory: model)
        }

        func endpoint() throws -> String { "tcp://127.0.0.1:\(try ServiceProcess.freePort())" }

        @discardableResult
        func start(_ name: String, _ executable: String, _ args: [String]) throws -> ServiceProcess {
            let p = try ServiceProcess(name: name, executable: bin.appendingPathComponent(executable), arguments: args, logDirectory: dir)
            processes[name] = p
            return p
        }

        func stageNode(_ id: String, role: String, router: String, extra: [String] = []) throws {
            // A wildcard port: the node registers the endpoint it got, so no port can be taken by someone else first.
            try start(id, "stage-node", ["--id", id, "--role", role, "--bind", "tcp://127.0.0.1:*", "--router", router, "--model", model.path,
                                         "--heartbeat-ms", "100"] + extra)
        }

        func logs() -> String { processes.values.map { "--- \($0.name)\n\($0.output)" }.joined(separator: "\n") }

        func down() {
            for p in processes.values { p.stop() }
            try? FileManager.default.removeItem(at: dir)
        }
    }

    static let prompt: [UInt32] = Array("serve me ".utf8).map { UInt32($0) }

    static func adapter(seed: UInt64) throws -> LoRAAdapter {
        let m = try LanguageModel(config: Deployment.config, seed: Deployment.seed)
        try m.attachLoRA(LoRAConfig(rank: 2, alpha: 8, targets: [.attnQKV, .attnProj, .mlpFC, .mlpProj]), seed: seed)
        var a = try m.adapter()
        var rng = SplitMix64(seed: seed)
        try a.load(flat: a.flatten().map { _ in rng.nextGaussian() * 0.3 })
        return a
    }

    /// Single-node generation with `adapter` (nil: the base model).
    static func reference(_ adapter: LoRAAdapter?, tokens: Int, sampling: Engine.Sampling = .greedy, seed: UInt64 = 0) throws -> [UInt32] {
        let m = try LanguageModel(config: Deployment.config, seed: Deployment.seed)
        if let adapter { try m.setAdapter(adapter) }
        return try m.generate(prompt: prompt.map { Int32($0) }, maxNewTokens: tokens, sampling: sampling, seed: seed).map { UInt32($0) }
    }

    static func generate(_ client: InferenceClient, _ req: InferenceRequest) async -> Result<[TokenResult], Error> {
        do {
            var out: [TokenResult] = []
            for try await t in client.generate(req, timeout: .seconds(10)) { out.append(t) }
            return .success(out)
        } catch { return .failure(error) }
    }

    func testDevicesOfTwoClustersGetTheirClusterAdapterThroughSeparateProcesses() async throws {
        let stack = try Stack()
        defer { stack.down() }
        let (managerRouter, managerPub, router) = (try stack.endpoint(), try stack.endpoint(), try stack.endpoint())
        try stack.start("cluster-manager", "cluster-manager", ["--router", managerRouter, "--pub", managerPub, "--devices", "2",
                                                               "--heartbeat-ms", "100", "--liveness", "10"])
        try stack.start("inference-router", "inference-router", ["--bind", router, "--manager", managerRouter, "--manager-pub", managerPub,
                                                                 "--model", stack.model.path, "--heartbeat-ms", "100"])
        // Two stage nodes (a plan may span both) watching one adapter folder that is still empty.
        let adapters = stack.dir.appendingPathComponent("clusters")
        try FileManager.default.createDirectory(at: adapters, withIntermediateDirectories: true)
        try stack.stageNode("e0", role: "edge", router: router, extra: ["--flops", "1e8", "--adapters", adapters.path])
        try stack.stageNode("c0", role: "cloud", router: router, extra: ["--flops", "1e9", "--adapters", adapters.path])

        // Two devices and an aggregator register with the manager; the aggregator puts the devices in clusters 1 and 2.
        let context = BusContext()
        var members: [RequestClient] = []
        defer { for m in members { m.close() } }
        let devices = ["device-a", "device-b"]
        for (id, role) in [(devices[0], Role.device), (devices[1], .device), ("aggregator", .cloudAggregator)] {
            let c = try RequestClient(connect: managerRouter, sender: id, context: context)
            members.append(c)
            guard case .assignment(let a) = try await c.request(.register(Register(role: role, nodeId: id, endpoint: "tcp://127.0.0.1:1")),
                                                                timeout: .seconds(10)).body else { return XCTFail("no assignment") }
            XCTAssertEqual(a.nodeId, id)
        }
        let beating = members
        let heartbeats = Task {
            while !Task.isCancelled {
                for m in beating { try? await m.send(.heartbeat(Heartbeat())) }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        defer { heartbeats.cancel() }
        try await members[2].send(.clusterMap(ClusterMap(mapSeq: 1, members: [ClusterMember(nodeId: devices[0], role: .device, cluster: 1),
                                                                             ClusterMember(nodeId: devices[1], role: .device, cluster: 2)])))
        // The aggregator's adapters land in the shared folder after the nodes started (they pick them up live).
        let a1 = try Self.adapter(seed: 1), a2 = try Self.adapter(seed: 2)
        try a1.save(directory: adapters.appendingPathComponent("cluster-1"))
        try a2.save(directory: adapters.appendingPathComponent("cluster-2"))
        let want = [try Self.reference(a1, tokens: 6), try Self.reference(a2, tokens: 6)]
        XCTAssertNotEqual(want[0], want[1])
        XCTAssertNotEqual(want[0], try Self.reference(nil, tokens: 6))

        let client = try InferenceClient(router: router, id: "client", context: context)
        defer { client.close() }
        var got: [[UInt32]] = [[], []]
        var plans: [String] = []
        var lastError = ""
        let deadline = Date().addingTimeInterval(20)
        // The map and the adapters travel asynchronously: ask until both devices are served with their cluster.
        while got != want && Date() < deadline {
            for (i, device) in devices.enumerated() {
                let r = await Self.generate(client, InferenceRequest(requestId: "r-\(i)-\(UUID().uuidString.prefix(4))", deviceId: device,
                                                                     prompt: Self.prompt, maxTokens: 6))
                switch r {
                case .success(let tokens): got[i] = tokens.map(\.token); plans.append(tokens.first?.planSummary ?? "")
                case .failure(let e): lastError = "\(e)"
                }
            }
            if got != want { try await Task.sleep(for: .milliseconds(200)) }
        }
        XCTAssertEqual(got[0], want[0], "device \(devices[0]) (cluster 1); last error: \(lastError)\n\(stack.logs())")
        XCTAssertEqual(got[1], want[1], "device \(devices[1]) (cluster 2)")
        XCTAssertFalse(plans.isEmpty)
        // A device the map does not list is refused.
        if case .failure(let e as InferenceFailure) = await Self.generate(client, InferenceRequest(requestId: "x", deviceId: "device-99", prompt: [1], maxTokens: 1)) {
            XCTAssertEqual(e.error.code, .unknownDevice)
        } else {
            XCTFail("an unknown device was served")
        }
    }

    func testKillingAStageProcessMidGenerationGivesTheSameOutput() async throws {
        let stack = try Stack()
        defer { stack.down() }
        let router = try stack.endpoint()
        try stack.start("inference-router", "inference-router", ["--bind", router, "--model", stack.model.path, "--heartbeat-ms", "100",
                                                                 "--known-devices", "host"])
        // e0 and c0 hold two blocks each, so the best plan is a two-stage chain ending on c0 (e0 or e1 first) with
        // activations going stage to stage; e1 holds the whole model but computes slower. Compute is emulated
        // (~30 ms a stage and token).
        let slow = ["--emulate-compute", "--max-layers", "2"]
        try stack.stageNode("e0", role: "edge", router: router, extra: ["--flops", "2e6"] + slow)
        try stack.stageNode("c0", role: "cloud", router: router, extra: ["--flops", "2e6"] + slow)
        try stack.stageNode("e1", role: "edge", router: router, extra: ["--flops", "1.2e6", "--emulate-compute"])
        let context = BusContext()
        let client = try InferenceClient(router: router, id: "client", context: context)
        defer { client.close() }
        let sampling = Messages.Sampling(temperature: 0.9, topK: 20, seed: 5)
        let want = try Self.reference(nil, tokens: 10, sampling: .topK(k: 20, temperature: 0.9), seed: 5)
        // Wait until all three nodes serve: the first answer runs on the chain.
        var first: [TokenResult] = []
        for attempt in 0..<50 {
            if case .success(let t) = await Self.generate(client, InferenceRequest(requestId: "warm-\(attempt)", deviceId: "host",
                                                                                 prompt: Self.prompt, maxTokens: 2, sampling: sampling)),
               t.first?.planSummary.contains("c0") == true { first = t; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let chain = first.first?.planSummary ?? ""
        XCTAssertTrue(chain.hasSuffix("[0,2)+c0[2,4)"), "\(chain)\n\(stack.logs())")
        var tokens: [TokenResult] = []
        for try await t in client.generate(InferenceRequest(requestId: "kill", deviceId: "host", prompt: Self.prompt, maxTokens: 10,
                                                            sampling: sampling), timeout: .seconds(20)) {
            tokens.append(t)
            if t.index == 2 { stack.processes["c0"]?.kill9() }
        }
        XCTAssertEqual(tokens.map(\.token), want, stack.logs())
        XCTAssertTrue(tokens.first?.planSummary.hasSuffix("+c0[2,4)") ?? false, tokens.first?.planSummary ?? "")
        XCTAssertFalse(tokens.last?.planSummary.contains("c0") ?? true, "the plan after the failure: \(tokens.last?.planSummary ?? "")")
    }
}
