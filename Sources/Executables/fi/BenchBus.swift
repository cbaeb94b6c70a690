import ArgumentParser
import Bus

/// `fi bench bus`: Bus vs raw libzmq throughput, 64 B and 4 MB, inproc and tcp loopback.
struct BenchBus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bus",
        abstract: "Bus vs raw libzmq throughput (64 B and 4 MB messages over inproc and tcp loopback)."
    )

    @Option(help: "Messages per run for 64 B.") var smallCount = 200_000
    @Option(help: "Messages per run for 4 MB.") var largeCount = 400

    func run() throws {
        let rows = try BusBenchmark.run(BusBenchmark.defaultCases(smallCount: smallCount, largeCount: largeCount))
        print(BusBenchmark.format(rows))
    }
}
