import Foundation

/// One service started as a child process (optionally inside a network namespace), its output in a log file.
/// Stopped by its own PID: SIGTERM, then SIGKILL after a grace period. Used by the testbed and by tests that run
/// the executables.
public final class ServiceProcess: @unchecked Sendable {  // safe: Process is only driven from the caller's thread
    public let name: String
    public let process: Process
    public let log: URL

    /// Starts `executable` with `arguments`; with `namespace`, through `ip netns exec <namespace>`.
    public init(name: String, executable: URL, arguments: [String], namespace: String? = nil, environment: [String: String] = [:],
                logDirectory: URL) throws {
        self.name = name
        log = logDirectory.appendingPathComponent("\(name).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process = Process()
        if let ns = namespace {
            process.executableURL = URL(fileURLWithPath: NetworkTestbed.ipTool)
            process.arguments = ["netns", "exec", ns, executable.path] + arguments
        } else {
            process.executableURL = executable
            process.arguments = arguments
        }
        // FI_* variables of the caller would override flags' defaults in the child: pass only what is asked.
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("FI_") }
        for (k, v) in environment { env[k] = v }
        process.environment = env
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    /// What the service wrote so far.
    public var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    /// SIGTERM, then SIGKILL if it has not exited after `grace` seconds; waits for the exit.
    public func stop(grace: Double = 3) {
        guard process.isRunning else { return }
        kill(pid, SIGTERM)
        let end = Date().addingTimeInterval(grace)
        while process.isRunning && Date() < end { Thread.sleep(forTimeInterval: 0.01) }
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
    }

    /// Kills it at once (a crash, for failover tests).
    public func kill9() {
        guard process.isRunning else { return }
        kill(pid, SIGKILL)
        process.waitUntilExit()
    }

    /// The folder of the running executable (where `swift build` also put the services).
    public static func executablesNextTo(_ anchor: String = CommandLine.arguments[0], needing name: String) -> URL? {
        var candidates = [URL(fileURLWithPath: anchor).deletingLastPathComponent(), Bundle.main.bundleURL.deletingLastPathComponent()]
        for b in Bundle.allBundles where b.bundleURL.pathExtension == "xctest" { candidates.append(b.bundleURL.deletingLastPathComponent()) }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.appendingPathComponent(name).path) }
    }

    /// A TCP port that was free on `host` a moment ago: the kernel picks one for a bind to port 0, which is then
    /// released at once (a plain socket: ZeroMQ would release it asynchronously, racing the service that wants it).
    public static func freePort(host: String = "127.0.0.1") throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestbedError.command("socket()", "errno \(errno)") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr(host)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard bound else { throw TestbedError.command("bind(\(host):0)", "errno \(errno)") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
