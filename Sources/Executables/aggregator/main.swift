import ArgumentParser
import Aggregator

struct AggregatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aggregator",
        abstract: "Aggregates adapter updates for one tier (edge or cloud)."
    )

    func run() throws {
        throw ValidationError("not implemented yet")
    }
}

AggregatorCommand.main()
