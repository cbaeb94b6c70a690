import Bus
import Engine
import Foundation
import InferenceRouter
import Messages
import Stage

/// The split-inference services on a testbed: one `stage-node` process inside each host's namespace (on the host's
/// address, computing at the scenario's FLOP/s and load, adding the scenario's one-way latencies to what it sends),
/// and the inference router in this process on the driver's address (so benchmarks and tests can ask it for its
/// candidates and view). The router knows only what the nodes measure and report. Every tcp socket uses CURVE
/// (fresh keys per testbed: the services sign with the server pair, the router's context too) unless `curve` is off.
public final class TestbedDeployment: @unchecked Sendable {  // safe: driven by one caller; the router has its own loop
    public let net: NetworkTestbed
    public let router: InferenceRouter
    public let dir: URL
    public let model: URL
    public let bin: URL
    public let config: ModelConfig
    public private(set) var processes: [String: ServiceProcess] = [:]
    private var loads: [String: Double] = [:]
    /// The testbed's CURVE keys (nil: plain tcp).
    public let keys: CurveDeployment?

    public static let stagePort = 5590

    /// `stepTimeout`: a plan without a token for this long (beyond its estimate) fails over.
    public init(spec: TestbedSpec, bin: URL, forwarding: Forwarding = .direct, routerPort: Int = 5570, stepTimeout: Duration = .seconds(3),
                curve: Bool = true, tag: String? = nil) throws {
        net = try NetworkTestbed(spec: spec, tag: tag)
        self.bin = bin
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("testbed-\(net.tag)")
        model = dir.appendingPathComponent("model")
        let m = spec.model
        config = ModelConfig(vocabSize: m.vocab, contextLength: m.context, layers: m.layers, heads: m.heads, width: m.width)
        var o = RouterOptions()
        o.heartbeatInterval = .milliseconds(spec.heartbeatMs)
        o.forwarding = forwarding
        o.stepTimeout = stepTimeout
        do {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try LanguageModel(config: config, seed: 1).save(directory: model)
            keys = curve ? try CurveDeployment.create(in: dir.appendingPathComponent("keys"), clients: ["client"]) : nil
            let context = BusContext()
            if let keys { try context.secure(try keys.security(as: CurveDeployment.serverName, binds: true)) }
            router = try InferenceRouter(bind: "tcp://\(net.driverAddress):\(routerPort)", config: config, options: o, context: context)
        } catch {
            net.teardown()
            throw error
        }
        do {
            for h in spec.hosts { try startNode(h.name) }
        } catch {
            stop()
            throw error
        }
    }

    public var spec: TestbedSpec { net.spec }
    public var routerEndpoint: String { router.endpoint }

    /// (Re)starts a host's stage node, optionally under another emulated background load.
    public func startNode(_ name: String, load: Double? = nil) throws {
        guard let h = spec.host(name) else { throw TestbedError.badScenario("no host \(name)") }
        processes[name]?.stop()
        if let load { loads[name] = load }
        let latency = spec.hosts.compactMap { peer -> String? in
            let l = spec.link(name, peer.name).latencySeconds
            return peer.name != name && l > 0 ? "\(peer.name)=\(l * 1000)" : nil
        }
        var args = ["--id", name, "--role", h.role, "--bind", "tcp://\(net.address(name)):\(Self.stagePort)", "--router", router.endpoint,
                    "--model", model.path, "--flops", "\(h.flops)", "--load", "\(loads[name] ?? h.load)", "--emulate-compute",
                    "--heartbeat-ms", "\(spec.heartbeatMs)"]
        if !latency.isEmpty { args += ["--link-latency", latency.joined(separator: ",")] }
        if let m = h.maxLayers { args += ["--max-layers", "\(m)"] }
        if let m = h.maxSessions { args += ["--max-sessions", "\(m)"] }
        args += keys?.serviceArguments ?? []
        processes[name] = try ServiceProcess(name: name, executable: bin.appendingPathComponent("stage-node"), arguments: args,
                                             namespace: net.namespace(name), logDirectory: dir)
    }

    /// Waits until every node has registered, measured its speed, and reported a probe of every link to the others.
    public func waitReady(timeout: Double = 20) async throws {
        let end = Date().addingTimeInterval(timeout)
        let names = spec.hosts.map(\.name)
        while Date() < end {
            let v = try await router.view()
            let measured = names.allSatisfy { a in names.allSatisfy { b in a == b || v.links[NetworkView.key(a, b)] != nil } }
            if v.nodes.count == names.count && measured { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        let logs = processes.values.map { "--- \($0.name)\n\($0.output.suffix(2000))" }.joined(separator: "\n")
        throw TestbedError.serviceFailed("the testbed's stage nodes", "not all registered and measured within \(timeout) s\n\(logs)")
    }

    /// Stops every process by its PID, the router, removes the namespaces and the temp folder.
    public func stop() {
        for p in processes.values { p.stop() }
        processes.removeAll()
        router.stop()
        net.teardown()
        try? FileManager.default.removeItem(at: dir)
    }
}
