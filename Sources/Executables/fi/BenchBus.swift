import ArgumentParser
import Bus

/// `fi bench bus`: Bus vs raw libzmq throughput, 64 B and 4 MB, inproc and tcp loopback; `--curve`: CURVE vs plaintext.
struct BenchBus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bus",
        abstract: "Bus vs raw libzmq throughput (64 B and 4 MB messages over inproc and tcp loopback).",
        discussion: "--curve instead measures CURVE against plaintext over tcp loopback (Bus API on both sides, separate contexts)."
    )

    @Option(help: "Messages per run for 64 B.") var smallCount = 200_000
    @Option(help: "Messages per run for 4 MB.") var largeCount = 400
    @Flag(help: "CURVE vs plaintext throughput at 64 B and 4 MB, measured alternately in the same run.") var curve = false

    func run() throws {
        if curve {
            print(CurveBenchmark.format(try CurveBenchmark.run(smallCount: smallCount, largeCount: largeCount)))
            return
        }
        let rows = try BusBenchmark.run(BusBenchmark.defaultCases(smallCount: smallCount, largeCount: largeCount))
        print(BusBenchmark.format(rows))
    }
}
