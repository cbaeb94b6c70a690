import ArgumentParser
import Foundation
import InferenceRouter
import Reports

/// `fi bench router`: the router's plan choice against every candidate plan measured over emulated links.
struct BenchRouter: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "router",
        abstract: "Router plan choice vs the measured best plan (oracle), local only and cloud only, over a scenario grid.")

    @Option(help: "Write router.jsonl (Reports.RouterRecord lines) into this directory.") var out: String?
    @Option(help: "Prompt tokens.") var promptTokens = 6
    @Option(help: "New tokens per request.") var newTokens = 5
    @Option(help: "Only the first N scenarios of the grid.") var limit: Int?
    @Option(help: "Only scenarios whose name contains this text.") var only: String?

    func run() async throws {
        var grid = RouterBench.defaultGrid()
        if let only { grid = grid.filter { $0.name.contains(only) } }
        if let limit { grid = Array(grid.prefix(max(1, limit))) }
        let results = try await RouterBench.run(grid, promptTokens: promptTokens, newTokens: newTokens) { print($0) }
        print(RouterBench.format(results))
        if let out {
            let writer = try MetricsWriter(directory: URL(fileURLWithPath: out))
            for r in results {
                try writer.append(RouterRecord(scenario: r.scenario.name, chosenPlan: r.chosen.rawValue, chosenLatencySeconds: r.chosenSeconds,
                                               oraclePlan: r.oracle.kind.rawValue, oracleLatencySeconds: r.oracle.seconds,
                                               localLatencySeconds: r.measured[.local] ?? 0, cloudLatencySeconds: r.measured[.cloud] ?? 0))
            }
        }
    }
}
