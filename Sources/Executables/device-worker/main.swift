import ArgumentParser
import Bus
import Experiments
import Wire
import Config
import DeviceWorker
import Foundation
import Messages

struct DeviceWorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "device-worker",
        abstract: "Trains LoRA adapters on local data and serves layer ranges."
    )
    static let knownFlags = ["--manager:endpoint", "--model", "--data", "--telemetry:endpoint", "--health:bool",
                             "--config", "--id", "--echo:bool", "--heartbeat-ms:int", "--quiet:bool"]
                             + CurveOptions.knownFlags

    @Option(help: "Cluster manager ROUTER.") var manager = "tcp://cluster-manager:5550"
    @Option(help: "Base model folder (default: the experiment's model).") var model: String?
    @Option(help: "Partition manifest folder.") var data = "/var/lib/fi/data"
    @Option(help: "Telemetry proxy XSUB.") var telemetry: String?
    @Option(help: "Experiment file (batch, seq, eval_tokens, lora, scenario).") var config: String?
    @Option(help: "Fixed node id (default: the manager assigns one).") var id = ""
    @Option(name: .customLong("heartbeat-ms"), help: "Heartbeat interval.") var heartbeatMs = 1000
    @Flag(help: "Benchmarks: no model or data; answer each round with a tiny change of the adapter.") var echo = false
    @Flag(help: "Log only warnings.") var quiet = false
    @Flag(help: "Check the configuration and exit.") var health = false
    @OptionGroup var curve: CurveOptions

    func validate() throws {
        guard heartbeatMs > 0 else { throw ValidationError("--heartbeat-ms must be positive, got \(heartbeatMs)") }
    }

    func run() throws {
        let experiment = try config.map { try Experiment.load(path: $0) } ?? Experiment()
        let modelDir = model ?? experiment.model
        if !echo { try requireModel(modelDir) }
        try curve.apply()
        BusContext.shared.maxInboundFrameBytes = serviceDecodeLimits.maxBytes
        if health { print("ok"); return }
        var o = DeviceWorkerService.Options(manager: manager, model: modelDir, data: data, experiment: experiment)
        o.id = id; o.telemetry = telemetry; o.heartbeatMs = heartbeatMs; o.echo = echo; o.quiet = quiet
        let service = try DeviceWorkerService(o)
        service.start()
        while true { sleep(3600) }
    }
}

do {
    DeviceWorkerCommand.main(try EnvOptions.processArguments(knownFlags: DeviceWorkerCommand.knownFlags))
} catch {
    DeviceWorkerCommand.exit(withError: ValidationError("\(error)"))
}
