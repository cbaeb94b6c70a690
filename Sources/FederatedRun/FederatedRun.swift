import ClusterManager
import Aggregator
import Bus
import Experiments
import Wire
import Data
import DeviceWorker
import Engine
import Foundation
import Reports
import Simulation

/// `fi run`: one experiment, either embedded (every service in this process over inproc://) or as the separate
/// executables over tcp loopback. Both start the same service classes; only the endpoints differ.
public enum FederatedRun {
    public enum RunError: Error, CustomStringConvertible {
        case timedOut(seconds: Double)
        case childFailed(name: String, status: Int32)
        case missingExecutable(path: String)
        case noSummary(path: String)

        public var description: String {
            switch self {
            case .timedOut(let s): return "the run did not finish within \(Int(s)) s; check the services' log lines above"
            case .childFailed(let n, let s): return "\(n) exited with status \(s) before the run finished; see its messages above"
            case .missingExecutable(let p): return "\(p) does not exist: build the executables first (swift build)"
            case .noSummary(let p): return "the run ended without writing \(p)"
            }
        }
    }

    public struct Settings: Sendable {
        public var experiment: Experiment
        public var out: String
        public var heartbeatMs = 500
        public var liveness = 4
        public var quiet = false
        public var showProgress = true
        public init(experiment: Experiment, out: String) { self.experiment = experiment; self.out = out }
    }

    /// The partition folder: the experiment's manifest dir, or `<out>/data` prepared from the built-in corpus.
    public static func prepareData(_ s: Settings) throws -> String {
        if let dir = s.experiment.data.manifest { _ = try PartitionManifest.load(URL(fileURLWithPath: dir)); return dir }
        let dir = URL(fileURLWithPath: s.out).appendingPathComponent("data")
        let d = s.experiment.data
        guard let scheme = PartitionScheme(rawValue: d.scheme) else {
            throw ExperimentError.badValue(key: "data.scheme", value: d.scheme, reason: "use domain, dirichlet or iid")
        }
        var corpus = try Corpus.builtin()
        if !d.domains.isEmpty { corpus = try corpus.selecting(domains: d.domains) }
        try DataPreparation.prepare(corpus: corpus, spec: PartitionSpec(devices: d.devices, scheme: scheme, alpha: d.alpha, seed: d.seed),
                                    chunkBytes: d.chunkBytes, into: dir)
        return dir.path
    }

    /// `simulation: true`: the round engine on the virtual clock with the device hosts' trainers (no services).
    public static func simulated(_ s: Settings, dataDir: String) throws -> RunSummary {
        var o = SimulatedRun.Options(experiment: s.experiment, out: s.out, dataDir: dataDir)
        o.showProgress = s.showProgress
        o.quiet = s.quiet
        return try SimulatedRun.run(o).summary
    }

    /// `fi run` without --processes: simulated when the experiment says so, else every service in this process.
    public static func inProcess(_ s: Settings, dataDir: String) throws -> RunSummary {
        s.experiment.simulation ? try simulated(s, dataDir: dataDir) : try embedded(s, dataDir: dataDir)
    }

    /// Every service in this process on one BusContext over inproc:// (the same list `ProcessRun` starts as processes).
    public static func embedded(_ s: Settings, dataDir: String, context: BusContext? = nil) throws -> RunSummary {
        // Two sockets per virtual device, and the services'.
        let context = context ?? BusContext(maxSockets: Int32(clamping: max(1023, 2 * s.experiment.data.devices + 64)))
        let e = s.experiment
        try requireModel(e.model)
        let topology = RunTopology(e)
        let tag = UUID().uuidString.prefix(8)
        var mo = ClusterManagerService.Options(router: "inproc://cm-\(tag)", pub: "inproc://cm-pub-\(tag)", heartbeatMs: s.heartbeatMs,
                                               liveness: s.liveness, partitions: e.data.devices)
        if e.isHierarchical { mo.deviceEdges = HierarchyPlan(e).deviceEdges }
        let manager = try ClusterManagerService(mo, context: context)
        let initial = try e.initialAdapter()
        var aggregators: [String: AggregatorService] = [:]
        for a in topology.aggregators {
            var o = AggregatorService.Options(manager: manager.routerEndpoint, router: "inproc://\(a.id)-\(tag)", pub: "inproc://\(a.id)-pub-\(tag)",
                                              experiment: e)
            o.id = a.id
            o.tier = a.tier == "edge" ? .edge : .cloud
            o.upstream = a.upstream.flatMap { aggregators[$0]?.routerEndpoint }
            o.checkpoint = RunTopology.checkpointDir(out: s.out, id: a.id)
            o.metrics = s.out
            o.heartbeatMs = s.heartbeatMs
            o.quiet = s.quiet
            aggregators[a.id] = try AggregatorService(o, initial: initial, context: context)
        }
        let devices = try embeddedDevices(s, manager: manager.routerEndpoint, dataDir: dataDir, context: context)
        let done = DispatchSemaphore(value: 0)
        aggregators[topology.final]?.onFinish { done.signal() }
        manager.start()
        for a in topology.aggregators { aggregators[a.id]?.start() }
        devices.forEach { $0.start() }
        defer {
            devices.forEach { $0.stop() }
            for a in topology.aggregators.reversed() { aggregators[a.id]?.stop() }
            manager.stop()
        }
        try wait(s, finished: { done.wait(timeout: .now() + 0.3) == .success }, failed: { nil })
        return try readSummary(s.out)
    }

