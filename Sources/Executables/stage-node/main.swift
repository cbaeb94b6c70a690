import ArgumentParser
import Config
import Engine
import Foundation
import Stage

struct StageNodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stage-node",
        abstract: "Serves layer ranges (and multi-access shares) of the base model for split inference."
    )

    @Option(help: "Node id (also its routing id).") var id: String
    @Option(help: "device, edge or cloud.") var role: String
    @Option(help: "ROUTER endpoint to serve activations on.") var bind: String
    @Option(help: "Inference router endpoint to register and heartbeat with.") var router: String?
    @Option(help: "Model folder (config.json + model.safetensors).") var model: String
    @Option(help: "Folder of cluster adapters: cluster-<k>/ PEFT folders.") var adapters: String?
    @Option(help: "Sustained FLOP/s this node stands for.") var flops: Double = 1e10
    @Option(help: "Background load 0...1 to report and emulate.") var load: Double = 0
    @Flag(help: "Sleep so each call takes FLOPs / (flops · (1 − load)).") var emulateCompute = false
    @Option(help: "Heartbeat interval in milliseconds.") var heartbeatMs: Int = 1000
    @Option(help: "Telemetry proxy XSUB endpoint.") var telemetry: String?
    @Option(help: "Endpoint the router should dial (needed when --bind uses 0.0.0.0).") var advertise: String?
    @Option(help: "Most blocks this node can hold (memory); the planner respects it.") var maxLayers: Int?
    @Flag(help: "Check the configuration (role, load, model config), print ok and exit.") var health = false
    @OptionGroup var curve: CurveOptions

    func run() throws {
        guard let nodeRole = NodeRole(rawValue: role) else { throw ValidationError("--role must be device, edge or cloud, not '\(role)'") }
        guard (0...1).contains(load) else { throw ValidationError("--load must be in 0...1, not \(load)") }
        guard flops > 0 else { throw ValidationError("--flops must be positive") }
        try curve.apply()
        if health { _ = try LanguageModel.loadConfig(URL(fileURLWithPath: model)); print("ok"); return }
        let gpt = try LanguageModel.load(directory: URL(fileURLWithPath: model))
        let clusterAdapters = try adapters.map { try AdapterFolder.load(URL(fileURLWithPath: $0), config: gpt.config) } ?? [:]
        var options = StageNodeOptions(
            id: id, role: nodeRole, bind: bind, router: router, flops: flops, load: load, emulateCompute: emulateCompute,
            heartbeatInterval: .milliseconds(max(10, heartbeatMs)), telemetry: telemetry, advertise: advertise)
        options.maxLayers = maxLayers
        let server = try StageServer(model: gpt, adapters: clusterAdapters, options: options)
        print("stage-node \(id) (\(role)) serving \(server.endpoint), \(clusterAdapters.count) cluster adapters")
        waitForTerminationSignal()
        server.leave()
    }
}

do {
    StageNodeCommand.main(try EnvOptions.processArguments(knownFlags: [
        "--id", "--role", "--bind:endpoint", "--router:endpoint", "--model", "--adapters", "--flops:number", "--load:number",
        "--emulate-compute:bool", "--heartbeat-ms:int", "--telemetry:endpoint", "--advertise:endpoint", "--max-layers:int",
        "--health:bool",
    ] + CurveOptions.knownFlags))
} catch {
    FileHandle.standardError.write(Data("stage-node: \(error)\n".utf8))
    exit(64)
}
