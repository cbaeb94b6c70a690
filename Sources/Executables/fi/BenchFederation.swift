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
    @Flag(help: "Every service in this process over inproc (echo devices), beside the processes over tcp.") var embedded = false

    func run() throws {
        let counts = try devices.split(separator: ",").map { s -> Int in
            guard let n = Int(s.trimmingCharacters(in: .whitespaces)), n > 0 else { throw ValidationError("--devices: '\(s)' is not a positive integer") }
            return n
        }
        guard mb > 0, rounds > 0 else { throw ValidationError("--mb and --rounds must be positive") }
        let bin = binDir.map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        if embedded {
            var lines = ["devices  adapter  embedded s/round"]
            for n in counts {
                let s = try FederationBenchmark.embedded(devices: n, bytes: mb << 20, rounds: rounds)
                lines.append(String(format: "%7d  %4d MB  %16.4f", n, mb, s))
                FileHandle.standardError.write(Data(String(format: "N=%d embedded %.4f s/round\n", n, s).utf8))
            }
            if let row = counts.firstIndex(of: 50) {
                let s = Double(lines[row + 1].split(separator: " ").last ?? "") ?? .nan
                lines.append(String(format: "goal at N=50: <= 0.10 s/round (%@)", s <= 0.10 ? "ok" : "MISSED"))
            }
            print(lines.joined(separator: "\n"))
            return
        }
        let rows = try FederationBenchmark.run(devices: counts, bytes: mb << 20, rounds: rounds, binDir: bin) {
            FileHandle.standardError.write(Data(($0 + "\n").utf8))
        }
        print(FederationBenchmark.format(rows))
    }
}
