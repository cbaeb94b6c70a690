import ClusterManager
import ArgumentParser
import Experiments
import Wire
import FederatedRun
import Reports
import Foundation

/// `fi run`: one federated experiment, embedded (default, inproc://), as separate processes (--processes, tcp loopback), or
/// simulated on the virtual clock (`simulation: true` in the file).
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a federated fine-tuning experiment; writes <out>/metrics.jsonl and <out>/summary.json.")

    @Option(help: "Experiment file (YAML).") var config: String
    @Option(help: "Output folder.") var out: String
    @Flag(help: "Start cluster-manager, aggregator and device-worker executables over tcp loopback instead of one process.")
    var processes = false
    @Option(name: .customLong("bin-dir"), help: "Where the service executables are (default: next to fi).") var binDir: String?
    @Flag(help: "Log only warnings.") var quiet = false

    func run() throws {
        let experiment = try Experiment.load(path: config)
        try requireModel(experiment.model)
        var settings = FederatedRun.Settings(experiment: experiment, out: out)
        settings.quiet = quiet
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        // A fresh run: earlier metrics and checkpoints in this folder would be resumed or appended to.
        for f in ["metrics.jsonl", "summary.json", "checkpoints"] { try? FileManager.default.removeItem(atPath: out + "/" + f) }
        let start = Date()
        let data = try FederatedRun.prepareData(settings)
        let summary: RunSummary
        if processes && experiment.simulation {
            throw ValidationError("\(config) sets `simulation: true` (the virtual clock, in one process); drop --processes or the key")
        }
        if processes {
            let bin = binDir.map { URL(fileURLWithPath: $0) }
                ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
            summary = try FederatedRun.processes(settings, configPath: config, dataDir: data, binDir: bin)
        } else {
            summary = try FederatedRun.inProcess(settings, dataDir: data)
        }
        let before = summary.notes["initial_val_loss"] ?? "?"
        let after = summary.finalValLoss.sorted { $0.key < $1.key }.map { "\($0.key)=\(String(format: "%.4f", $0.value))" }.joined(separator: " ")
        print("\(experiment.name): \(summary.rounds) rounds, \(summary.devices) devices, wall \(String(format: "%.1f", Date().timeIntervalSince(start))) s, sim \(String(format: "%.1f", summary.simTimeSeconds)) s")
        print("val loss before: \(before)")
        print("val loss after:  \(after)")
        print("wrote \(out)/metrics.jsonl and \(out)/summary.json")
    }
}
