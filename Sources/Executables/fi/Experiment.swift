import ArgumentParser
import FederatedRun
import Foundation
import Reports

/// `fi experiment paper|quickstart`: a folder of experiment files run side by side, then their comparison.
struct ExperimentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "experiment", abstract: "Run a set of experiments and compare them.",
                                                    subcommands: [Paper.self, Quickstart.self])

    struct Paper: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run examples/paper/*.yaml into <out>/<name>/, then write <out>/table.md and table.json (--seeds N: into <out>/seed-<k>/, then the mean and spread in <out>/table.md).")
        @Option(help: "Output folder.") var out = "runs/paper"
        @Option(help: "Folder with the experiment files.") var dir = "examples/paper"
        @Option(help: "Only these experiments (comma-separated names).") var only: String?
        @Option(help: "Override the rounds of every experiment (a reduced run).") var rounds: Int?
        @Option(name: .customLong("local-steps"), help: "Override local steps per round (a reduced run).") var localSteps: Int?
        @Option(help: "Run everything with this many seeds (seed, seed+1, …) and report mean and spread.") var seeds = 1

        func validate() throws {
            guard seeds >= 1 else { throw ValidationError("--seeds must be at least 1, got \(seeds)") }
            if let r = rounds, r < 1 { throw ValidationError("--rounds must be at least 1, got \(r)") }
            if let s = localSteps, s < 1 { throw ValidationError("--local-steps must be at least 1, got \(s)") }
        }

        func run() throws {
            var o = PaperExperiment.Options()
            o.out = out; o.directory = dir; o.rounds = rounds; o.localSteps = localSteps; o.seeds = seeds
            o.only = only.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? []
            let result = try PaperExperiment.run(o)
            print(result.spread?.markdown() ?? result.comparison.markdown())
            for (name, why) in result.failures.sorted(by: { $0.key < $1.key }) { print("not run: \(name): \(why)") }
            print("wrote \(out)/table.md")
        }
    }

    /// The quickstart's story: FedAvg, clustered and local-only side by side on four domains new to the base.
    struct Quickstart: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run examples/quickstart (FedAvg, clustered, local-only; simulated, real training), print the comparison and write <out>/report.html.")
        @Option(help: "Output folder.") var out = "runs/quickstart"
        @Option(help: "Folder with the experiment files.") var dir = "examples/quickstart"
        @Option(help: "Override the rounds of every experiment.") var rounds: Int?

        func validate() throws {
            if let r = rounds, r < 1 { throw ValidationError("--rounds must be at least 1, got \(r)") }
        }

        func run() throws {
            var o = PaperExperiment.Options()
            o.out = out; o.directory = dir; o.rounds = rounds; o.targetSet = ParadigmComparison.Settings.quickstart
            let result = try PaperExperiment.run(o)
            let report = try HTMLReport.write(runDirectory: URL(fileURLWithPath: out))
            print("")
            print(result.comparison.terminalTable(), terminator: "")
            for (name, why) in result.failures.sorted(by: { $0.key < $1.key }) { print("not run: \(name): \(why)") }
            print("report: \(report.path) (table: \(out)/table.md)")
            if !result.failures.isEmpty { throw ExitCode.failure }
        }
    }
}
