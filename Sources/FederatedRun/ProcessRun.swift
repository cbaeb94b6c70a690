import Bus
import Experiments
import Foundation
import Reports

/// The services an experiment runs: the cluster manager, the aggregators (one flat, or a cloud and one edge per edge
/// server) and one device worker per partition. Launchers start the same list in-process or as child processes.
public struct RunTopology: Sendable {
    public struct Aggregator: Sendable {
        public var id: String
        public var tier: String
        /// Edge tier: the aggregator it reports to.
        public var upstream: String?
    }
    public var aggregators: [Aggregator]
    public var devices: Int
    /// The aggregator whose end is the run's end (it writes summary.json).
    public var final: String

    public init(_ e: Experiment) {
        if e.isHierarchical {
            let plan = HierarchyPlan(e)
            aggregators = [Aggregator(id: "cloud", tier: "cloud")] + (0..<plan.edges).map { Aggregator(id: "edge-\($0)", tier: "edge", upstream: "cloud") }
            final = "cloud"
        } else {
            aggregators = [Aggregator(id: "aggregator", tier: "cloud")]
            final = "aggregator"
        }
        devices = e.data.devices
    }

    /// `<out>/checkpoints/<aggregator id>`: its engine snapshot and journal, and the cluster adapters it serves.
    public static func checkpointDir(out: String, id: String) -> String {
        URL(fileURLWithPath: out).appendingPathComponent("checkpoints").appendingPathComponent(id).path
    }
}

/// `fi run --processes`: every service as its executable over tcp loopback with CURVE on every socket. Each child has
/// a name (cluster-manager, an aggregator id, device-<i>), so one can be killed and started again with the same
/// arguments (restart tests, operators). Children are killed by PID at the end, never by name.
public final class ProcessRun {
    public let settings: FederatedRun.Settings
    let binDir: URL
    var specs: [String: (executable: String, arguments: [String])] = [:]
    var order: [String] = []
    public private(set) var children = ChildProcesses()
    var running: [String: Process] = [:]
    public let topology: RunTopology
    /// The run's CURVE keys (a participant started elsewhere takes one of `extraClients`).
    public private(set) var keys: CurveDeployment
    /// The cluster manager's ROUTER.
    public private(set) var managerEndpoint = ""

    /// `deviceWorkers`: how many device-worker processes to start (default: one per partition; fewer leaves places
    /// for participants started elsewhere).
    /// `extraClients`: more client key pairs in the run's keys folder (participants started elsewhere).
    public init(_ s: FederatedRun.Settings, configPath: String, dataDir: String, binDir: URL, deviceWorkers: Int? = nil,
                extraClients: [String] = []) throws {
        settings = s
        self.binDir = binDir
        let e = s.experiment
        try requireModel(e.model)
        for name in ["cluster-manager", "aggregator", "device-worker"] where !FileManager.default.isExecutableFile(atPath: binDir.appendingPathComponent(name).path) {
            throw FederatedRun.RunError.missingExecutable(path: binDir.appendingPathComponent(name).path)
        }
        topology = RunTopology(e)
        let ports = try FederatedRun.freePorts(2 + 2 * topology.aggregators.count).map { "tcp://127.0.0.1:\($0)" }
        let cm = ports[0]
        managerEndpoint = cm
        let hb = ["--heartbeat-ms", "\(s.heartbeatMs)"]
        let quiet = s.quiet ? ["--quiet"] : []
        let keys = try FederatedRun.runKeys(s, extraClients: extraClients)
        self.keys = keys
        add("cluster-manager", "cluster-manager", ["--router", cm, "--pub", ports[1], "--config", configPath, "--liveness", "\(s.liveness)"] + hb
            + keys.serviceArguments)
        var routers: [String: String] = [:]
        for (k, a) in topology.aggregators.enumerated() { routers[a.id] = ports[2 + 2 * k] }
        for (k, a) in topology.aggregators.enumerated() {
            add(a.id, "aggregator", ["--tier", a.tier, "--id", a.id, "--manager", cm, "--router", ports[2 + 2 * k], "--pub", ports[3 + 2 * k],
                                     "--config", configPath, "--checkpoint", RunTopology.checkpointDir(out: s.out, id: a.id), "--metrics", s.out]
                + (a.upstream.map { ["--upstream", routers[$0]!] } ?? []) + hb + quiet + keys.serviceArguments)
        }
        for i in 0..<(deviceWorkers ?? topology.devices) {
            add("device-\(i)", "device-worker", ["--manager", cm, "--model", e.model, "--data", dataDir, "--config", configPath] + hb + quiet
                + keys.clientArguments("device-\(i)"))
        }
        do { for id in order { try start(id) } } catch { stop(); throw error }
    }

    deinit { stop() }

    func add(_ id: String, _ executable: String, _ arguments: [String]) {
        specs[id] = (executable, arguments)
        order.append(id)
    }

    func start(_ id: String) throws {
        guard let spec = specs[id] else { return }
        running[id] = try children.spawn(spec.executable, binDir, spec.arguments)
    }

    /// SIGKILL: no flush, no goodbye (what a crash or an OOM kill does).
    public func kill(_ id: String) {
        guard let p = running[id], p.isRunning else { return }
        Foundation.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    /// Starts `id` again with the arguments it was first started with.
    public func restart(_ id: String) throws { try start(id) }

    public func stop() { children.killAll() }

    /// Waits until the final aggregator exits (0: the run finished) and returns the summary it wrote.
    public func wait() throws -> RunSummary {
        defer { stop() }
        let finalID = topology.final
        try FederatedRun.wait(settings, finished: { [self] in
            Thread.sleep(forTimeInterval: 0.3)
            guard let p = running[finalID] else { return false }
            return !p.isRunning && p.terminationStatus == 0
        }, failed: { [self] in
            // A killed process (restart tests) is not a failure; a non-zero exit of its own is.
            guard let p = running[finalID], !p.isRunning, p.terminationReason == .exit, p.terminationStatus != 0 else { return nil }
            return FederatedRun.RunError.childFailed(name: "\(finalID) aggregator", status: p.terminationStatus)
        })
        return try FederatedRun.readSummary(settings.out)
    }
}
