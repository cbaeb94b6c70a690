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
                                    into: dir)
        return dir.path
    }

    /// Every service in this process on one BusContext over inproc://.
    public static func embedded(_ s: Settings, dataDir: String, context: BusContext = BusContext()) throws -> RunSummary {
        if s.experiment.isHierarchical { return try hierarchicalEmbedded(s, dataDir: dataDir, context: context) }
        let e = s.experiment
        try requireModel(e.model)
        let tag = UUID().uuidString.prefix(8)
        if e.data.devices > 1 { TrainingGate.singleThreadedBLAS() }
        let manager = try ClusterManagerService(.init(router: "inproc://cm-\(tag)", pub: "inproc://cm-pub-\(tag)", heartbeatMs: s.heartbeatMs,
                                                      liveness: s.liveness, partitions: e.data.devices), context: context)
        var agg = AggregatorService.Options(manager: manager.routerEndpoint, router: "inproc://agg-\(tag)", pub: "inproc://agg-pub-\(tag)", experiment: e)
        agg.checkpoint = URL(fileURLWithPath: s.out).appendingPathComponent("checkpoints").path
        agg.metrics = s.out
        agg.heartbeatMs = s.heartbeatMs
        agg.quiet = s.quiet
        let aggregator = try AggregatorService(agg, initial: try e.initialAdapter(),
                                               context: context)
        let devices = try embeddedDevices(s, manager: manager.routerEndpoint, dataDir: dataDir, context: context)
        let done = DispatchSemaphore(value: 0)
        aggregator.onFinish { done.signal() }
        manager.start(); aggregator.start(); devices.forEach { $0.start() }
        defer {
            devices.forEach { $0.stop() }
            aggregator.stop()
            manager.stop()
        }
        try wait(s, finished: { done.wait(timeout: .now() + 0.3) == .success }, failed: { nil })
        return try readSummary(s.out)
    }

    /// The separate executables over tcp loopback (free ports), with CURVE on every socket; children are killed by PID
    /// at the end, also on error.
    public static func processes(_ s: Settings, configPath: String, dataDir: String, binDir: URL) throws -> RunSummary {
        let e = s.experiment
        try requireModel(e.model)
        for name in ["cluster-manager", "aggregator", "device-worker"] where !FileManager.default.isExecutableFile(atPath: binDir.appendingPathComponent(name).path) {
            throw RunError.missingExecutable(path: binDir.appendingPathComponent(name).path)
        }
        if e.isHierarchical { return try hierarchicalProcesses(s, configPath: configPath, dataDir: dataDir, binDir: binDir) }
        let ports = try freePorts(4)
        let cm = "tcp://127.0.0.1:\(ports[0])", cmPub = "tcp://127.0.0.1:\(ports[1])"
        let ag = "tcp://127.0.0.1:\(ports[2])", agPub = "tcp://127.0.0.1:\(ports[3])"
        var children = ChildProcesses()
        defer { children.killAll() }
        let hb = ["--heartbeat-ms", "\(s.heartbeatMs)"]
        let keys = try runKeys(s)
        try children.spawn("cluster-manager", binDir, ["--router", cm, "--pub", cmPub, "--config", configPath, "--liveness", "\(s.liveness)"] + hb
                           + keys.serviceArguments)
        let aggregator = try children.spawn("aggregator", binDir, ["--tier", "cloud", "--id", "aggregator", "--manager", cm, "--router", ag, "--pub", agPub,
                                                                   "--config", configPath, "--checkpoint", URL(fileURLWithPath: s.out).appendingPathComponent("checkpoints").path,
                                                                   "--metrics", s.out] + hb + (s.quiet ? ["--quiet"] : []) + keys.serviceArguments)
        for i in 0..<e.data.devices {
            try children.spawn("device-worker", binDir, ["--manager", cm, "--model", e.model, "--data", dataDir, "--config", configPath] + hb + (s.quiet ? ["--quiet"] : [])
                               + keys.clientArguments("device-\(i)"))
        }
        try wait(s, finished: {
            Thread.sleep(forTimeInterval: 0.3)
            return !aggregator.isRunning && aggregator.terminationStatus == 0
        }, failed: {
            if !aggregator.isRunning && aggregator.terminationStatus != 0 { return RunError.childFailed(name: "aggregator", status: aggregator.terminationStatus) }
            return nil
        })
        return try readSummary(s.out)
    }

    /// CURVE keys of a process run (`<out>/keys`): the services share the server pair, each device worker has its own.
    static func runKeys(_ s: Settings) throws -> CurveDeployment {
        try CurveDeployment.create(in: URL(fileURLWithPath: s.out).appendingPathComponent("keys"),
                                   clients: (0..<s.experiment.data.devices).map { "device-\($0)" })
    }

    /// One device worker per partition, in this process, all talking to `manager`.
    static func embeddedDevices(_ s: Settings, manager: String, dataDir: String, context: BusContext) throws -> [DeviceWorkerService] {
        let e = s.experiment
        return try (0..<e.data.devices).map { _ in
            var o = DeviceWorkerService.Options(manager: manager, model: e.model, data: dataDir, experiment: e)
            o.heartbeatMs = s.heartbeatMs
            o.quiet = s.quiet
            return try DeviceWorkerService(o, context: context)
        }
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
            if let r = cloud.last {
                let val = r.valLoss.values.reduce(0, +) / Double(max(1, r.valLoss.count))
                bar?.set(completed: min(total, cloud.count), status: String(format: "round %d val %.4f", r.round, val))
            }
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
