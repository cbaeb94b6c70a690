import ArgumentParser
import Experiments
import Federation
import FederatedRun
import Foundation
import Reports
import Yams

/// `fi bench poisoning`: each strategy's final mean validation loss with one poisoning participant beside the
/// experiment's honest device workers (processes over tcp, CURVE) against the same strategy's run without it
/// (embedded), measured in the same invocation.
struct BenchPoisoning: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "poisoning",
        abstract: "Final mean validation loss under an inflated, sign-flipped participant vs the same run without it, per strategy.")

    @Option(help: "Experiment file (its devices are the honest ones).") var config = "examples/quickstart.yaml"
    @Option(help: "Comma-separated strategies.") var strategies = "fedavg,krum,multi_krum,trimmed_mean,median,norm_bounded"
    @Option(help: "Rounds (overrides the experiment's).") var rounds: Int?
    @Option(name: .customLong("max-norm"), help: "norm_bounded's clip norm.") var maxNorm = 1.0
    @Option(help: "Output folder (one sub-folder per run).") var out = "runs/bench-poisoning"
    @Option(name: .customLong("bin-dir"), help: "Where the service executables are (default: next to fi).") var binDir: String?

    func run() throws {
        let bin = binDir.map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let base = try Experiment.load(path: config)
        var lines = ["strategy       clean   attacked  attacked/clean  attacker uploads"]
        for strategy in strategies.split(separator: ",").map(String.init) {
            var e = base
            e.federation.strategy = StrategySettings(name: strategy)
            e.federation.strategy.maxNorm = maxNorm
            if let rounds { e.federation.rounds = rounds }
            do { _ = try e.federation.strategy.make() } catch { throw ValidationError("--strategies: \(error)") }
            let honest = e.data.devices
            e.federation.quorum = honest
            let cleanDir = "\(out)/\(strategy)-clean"
            var cs = FederatedRun.Settings(experiment: e, out: cleanDir)
            cs.quiet = true
            let data = try FederatedRun.prepareData(cs)
            let clean = Loss.mean(try FederatedRun.embedded(cs, dataDir: data).finalValLoss)

            // Attacked: the same honest workers as processes, and rounds wait for the attacker too.
            e.federation.quorum = honest + 1
            let dir = "\(out)/\(strategy)-attacked"
            let path = try write(e, to: dir)
            var s = FederatedRun.Settings(experiment: e, out: dir)
            s.quiet = true
            let run = try ProcessRun(s, configPath: path, dataDir: data, binDir: bin, deviceWorkers: honest, extraClients: ["byzantine"])
            defer { run.stop() }
            let attacker = try ByzantineParticipant(managerEndpoint: run.managerEndpoint, keys: run.keys, key: "byzantine")
            attacker.start()
            defer { attacker.stop = true }
            let attacked = Loss.mean(try run.wait().finalValLoss)
            lines.append(String(format: "%-12@ %7.4f  %8.4f  %14.3f  %16d", strategy as NSString, clean, attacked, attacked / clean, attacker.uploads))
            FileHandle.standardError.write(Data((lines.last! + "\n").utf8))
        }
        print(lines.joined(separator: "\n"))
    }

    /// The experiment file with this run's federation overrides (the processes read --config).
    func write(_ e: Experiment, to dir: String) throws -> String {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/experiment.yaml"
        guard var root = try Yams.load(yaml: try String(contentsOfFile: config, encoding: .utf8)) as? [String: Any] else {
            throw ValidationError("\(config) is not a mapping")
        }
        var fed = root["federation"] as? [String: Any] ?? [:]
        fed["strategy"] = e.federation.strategy.name
        fed["max_norm"] = e.federation.strategy.maxNorm
        fed["quorum"] = e.federation.quorum
        fed["rounds"] = e.federation.rounds
        root["federation"] = fed
        try Yams.dump(object: root).write(toFile: path, atomically: true, encoding: .utf8)
        _ = try Experiment.load(path: path)
        return path
    }
}

enum Loss {
    static func mean(_ l: [String: Double]) -> Double { l.values.reduce(0, +) / Double(max(1, l.count)) }
}
