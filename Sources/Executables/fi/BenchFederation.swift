import ArgumentParser
import FederatedRun
import Foundation

/// `fi bench federation`: seconds per FedAvg round with echo devices (no training), against a baseline measured in the
/// same run: raw libzmq for the device-worker processes, Flower's Ray simulation for the embedded device host.
struct BenchFederation: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "federation",
        abstract: "Round overhead of the federation services with echo devices: N device-worker processes vs raw libzmq, or (--embedded) one device host of N virtual devices in one process vs Flower's Ray simulation (--flower).")

    @Option(help: "Comma-separated device counts.") var devices = "2,10,50"
    @Option(help: "Adapter size in MB.") var mb = 4
    @Option(help: "Measured rounds per size (after two warm-up rounds).") var rounds = 5
    @Option(name: .customLong("bin-dir"), help: "Where the service executables are (default: next to fi).") var binDir: String?
    @Flag(help: "Everything in this process: cluster manager, aggregator and one device host of N echo devices (inproc://).")
    var embedded = false
    @Flag(help: "With --embedded: run Flower 1.42's Ray simulation of the same round beside it (.venv-flower, scripts/bench-venv --flower).")
    var flower = false
    @Option(name: .customLong("flower-rounds"), help: "Measured Flower rounds per size (after one warm-up round).") var flowerRounds = 3

    func run() throws {
        let counts = try devices.split(separator: ",").map { s -> Int in
            guard let n = Int(s.trimmingCharacters(in: .whitespaces)), n > 0 else { throw ValidationError("--devices: '\(s)' is not a positive integer") }
            return n
        }
        guard mb > 0, rounds > 0, flowerRounds > 0 else { throw ValidationError("--mb, --rounds and --flower-rounds must be positive") }
        guard !flower || embedded else { throw ValidationError("--flower compares with --embedded; add it") }
        func log(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }
        if embedded {
            var rows: [FederationBenchmark.EmbeddedRow] = []
            var peers: [Int: (secondsPerRound: Double, peakResidentBytes: Int?)] = [:]
            for n in counts {
                let row = try FederationBenchmark.embedded(devices: n, bytes: mb << 20, rounds: rounds)
                log(String(format: "N=%d embedded %.3f s/round, peak RSS %.0f MB", n, row.secondsPerRound, Double(row.peakResidentBytes) / 1e6))
                rows.append(row)
                if flower {
                    let f = try FederationBenchmark.flower(devices: n, mb: mb, rounds: flowerRounds)
                    log(String(format: "N=%d Flower %.3f s/round, driver peak RSS %.0f MB", n, f.secondsPerRound, Double(f.peakResidentBytes ?? 0) / 1e6))
                    peers[n] = f
                }
            }
            print(FederationBenchmark.formatEmbedded(rows, flower: peers))
            return
        }
        let bin = binDir.map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let rows = try FederationBenchmark.run(devices: counts, bytes: mb << 20, rounds: rounds, binDir: bin) { log($0) }
        print(FederationBenchmark.format(rows))
    }
}
