import ArgumentParser
import Engine

/// `fi bench engine`: training and generation throughput vs the sgemm peak of this machine.
struct BenchEngine: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "LoRA fine-tuning and generation tokens/s at tiny, small and GPT-2 small, vs cblas_sgemm peak.")

    @Option(help: "Timed training steps per config (0 = defaults: 30 / 10 / 3).")
    var steps = 0

    @Option(help: "Comma-separated config names to run (tiny, small, gpt2); default all.")
    var only: String?

    func run() throws {
        let names = only.map { Set($0.split(separator: ",").map(String.init)) }
        let report = try EngineBenchmark.run(steps: steps, only: names) { print($0) }
        // Reference points measured with PyTorch (2 threads) on this machine.
        let reference: [(String, Double)] = [("small (4L×256, byte)", 4600 * 1.5), ("gpt2-small (124M)", 191)]
        for (name, goal) in reference {
            if let row = report.rows.first(where: { $0.name == name }) {
                print("\(name): \(Int(row.trainTokensPerSecond)) tok/s vs goal \(Int(goal)) tok/s → ratio \(String(format: "%.2f", row.trainTokensPerSecond / goal))")
            }
        }
    }
}
