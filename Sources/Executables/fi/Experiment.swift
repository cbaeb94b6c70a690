import ArgumentParser
import FederatedRun
import Foundation

/// `fi experiment paper`: runs every examples/paper/*.yaml embedded and writes the paradigm comparison table.
struct ExperimentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "experiment", abstract: "Run a set of experiments and compare them.",
                                                    subcommands: [Paper.self])

    struct Paper: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run examples/paper/*.yaml into <out>/<name>/, then write <out>/table.md and table.json.")
        @Option(help: "Output folder.") var out = "runs/paper"
        @Option(help: "Folder with the experiment files.") var dir = "examples/paper"
        @Option(help: "Only these experiments (comma-separated names).") var only: String?
        @Option(help: "Override the rounds of every experiment (a reduced run).") var rounds: Int?
        @Option(name: .customLong("local-steps"), help: "Override local steps per round (a reduced run).") var localSteps: Int?

        func run() throws {
            var o = PaperExperiment.Options()
            o.out = out; o.directory = dir; o.rounds = rounds; o.localSteps = localSteps
            o.only = only.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? []
            let result = try PaperExperiment.run(o)
            print(result.comparison.markdown())
            for (name, why) in result.failures.sorted(by: { $0.key < $1.key }) { print("not run: \(name): \(why)") }
            print("wrote \(out)/table.md and \(out)/table.json")
        }
    }
}
