import ArgumentParser
import Bus
import Config
import Foundation

/// `fi tap`: prints every telemetry message; reports sequence gaps per sender.
struct TapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tap",
        abstract: "Subscribe to the telemetry proxy's XPUB and print each message (JSON lines with --json).",
        discussion: """
            Messages go to stdout, with a {"gap": ...} line (or a warning) when a sender's seq skips; seqs are \
            checked only when every kind is subscribed (no --topic, or --topic telemetry/), since a sender numbers \
            all its kinds together. Undecodable messages and the closing summary go to stderr. Every flag can also come from FI_<FLAG> (e.g. FI_CONNECT).
            """
    )
    static let knownFlags = ["--connect:endpoint", "--json:bool", "--topic", "--count:int", "--timeout:number"] + CurveOptions.knownFlags

    @Option(help: "The proxy's XPUB endpoint (e.g. tcp://127.0.0.1:5581). Env: FI_CONNECT.") var connect: String?
    @Option(name: .customLong("topic"), help: "Subscription prefix, e.g. telemetry/load/ (repeatable; default: everything).")
    var topics: [String] = []
    @Flag(help: "One JSON object per line. Env: FI_JSON=1.") var json = false
    @Option(help: "Exit after this many messages.") var count: Int?
    @Option(help: "Exit after this many seconds without a message.") var timeout: Double?
    @OptionGroup var curve: CurveOptions

    func run() throws {
        var given = connect.map { ["--connect", $0] } ?? []
        given += topics.flatMap { ["--topic", $0] } + (json ? ["--json"] : [])
        given += (count.map { ["--count", String($0)] } ?? []) + (timeout.map { ["--timeout", String($0)] } ?? []) + curve.arguments
        let r = try Self.parse(try EnvOptions.merge(arguments: given, environment: ProcessInfo.processInfo.environment,
                                                    knownFlags: Self.knownFlags))
        guard let endpoint = r.connect else { throw ValidationError("give --connect ENDPOINT or set FI_CONNECT (e.g. tcp://127.0.0.1:5581)") }
        if let c = r.count, c <= 0 { throw ValidationError("--count must be at least 1 (got \(c))") }
        if let t = r.timeout, !(t > 0) || !t.isFinite { throw ValidationError("--timeout must be a positive number of seconds (got \(t))") }

        try r.curve.apply()
        let options = TapOptions(connect: endpoint, topics: r.topics, json: r.json, count: r.count, timeout: r.timeout)
        try Tap.run(options, shutdown: .interruptOrTerminate()) { line in
            // Unbuffered, line by line, so a pipe (docker logs, a test) sees each message as it arrives.
            (line.diagnostic ? FileHandle.standardError : FileHandle.standardOutput).write(Data((line.text + "\n").utf8))
        }
    }
}
