import ArgumentParser
import Config
import Engine
import Foundation
import InferenceRouter
import Stage
import Tokenizers

struct InferenceRouterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inference-router",
        abstract: "Plans and runs split inference across stage nodes."
    )

    @Option(help: "ROUTER endpoint for clients and stage node registration.") var bind = "tcp://0.0.0.0:5570"
    @Option(help: "Cluster manager ROUTER (map snapshots); devices are served with the cluster its map gives them.") var manager: String?
    @Option(help: "Cluster manager map PUB (needed with --manager).") var managerPub: String?
    @Option(help: "direct (stage to stage) or hub (every activation through the router, for comparison).") var forwarding: String = "direct"
    @Option(help: "Telemetry proxy XSUB endpoint: plan/failover events and a latency metric per request.") var telemetry: String?
    @Option(help: "Model folder: config.json for the planner's cost model, and the tokenizer.") var model: String
    @Option(help: "Heartbeat interval of stage nodes in milliseconds.") var heartbeatMs: Int = 1000
    @Option(help: "Missed heartbeats before a stage node is dead.") var liveness: Int = 4
    @Option(help: "Milliseconds a stage may take per step before failover (large models need more).") var stepTimeoutMs: Int = 5000
    @Option(help: "Comma-separated device ids allowed besides registered device nodes.") var knownDevices: String = ""
    @Flag(help: "Check the configuration (model config and tokenizer), print ok and exit.") var health = false
    @OptionGroup var curve: CurveOptions

    func run() throws {
        guard let mode = Forwarding(rawValue: forwarding) else { throw ValidationError("--forwarding must be direct or hub, not '\(forwarding)'") }
        guard (manager == nil) == (managerPub == nil) else { throw ValidationError("--manager and --manager-pub go together") }
        let dir = URL(fileURLWithPath: model)
        let config = try LanguageModel.loadConfig(dir)
        let tokenizer = try loadTokenizer(modelDir: dir)
        try curve.apply()
        if health { print("ok"); return }
        var options = RouterOptions()
        options.heartbeatInterval = .milliseconds(max(10, heartbeatMs))
        options.liveness = max(1, liveness)
        guard stepTimeoutMs > 0 else { throw ValidationError("--step-timeout-ms must be positive") }
        options.stepTimeout = .milliseconds(stepTimeoutMs)
        options.telemetry = telemetry
        options.knownDevices = Set(knownDevices.split(separator: ",").map { String($0) })
        options.forwarding = mode
        options.manager = manager
        options.managerPub = managerPub
        let router = try InferenceRouter(bind: bind, config: config, tokenizer: tokenizer, options: options)
        print("inference-router on \(router.endpoint) (\(config.layers) blocks, width \(config.width))")
        waitForTerminationSignal()
        router.stop()
    }
}

do {
    InferenceRouterCommand.main(try EnvOptions.processArguments(knownFlags: [
        "--manager:endpoint", "--bind:endpoint", "--telemetry:endpoint", "--model", "--health:bool",
        "--heartbeat-ms:int", "--liveness:int", "--known-devices", "--manager-pub:endpoint", "--forwarding", "--step-timeout-ms:int",
    ] + CurveOptions.knownFlags))
} catch {
    FileHandle.standardError.write(Data("inference-router: \(error)\n".utf8))
    exit(64)
}
