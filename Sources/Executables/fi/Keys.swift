import ArgumentParser
import Bus
import Foundation

/// `fi keys`: CURVE key pairs for the authenticated, encrypted transport.
struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "CURVE key pairs: every service signs with its secret key and admits the public keys in its --curve-allow folder.",
        subcommands: [KeysGenerate.self])
}

struct KeysGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write NAME.key (public, Z85) and NAME.secret (mode 0600) into a folder.")

    @Option(name: .customLong("name"), help: "Key pair name (repeatable), e.g. server, device, host.") var names: [String] = []
    @Option(help: "Folder to write into (created when missing).") var out: String
    @Flag(name: .customLong("if-missing"), help: "Keep a pair that exists already instead of failing (restarts).") var ifMissing = false

    func validate() throws {
        guard !names.isEmpty else { throw ValidationError("give at least one --name NAME") }
        for n in names where n.isEmpty || n.hasPrefix(".") || !n.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }) {
            throw ValidationError("--name '\(n)' must be letters, digits, '.', '_' or '-' and not start with '.'")
        }
    }

    func run() throws {
        let dir = URL(fileURLWithPath: out)
        for name in names {
            let pair = try CurveKeyFile.generate(name: name, in: dir, keepExisting: ifMissing)
            print("\(name): \(pair.publicKey.z85)  (\(dir.appendingPathComponent(name).path).key, .secret)")
        }
    }
}
