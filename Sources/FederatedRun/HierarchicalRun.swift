import ClusterManager
import Aggregator
import Bus
import Experiments
import Wire
import DeviceWorker
import Engine
import Foundation
import Messages
import Reports

// `fi run` for `federation.paradigm: hierarchical`: manager (device → edge from the scenario topology), one cloud
// aggregator, one edge aggregator per edge ("edge-<k>", upstream = the cloud's ROUTER), and the devices.
// Every aggregator appends its records to <out>/metrics.jsonl (tier edge / tier cloud); the cloud writes
// summary.json and ends the run. Checkpoints: <out>/checkpoints/<aggregator id>.
extension FederatedRun {
    static func checkpointDir(_ s: Settings, _ id: String) -> String {
        URL(fileURLWithPath: s.out).appendingPathComponent("checkpoints").appendingPathComponent(id).path
    }

    static func hierarchicalEmbedded(_ s: Settings, dataDir: String, context: BusContext) throws -> RunSummary {
        let e = s.experiment
        try requireModel(e.model)
        let plan = HierarchyPlan(e)
        let tag = UUID().uuidString.prefix(8)
        if e.data.devices > 1 { TrainingGate.singleThreadedBLAS() }
        var mo = ClusterManagerService.Options(router: "inproc://cm-\(tag)", pub: "inproc://cm-pub-\(tag)", heartbeatMs: s.heartbeatMs,
                                               liveness: s.liveness, partitions: e.data.devices)
        mo.deviceEdges = plan.deviceEdges
        let manager = try ClusterManagerService(mo, context: context)
        let initial = try e.initialAdapter()
        func aggregator(_ id: String, tier: Messages.Tier, upstream: String?) throws -> AggregatorService {
            var o = AggregatorService.Options(manager: manager.routerEndpoint, router: "inproc://\(id)-\(tag)", pub: "inproc://\(id)-pub-\(tag)", experiment: e)
            o.id = id
            o.tier = tier
            o.upstream = upstream
            o.checkpoint = checkpointDir(s, id)
            o.metrics = s.out
            o.heartbeatMs = s.heartbeatMs
            o.quiet = s.quiet
            return try AggregatorService(o, initial: initial, context: context)
        }
        let cloud = try aggregator("cloud", tier: .cloud, upstream: nil)
        let edges = try (0..<plan.edges).map { try aggregator("edge-\($0)", tier: .edge, upstream: cloud.routerEndpoint) }
        let devices = try embeddedDevices(s, manager: manager.routerEndpoint, dataDir: dataDir, context: context)
        let done = DispatchSemaphore(value: 0)
        cloud.onFinish { done.signal() }
        manager.start(); cloud.start(); edges.forEach { $0.start() }; devices.forEach { $0.start() }
        defer {
            devices.forEach { $0.stop() }
            edges.forEach { $0.stop() }
            cloud.stop()
            manager.stop()
        }
        try wait(s, finished: { done.wait(timeout: .now() + 0.3) == .success }, failed: { nil })
        return try readSummary(s.out)
    }

    static func hierarchicalProcesses(_ s: Settings, configPath: String, dataDir: String, binDir: URL) throws -> RunSummary {
        let e = s.experiment
        let plan = HierarchyPlan(e)
        let ports = try freePorts(4 + 2 * plan.edges)
        let ep = ports.map { "tcp://127.0.0.1:\($0)" }
        let cm = ep[0], cmPub = ep[1], cloudRouter = ep[2], cloudPub = ep[3]
        var children = ChildProcesses()
        defer { children.killAll() }
        let hb = ["--heartbeat-ms", "\(s.heartbeatMs)"]
        let quiet = s.quiet ? ["--quiet"] : []
        let keys = try runKeys(s)
        try children.spawn("cluster-manager", binDir, ["--router", cm, "--pub", cmPub, "--config", configPath, "--liveness", "\(s.liveness)"] + hb
                           + keys.serviceArguments)
        let cloud = try children.spawn("aggregator", binDir, ["--tier", "cloud", "--id", "cloud", "--manager", cm, "--router", cloudRouter,
                                                              "--pub", cloudPub, "--config", configPath, "--checkpoint", checkpointDir(s, "cloud"),
                                                              "--metrics", s.out] + hb + quiet + keys.serviceArguments)
        for k in 0..<plan.edges {
            try children.spawn("aggregator", binDir, ["--tier", "edge", "--id", "edge-\(k)", "--manager", cm, "--router", ep[4 + 2 * k],
                                                      "--pub", ep[5 + 2 * k], "--upstream", cloudRouter, "--config", configPath,
                                                      "--checkpoint", checkpointDir(s, "edge-\(k)"), "--metrics", s.out] + hb + quiet
                                                      + keys.serviceArguments)
        }
        for i in 0..<e.data.devices {
            try children.spawn("device-worker", binDir, ["--manager", cm, "--model", e.model, "--data", dataDir, "--config", configPath] + hb + quiet
                               + keys.clientArguments("device-\(i)"))
        }
        try wait(s, finished: {
            Thread.sleep(forTimeInterval: 0.3)
            return !cloud.isRunning && cloud.terminationStatus == 0
        }, failed: {
            if !cloud.isRunning && cloud.terminationStatus != 0 { return RunError.childFailed(name: "cloud aggregator", status: cloud.terminationStatus) }
            return nil
        })
        return try readSummary(s.out)
    }
}
