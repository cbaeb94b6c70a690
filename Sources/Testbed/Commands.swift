import Foundation

/// What went wrong building or running a testbed; each case says what to do.
public enum TestbedError: Error, CustomStringConvertible, Equatable {
    /// An `ip` / `tc` command failed: the command line and its output.
    case command(String, String)
    /// The testbed needs root (network namespaces, qdiscs).
    case notRoot
    /// A scenario file that does not describe a testbed.
    case badScenario(String)
    /// A service did not come up.
    case serviceFailed(String, String)

    public var description: String {
        switch self {
        case .command(let cmd, let out): "`\(cmd)` failed: \(out.trimmingCharacters(in: .whitespacesAndNewlines))"
        case .notRoot: "the testbed needs root for ip netns and tc (CI runs as root; use sudo)"
        case .badScenario(let why): "testbed scenario: \(why)"
        case .serviceFailed(let name, let log): "\(name) did not come up; its log:\n\(log)"
        }
    }
}

/// Runs the iproute2 tools.
public enum Shell {
    /// Runs `tool args…`, returns its output; throws `TestbedError.command` on a non-zero exit.
    @discardableResult
    public static func run(_ tool: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        do { try p.run() } catch { throw TestbedError.command(([tool] + args).joined(separator: " "), "\(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let out = String(decoding: data, as: UTF8.self)
        guard p.terminationStatus == 0 else { throw TestbedError.command(([tool] + args).joined(separator: " "), out) }
        return out
    }

    public static func which(_ name: String) -> String {
        for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
            return "\(dir)/\(name)"
        }
        return name
    }
}
