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
        abstract: "A device host: K virtual devices (each a participant with its own node id) sharing one frozen base and a pool of trainers."
    )
    static let knownFlags = ["--manager:endpoint", "--model", "--data", "--telemetry:endpoint", "--health:bool",
                             "--config", "--id", "--echo:bool", "--heartbeat-ms:int", "--quiet:bool",
                             "--devices:int", "--trainers:int", "--upload-window:int",
                             "--exit-after-sharing:int"]
                             + CurveOptions.knownFlags

    @Option(help: "Cluster manager ROUTER.") var manager = "tcp://cluster-manager:5550"
    @Option(help: "Base model folder (default: the experiment's model).") var model: String?
    @Option(help: "Partition manifest folder.") var data = "/var/lib/fi/data"
    @Option(help: "Telemetry proxy XSUB.") var telemetry: String?
    @Option(help: "Experiment file (batch, seq, eval_tokens, lora, scenario).") var config: String?
    @Option(help: "Fixed node id of a single device (default: the manager assigns ids).") var id = ""
    @Option(help: "Virtual devices in this host (FI_DEVICES).") var devices = 1
    @Option(help: "Trainers in the pool (default: one per core).") var trainers: Int?
    @Option(name: .customLong("upload-window"), help: "Unacknowledged uploads beyond the running tasks (default: the trainer count, at least 2).")
    var uploadWindow: Int?
    @Option(name: .customLong("heartbeat-ms"), help: "Heartbeat interval.") var heartbeatMs = 1000
    @Flag(help: "Benchmarks: no model or data; answer each round with a tiny change of the adapter.") var echo = false
    @Flag(help: "Log only warnings.") var quiet = false
    @Option(name: .customLong("exit-after-sharing"), help: ArgumentHelp("Fault injection: exit right after sending the secure-aggregation shares of the N-th secure round this device takes part in.", visibility: .hidden))
    var exitAfterSharing: UInt64?
    @Flag(help: "Check the configuration and exit.") var health = false
    @OptionGroup var curve: CurveOptions

    func validate() throws {
        guard heartbeatMs > 0 else { throw ValidationError("--heartbeat-ms must be positive, got \(heartbeatMs)") }
        guard devices >= 1 else { throw ValidationError("--devices must be at least 1, got \(devices)") }
        if let t = trainers, t < 1 { throw ValidationError("--trainers must be at least 1, got \(t)") }
        if let w = uploadWindow, w < 1 { throw ValidationError("--upload-window must be at least 1, got \(w)") }
        guard id.isEmpty || devices == 1 else { throw ValidationError("--id names one device; with --devices \(devices) the cluster manager assigns ids") }
    }

    func run() throws {
        let experiment = try config.map { try Experiment.load(path: $0) } ?? Experiment()
        let modelDir = model ?? experiment.model
        if !echo { try requireModel(modelDir) }
        BusContext.shared.setMaxSockets(Int32(clamping: max(1023, 2 * devices + 64)))  // before the first socket
        try curve.apply()
        BusContext.shared.maxInboundFrameBytes = serviceDecodeLimits.maxBytes
        if health { print("ok"); return }
        var o = DeviceWorkerService.Options(manager: manager, model: modelDir, data: data, experiment: experiment)
        o.id = id; o.telemetry = telemetry; o.heartbeatMs = heartbeatMs; o.echo = echo; o.quiet = quiet
        o.devices = devices; o.trainers = trainers; o.uploadWindow = uploadWindow
        if let last = exitAfterSharing {
            // A short grace so the shares leave the socket; then the process is gone, without goodbye.
            let counter = SharingCounter()
            o.afterSharing = { wire in
                guard counter.count(wire) == last else { return true }
                DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { _exit(0) }
                return false
            }
        }
        let service = try DeviceWorkerService(o)
        service.start()
        while true { sleep(3600) }
    }
}

/// Secure rounds this device shared in (called on the service loop only).
final class SharingCounter: @unchecked Sendable {
    var wires: [UInt64] = []
    func count(_ wire: UInt64) -> UInt64 {
        if !wires.contains(wire) { wires.append(wire) }
        return UInt64(wires.count)
    }
}

do {
    DeviceWorkerCommand.main(try EnvOptions.processArguments(knownFlags: DeviceWorkerCommand.knownFlags))
} catch {
    DeviceWorkerCommand.exit(withError: ValidationError("\(error)"))
}
