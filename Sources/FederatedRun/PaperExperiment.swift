import ClusterManager
import Experiments
import Wire
import Engine
import Foundation
import Reports

/// `fi experiment paper`: every experiment file of a folder (examples/paper) run embedded into `<out>/<name>/`,
/// then the paradigm comparison (`table.md`, `table.json`) over those runs.
public enum PaperExperiment {
    public struct Options: Sendable {
        public var directory = "examples/paper"
        public var out = "runs/paper"
        /// Experiment names to run (file names without .yaml); empty = all.
        public var only: [String] = []
        /// Overrides federation.rounds (a reduced run), and local_steps when set.
        public var rounds: Int?
        public var localSteps: Int?
        public var quiet = true
        public init() {}
    }

    public struct Outcome: Sendable {
        public var comparison: ParadigmComparison
        /// Experiment name -> why it did not run.
        public var failures: [String: String]
    }

    public static func run(_ o: Options, log: (String) -> Void = { print($0) }) throws -> Outcome {
        let files = try FileManager.default.contentsOfDirectory(atPath: o.directory).filter { $0.hasSuffix(".yaml") }.sorted()
        let names = files.map { String($0.dropLast(5)) }.filter { o.only.isEmpty || o.only.contains($0) }
        var failures: [String: String] = [:]
        var fullModelBytes: Int?
        for name in names {
            let out = URL(fileURLWithPath: o.out).appendingPathComponent(name)
            do {
                var e = try Experiment.load(path: URL(fileURLWithPath: o.directory).appendingPathComponent(name + ".yaml").path)
                if let r = o.rounds { e.federation.rounds = r }
                if let s = o.localSteps { e.federation.localSteps = s }
                try requireModel(e.model)
                if fullModelBytes == nil, let c = try? LanguageModel.loadConfig(URL(fileURLWithPath: e.model)) {
                    fullModelBytes = (try? LanguageModel(config: c, seed: 0).parameterCount).map { $0 * 4 }
                }
                try? FileManager.default.removeItem(at: out)
                try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
                var s = FederatedRun.Settings(experiment: e, out: out.path)
                s.quiet = o.quiet
                log("== \(name): \(e.federation.paradigm), \(e.data.devices) devices, \(e.federation.rounds) rounds × \(e.federation.localSteps) steps")
                let data = try FederatedRun.prepareData(s)
                let summary = try FederatedRun.embedded(s, dataDir: data)
                let mean = summary.finalValLoss.values.reduce(0, +) / Double(max(1, summary.finalValLoss.count))
                log(String(format: "   %@: final val loss %.4f, sim %.1f s, wall %.1f s%@", name, mean, summary.simTimeSeconds, summary.wallSeconds,
                           summary.ari.map { String(format: ", ARI %.3f", $0) } ?? ""))
            } catch {
                failures[name] = "\(error)"
                log("   \(name) did not run: \(error)")
                try? FileManager.default.removeItem(at: out.appendingPathComponent(RunFiles.metrics))
            }
        }
        let comparison = try ParadigmComparison.load(experiment: URL(fileURLWithPath: o.out),
                                                     settings: .init(fullModelBytes: fullModelBytes))
        try comparison.write(to: URL(fileURLWithPath: o.out))
        return Outcome(comparison: comparison, failures: failures)
    }
}
