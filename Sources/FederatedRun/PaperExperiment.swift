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
        /// Runs every experiment this many times with seeds seed, seed+1, … (initialisation, data order, sampling) into
        /// `<out>/seed-<k>/<name>/`, and writes the mean and spread over them (`<out>/table.md`, `seeds.json`).
        public var seeds = 1
        /// ParadigmComparison.Settings.targetSet (nil: the paper's targets).
        public var targetSet: String?
        public var quiet = true
        public init() {}
    }

    public enum PaperError: Error, CustomStringConvertible {
        case badSeeds(Int)
        public var description: String {
            switch self { case .badSeeds(let n): return "--seeds must be at least 1, got \(n)" }
        }
    }

    public struct Outcome: Sendable {
        /// The comparison of the runs (with several seeds, the last seed's).
        public var comparison: ParadigmComparison
        /// Mean and spread over the seeds (only with several).
        public var spread: SeedSpread?
        /// Experiment name -> why it did not run.
        public var failures: [String: String]
    }

    public static func run(_ o: Options, log: (String) -> Void = { print($0) }) throws -> Outcome {
        guard o.seeds >= 1 else { throw PaperError.badSeeds(o.seeds) }
        guard o.seeds > 1 else { return try runOnce(o, seedOffset: 0, out: o.out, log: log) }
        var comparisons: [ParadigmComparison] = []
        var failures: [String: String] = [:]
        for k in 0..<o.seeds {
            log("=== seed \(k + 1) of \(o.seeds)")
            let r = try runOnce(o, seedOffset: UInt64(k), out: URL(fileURLWithPath: o.out).appendingPathComponent("seed-\(k + 1)").path, log: log)
            comparisons.append(r.comparison)
            for (name, why) in r.failures { failures["seed-\(k + 1)/\(name)"] = why }
        }
        let spread = SeedSpread(comparisons)
        try spread.write(to: URL(fileURLWithPath: o.out))
        return Outcome(comparison: comparisons.last!, spread: spread, failures: failures)
    }

    static func runOnce(_ o: Options, seedOffset: UInt64, out root: String, log: (String) -> Void) throws -> Outcome {
        let files = try FileManager.default.contentsOfDirectory(atPath: o.directory).filter { $0.hasSuffix(".yaml") }.sorted()
        let names = files.map { String($0.dropLast(5)) }.filter { o.only.isEmpty || o.only.contains($0) }
        var failures: [String: String] = [:]
        var fullModelBytes: Int?
        for name in names {
            let out = URL(fileURLWithPath: root).appendingPathComponent(name)
            do {
                var e = try Experiment.load(path: URL(fileURLWithPath: o.directory).appendingPathComponent(name + ".yaml").path)
                if let r = o.rounds { e.federation.rounds = r }
                if let s = o.localSteps { e.federation.localSteps = s }
                e.seed &+= seedOffset
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
                let summary = try FederatedRun.inProcess(s, dataDir: data)
                let mean = summary.finalValLoss.values.reduce(0, +) / Double(max(1, summary.finalValLoss.count))
                log(String(format: "   %@: final val loss %.4f, sim %.1f s, wall %.1f s%@", name, mean, summary.simTimeSeconds, summary.wallSeconds,
                           summary.ari.map { String(format: ", ARI %.3f", $0) } ?? ""))
            } catch {
                failures[name] = "\(error)"
                log("   \(name) did not run: \(error)")
                try? FileManager.default.removeItem(at: out.appendingPathComponent(RunFiles.metrics))
            }
        }
        var comparison = try ParadigmComparison.load(experiment: URL(fileURLWithPath: root),
                                                     settings: .init(fullModelBytes: fullModelBytes, targetSet: o.targetSet))
        comparison.machine = MachineInfo.summary
        try comparison.write(to: URL(fileURLWithPath: root))
        return Outcome(comparison: comparison, spread: nil, failures: failures)
    }
}
