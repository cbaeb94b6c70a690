import ArgumentParser
import FederatedRun
import Foundation

/// `fi bench federation`: seconds per FedAvg round with echo devices as separate processes vs raw libzmq.
struct BenchFederation: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "federation",
        abstract: "Round overhead of cluster-manager + aggregator + N device-worker --echo processes vs raw libzmq moving the same bytes.")

    @Option(help: "Comma-separated device counts.") var devices = "2,10,50"
    @Option(help: "Adapter size in MB.") var mb = 4
    @Option(help: "Measured rounds per size (after two warm-up rounds).") var rounds = 5
    @Option(name: .customLong("bin-dir"), help: "Where the service executables are (default: next to fi).") var binDir: String?

    func run() throws {
        let counts = try devices.split(separator: ",").map { s -> Int in
            guard let n = Int(s.trimmingCharacters(in: .whitespaces)), n > 0 else { throw ValidationError("--devices: '\(s)' is not a positive integer") }
            return n
        }
        guard mb > 0, rounds > 0 else { throw ValidationError("--mb and --rounds must be positive") }
        let bin = binDir.map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let rows = try FederationBenchmark.run(devices: counts, bytes: mb << 20, rounds: rounds, binDir: bin) {
            FileHandle.standardError.write(Data(($0 + "\n").utf8))
        }
        print(FederationBenchmark.format(rows))
    }
}
