import ArgumentParser
import Bus
import ClusterManager
import Experiments
import Config
import Foundation
import Messages

struct ClusterManagerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster-manager",
        abstract: "Registers devices, tracks liveness and publishes the cluster map."
    )
    static let knownFlags = ["--router:endpoint", "--pub:endpoint", "--telemetry:endpoint", "--config", "--heartbeat-ms:int",
                             "--liveness:int", "--health:bool", "--devices:int"] + CurveOptions.knownFlags

    @Option(help: "ROUTER bind: register, heartbeat, leave, assignment, snapshot.") var router = "tcp://0.0.0.0:5550"
    @Option(help: "Cluster map PUB bind.") var pub = "tcp://0.0.0.0:5551"
    @Option(help: "Telemetry proxy XSUB to connect a PUB to.") var telemetry: String?
    @Option(help: "Experiment file (data.devices = partitions to hand out).") var config: String?
    @Option(name: .customLong("heartbeat-ms"), help: "Heartbeat interval.") var heartbeatMs = 1000
    @Option(help: "Missed heartbeats before a peer is dead.") var liveness = 4
    @Option(help: "Partitions to hand out (default: the experiment's data.devices).") var devices: Int?
    @Flag(help: "Check the configuration and exit.") var health = false
    @OptionGroup var curve: CurveOptions

    func validate() throws {
        guard heartbeatMs > 0 else { throw ValidationError("--heartbeat-ms must be positive, got \(heartbeatMs)") }
        guard liveness > 0 else { throw ValidationError("--liveness must be positive, got \(liveness)") }
    }

    func run() throws {
        let experiment = try config.map { try Experiment.load(path: $0) } ?? Experiment()
        try curve.apply()
        BusContext.shared.maxInboundFrameBytes = serviceDecodeLimits.maxBytes
        if health { print("ok"); return }
        var options = ClusterManagerService.Options(router: router, pub: pub, telemetry: telemetry, heartbeatMs: heartbeatMs,
                                                    liveness: liveness, partitions: devices ?? experiment.data.devices)
        if experiment.isHierarchical { options.deviceEdges = HierarchyPlan(experiment).deviceEdges }
        let service = try ClusterManagerService(options)
        service.start()
        while true { sleep(3600) }
    }
}

do {
    ClusterManagerCommand.main(try EnvOptions.processArguments(knownFlags: ClusterManagerCommand.knownFlags))
} catch {
    ClusterManagerCommand.exit(withError: ValidationError("\(error)"))
}