    /// The separate executables over tcp loopback (free ports), with CURVE on every socket; children are killed by PID
    /// at the end, also on error.
    public static func processes(_ s: Settings, configPath: String, dataDir: String, binDir: URL) throws -> RunSummary {
        try ProcessRun(s, configPath: configPath, dataDir: dataDir, binDir: binDir).wait()
    }

    /// CURVE keys of a process run (`<out>/keys`): the services share the server pair, each device worker has its own.
    static func runKeys(_ s: Settings, extraClients: [String] = []) throws -> CurveDeployment {
        try CurveDeployment.create(in: URL(fileURLWithPath: s.out).appendingPathComponent("keys"),
                                   clients: (0..<s.experiment.data.devices).map { "device-\($0)" } + extraClients)
    }

    /// One device host with a virtual device per partition, in this process, every device talking to `manager`.
    static func embeddedDevices(_ s: Settings, manager: String, dataDir: String, context: BusContext) throws -> [DeviceWorkerService] {
        let e = s.experiment
        var o = DeviceWorkerService.Options(manager: manager, model: e.model, data: dataDir, experiment: e)
        o.devices = e.data.devices
        o.heartbeatMs = s.heartbeatMs
        o.quiet = s.quiet
        return [try DeviceWorkerService(o, context: context)]
    }

    static func wait(_ s: Settings, finished: () -> Bool, failed: () -> Error?) throws {
        let f = s.experiment.federation
        let limit = Double(f.rounds + 1) * (2 * f.deadlineS + 30) + 120
        let start = Date()
        // Cloud records only: a hierarchical run's edges write records too, and its cloud runs fewer rounds.
        let total = (s.experiment.isHierarchical ? HierarchyPlan(s.experiment).cloudRounds : f.rounds) + 1
        let bar = s.showProgress ? ProgressBar(total: total, label: "rounds") : nil
        let metrics = URL(fileURLWithPath: s.out).appendingPathComponent(RunFiles.metrics).path
        var lineCount = 0
        func show() {
            let lines = (try? String(contentsOfFile: metrics, encoding: .utf8))?.split(separator: "\n") ?? []
            guard lines.count != lineCount else { return }
            lineCount = lines.count
            let cloud = lines.compactMap { try? JSONDecoder().decode(MetricRecord.self, from: Foundation.Data($0.utf8)) }.filter { $0.tier == .cloud }
            if let r = cloud.last { bar?.set(completed: min(total, cloud.count), status: ProgressBar.roundStatus(r, rounds: total - 1)) }
        }
        while !finished() {
            if let error = failed() { bar?.finish(status: "failed"); throw error }
            if Date().timeIntervalSince(start) > limit { bar?.finish(status: "timed out"); throw RunError.timedOut(seconds: limit) }
            show()
        }
        show()
        bar?.finish()
    }

    static func readSummary(_ out: String) throws -> RunSummary {
        let path = URL(fileURLWithPath: out).appendingPathComponent(RunFiles.summary)
        guard let data = FileManager.default.contents(atPath: path.path) else { throw RunError.noSummary(path: path.path) }
        return try JSONDecoder().decode(RunSummary.self, from: data)
    }

    /// Ports the kernel reports free on 127.0.0.1 (bound once, then released).
    public static func freePorts(_ n: Int) throws -> [Int] {
        // A private context: its teardown waits until the listeners are really closed, so the ports are free on return.
        let context = BusContext()
        var sockets: [Socket] = []
        defer { sockets.forEach { $0.close() } }
        return try (0..<n).map { _ in
            let s = try Socket(.router, context: context, linger: 0)
            sockets.append(s)
            let ep = try s.bind("tcp://127.0.0.1:*")
            return Int(ep.split(separator: ":").last ?? "") ?? 0
        }
    }
}

/// Children started by `fi run --processes` or the bench; killed by PID (TERM, then KILL), never by name.
public struct ChildProcesses {
    public private(set) var processes: [Process] = []
    public init() {}

    @discardableResult
    public mutating func spawn(_ name: String, _ binDir: URL, _ arguments: [String], threads: Int = 1) throws -> Process {
        let p = Process()
        p.executableURL = binDir.appendingPathComponent(name)
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["OPENBLAS_NUM_THREADS"] = "\(threads)"
        p.environment = env
        try p.run()
        processes.append(p)
        return p
    }

    public func killAll() {
        for p in processes where p.isRunning { kill(p.processIdentifier, SIGTERM) }
        let deadline = Date().addingTimeInterval(2)
        while processes.contains(where: \.isRunning) && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        for p in processes { p.waitUntilExit() }
    }
}
