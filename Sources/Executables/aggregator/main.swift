import Aggregator
import ArgumentParser
import Bus
import Experiments
import Wire
import Config
import Engine
import Foundation
import Messages

struct AggregatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aggregator",
        abstract: "Aggregates adapter updates for one tier (edge or cloud)."
    )
    static let knownFlags = ["--tier", "--id", "--manager:endpoint", "--router:endpoint", "--pub:endpoint", "--upstream:endpoint",
                             "--advertise:endpoint", "--checkpoint", "--telemetry:endpoint", "--config", "--health:bool",
                             "--metrics", "--heartbeat-ms:int", "--quiet:bool", "--no-eval:bool", "--synthetic-adapter:int"]
                             + CurveOptions.knownFlags

    @Option(help: "cloud or edge.") var tier = "cloud"
    @Option(help: "Node id.") var id = "aggregator"
    @Option(help: "Cluster manager ROUTER.") var manager = "tcp://cluster-manager:5550"
    @Option(help: "ROUTER bind: uploads, model requests, eval results.") var router = "tcp://0.0.0.0:5560"
    @Option(help: "PUB bind: round announcements for observers.") var pub = "tcp://0.0.0.0:5561"
    @Option(help: "Cloud aggregator ROUTER (edge tier only).") var upstream: String?
    @Option(help: "Endpoint devices dial (default: the --router endpoint).") var advertise: String?
    @Option(help: "Checkpoint folder (resumes from it).") var checkpoint: String?
    @Option(help: "Telemetry proxy XSUB.") var telemetry: String?
    @Option(help: "Experiment file.") var config: String?
    @Option(help: "Write metrics.jsonl and summary.json into this folder.") var metrics: String?
    @Option(name: .customLong("heartbeat-ms"), help: "Heartbeat interval.") var heartbeatMs = 1000
    @Option(name: .customLong("synthetic-adapter"), help: "Benchmarks: a synthetic adapter of this many floats instead of the model's.") var syntheticAdapter: Int?
    @Flag(help: "Log only warnings.") var quiet = false
    @Flag(name: .customLong("no-eval"), help: "Skip validation rounds (benchmarks).") var noEval = false
    @Flag(help: "Check the configuration and exit.") var health = false
    @OptionGroup var curve: CurveOptions

    func validate() throws {
        guard tier == "cloud" || tier == "edge" else { throw ValidationError("--tier must be cloud or edge, got '\(tier)'") }
        guard heartbeatMs > 0 else { throw ValidationError("--heartbeat-ms must be positive, got \(heartbeatMs)") }
        if let n = syntheticAdapter, n <= 0 { throw ValidationError("--synthetic-adapter must be positive, got \(n)") }
    }

    func run() throws {
        let experiment = try config.map { try Experiment.load(path: $0) } ?? Experiment()
        let initial: LoRAAdapter
        if let n = syntheticAdapter {
            initial = LoRAAdapter(config: LoRAConfig(), layers: 0, tensors: [NamedTensor(name: "synthetic", shape: [n], values: [Float](repeating: 0, count: n))])
        } else {
            try requireModel(experiment.model)
            initial = try experiment.initialAdapter()
        }
        try curve.apply()
        BusContext.shared.maxInboundFrameBytes = serviceDecodeLimits.maxBytes
        if health { print("ok"); return }
        var o = AggregatorService.Options(manager: manager, router: router, pub: pub, experiment: experiment)
        o.tier = tier == "edge" ? .edge : .cloud; o.upstream = upstream
        o.id = id; o.advertise = advertise; o.checkpoint = checkpoint; o.telemetry = telemetry; o.metrics = metrics
        o.heartbeatMs = heartbeatMs; o.quiet = quiet; o.evaluate = !noEval
        let service = try AggregatorService(o, initial: initial)
        let done = DispatchSemaphore(value: 0)
        service.onFinish { done.signal() }
        service.start()
        done.wait()
        service.stop()
        // An edge exits right after relaying the last evaluation upstream: let libzmq send it.
        service.closeSockets()
        BusContext.shared.terminate(timeout: 2)
    }
}

do {
    AggregatorCommand.main(try EnvOptions.processArguments(knownFlags: AggregatorCommand.knownFlags))
} catch {
    AggregatorCommand.exit(withError: ValidationError("\(error)"))
}
