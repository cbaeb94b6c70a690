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
    @Option(help: "Folder of cluster adapters (cluster-<k>/ PEFT folders), re-read when they change (e.g. a clustered aggregator's <checkpoint>/clusters).") var adapters: String?
    @Option(help: "FLOP/s this node claims until it has measured itself (and emulates with --emulate-compute).") var flops: Double = 1e10
    @Option(help: "Emulation knob: background load 0...1 (compute runs at flops·(1−load)); the node reports what it measures.") var load: Double = 0
    @Flag(help: "Sleep so each call takes FLOPs / (flops · (1 − load)).") var emulateCompute = false
    @Option(help: "Heartbeat interval in milliseconds.") var heartbeatMs: Int = 1000
    @Option(help: "Telemetry proxy XSUB endpoint.") var telemetry: String?
    @Option(help: "Endpoint the router should dial (needed when --bind uses 0.0.0.0).") var advertise: String?
    @Option(help: "Most blocks this node can hold (memory); the planner respects it.") var maxLayers: Int?
    @Option(help: "Most sessions at once (admission control; 0 = no limit).") var maxSessions: Int = 64
    @Option(help: "One-way delay added before sends to peers, e.g. edge-0=2.5,cloud=20 (milliseconds; the testbed's propagation delay).") var linkLatency: String?
    @Option(help: "Scenario file: a device reports its radio state (SNR, rate) from this channel model with each heartbeat.") var scenario: String?
    @Option(help: "This device's node id in the scenario (default: --id).") var scenarioNode: String?
    @Option(help: "Stage node id of the device's access point (default: the scenario's, e.g. edge-0).") var radioPeer: String?
    @Flag(help: "Check the configuration (role, load, model config), print ok and exit.") var health = false
    @OptionGroup var curve: CurveOptions

    func run() throws {
        guard let nodeRole = NodeRole(rawValue: role) else { throw ValidationError("--role must be device, edge or cloud, not '\(role)'") }
        guard (0...1).contains(load) else { throw ValidationError("--load must be in 0...1, not \(load)") }
        guard flops > 0 else { throw ValidationError("--flops must be positive") }
        try curve.apply()
        guard maxSessions >= 0 else { throw ValidationError("--max-sessions must not be negative") }
        let latency = try linkLatency.map(Self.parseLatency) ?? [:]
        let radio = try scenario.map { try RadioState(scenario: URL(fileURLWithPath: $0), device: scenarioNode ?? id, accessPointPeer: radioPeer) }
        if health { _ = try LanguageModel.loadConfig(URL(fileURLWithPath: model)); print("ok"); return }
        let gpt = try LanguageModel.load(directory: URL(fileURLWithPath: model))
        var options = StageNodeOptions(
            id: id, role: nodeRole, bind: bind, router: router, flops: flops, load: load, emulateCompute: emulateCompute,
            heartbeatInterval: .milliseconds(max(10, heartbeatMs)), telemetry: telemetry, advertise: advertise)
        options.maxLayers = maxLayers
        options.maxSessions = maxSessions
        options.linkLatency = latency
        options.radio = radio
        if let dir = adapters {
            let url = URL(fileURLWithPath: dir)
            // An aggregator may be writing a cluster's files right now: what does not load yet is retried each heartbeat.
            for (k, folder) in (try? AdapterFolder.clusters(url)) ?? [:] {
                do { _ = try LoRAAdapter.load(directory: folder, model: gpt.config) } catch {
                    FileHandle.standardError.write(Data("stage-node: cluster \(k) adapter not loaded yet (will retry): \(error)\n".utf8))
                }
            }
            options.adapterFolder = url
        }
        let server = try StageServer(model: gpt, options: options)
        let mem = ProcessMemory.resident()
        print("stage-node \(id) (\(role)) serving \(server.endpoint)" + (adapters.map { ", cluster adapters from \($0)" } ?? "")
              + ", weights \(gpt.quantization.map { "\($0)" } ?? "fp32"), resident \((mem?.current ?? 0) >> 20) MiB")
        waitForTerminationSignal()
        server.leave()
    }
}

extension StageNodeCommand {
    /// "edge-0=2.5,cloud=20" (milliseconds) → seconds by peer id.
    static func parseLatency(_ text: String) throws -> [String: Double] {
        var out: [String: Double] = [:]
        for item in text.split(separator: ",") where !item.isEmpty {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, let ms = Double(parts[1]), ms.isFinite, ms >= 0 else {
                throw ValidationError("--link-latency: '\(item)' is not peer=milliseconds (e.g. edge-0=2.5)")
            }
            out[parts[0]] = ms / 1000
        }
        return out
    }
}

do {
    StageNodeCommand.main(try EnvOptions.processArguments(knownFlags: [
        "--id", "--role", "--bind:endpoint", "--router:endpoint", "--model", "--adapters", "--flops:number", "--load:number",
        "--emulate-compute:bool", "--heartbeat-ms:int", "--telemetry:endpoint", "--advertise:endpoint", "--max-layers:int",
        "--health:bool", "--max-sessions:int", "--link-latency", "--scenario", "--scenario-node", "--radio-peer",
    ] + CurveOptions.knownFlags))
} catch {
    FileHandle.standardError.write(Data("stage-node: \(error)\n".utf8))
    exit(64)
}
