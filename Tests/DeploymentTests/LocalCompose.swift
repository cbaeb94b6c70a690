import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs a compose file's services as local processes, the way docker-compose runs containers,
/// but without Docker: each service's command runs from the build folder with its environment,
/// service hosts become 127.0.0.1 and every (service, container port) gets its own free port,
/// and container paths (volumes, image folders) become folders under `root`.
/// Everything started is killed by PID in `down()`, never by name.
final class LocalCompose {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    struct Replica {
        var service: String
        var index: Int
        var process: Process
        var log: URL
    }

    let file: ComposeFile
    let binDir: URL
    let root: URL
    /// Container folders that come from the image (e.g. /opt/fi -> a folder with examples/ and models/).
    let image: [String: URL]
    private(set) var replicas: [Replica] = []
    private var ports: [String: Int] = [:]

    init(file: ComposeFile, binDir: URL, root: URL, image: [String: URL]) {
        self.file = file; self.binDir = binDir; self.root = root; self.image = image
    }

    func volumeDirectory(_ name: String) -> URL { root.appendingPathComponent("volumes/\(name)") }
    func logDirectory() -> URL { root.appendingPathComponent("logs") }

    /// The host port standing for `port` of `service` (allocated on first use).
    func hostPort(_ service: String, _ port: Int) throws -> Int {
        let key = "\(service):\(port)"
        if let p = ports[key] { return p }
        let p = try Self.freePort()
        ports[key] = p
        return p
    }

    // MARK: rewriting container strings to local ones

    /// Container path -> host path for one service: its volume targets and the image folders, longest first.
    func pathMap(_ s: ComposeFile.Service) -> [(String, String)] {
        var map = image.map { ($0.key, $0.value.path) }
        for v in s.volumes {
            switch v.source {
            case .named(let n): map.append((v.target, volumeDirectory(n).path))
            case .bind(let url): map.append((v.target, url.path))
            }
        }
        return map.sorted { $0.0.count > $1.0.count }
    }

    func rewrite(_ value: String, for s: ComposeFile.Service, pid: Int32? = nil) throws -> String {
        var v = try replace(#"tcp://([A-Za-z0-9._-]+):([0-9]+)"#, in: value) { g in
            let host = g[1], port = Int(g[2]) ?? 0
            let owner = ["0.0.0.0", "127.0.0.1", "localhost", "*"].contains(host) ? s.name : host
            guard file.services[owner] != nil else { throw Failure(description: "\(s.name): endpoint host '\(host)' is no service") }
            return "tcp://127.0.0.1:\(try hostPort(owner, port))"
        }
        v = try replace(#"/dev/tcp/127\.0\.0\.1/([0-9]+)"#, in: v) { g in "/dev/tcp/127.0.0.1/\(try hostPort(s.name, Int(g[1]) ?? 0))" }
        if let pid { v = try replace(#"kill -0 1\b"#, in: v) { _ in "kill -0 \(pid)" } }
        for (container, host) in pathMap(s) {
            if v == container { return host }
            if v.hasPrefix(container + "/") { return host + v.dropFirst(container.count) }
        }
        return v
    }

    private func replace(_ pattern: String, in s: String, _ make: ([String]) throws -> String) throws -> String {
        let re = try NSRegularExpression(pattern: pattern)
        let ns = s as NSString
        var out = "", last = 0
        for m in re.matches(in: s, range: NSRange(location: 0, length: ns.length)) {
            out += ns.substring(with: NSRange(location: last, length: m.range.location - last))
            let groups = (0..<m.numberOfRanges).map { m.range(at: $0).location == NSNotFound ? "" : ns.substring(with: m.range(at: $0)) }
            out += try make(groups)
            last = m.range.location + m.range.length
        }
        return out + ns.substring(from: last)
    }

    func environment(_ s: ComposeFile.Service, pid: Int32? = nil) throws -> [String: String] {
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("FI_") }
        env["PATH"] = binDir.path + ":" + (env["PATH"] ?? "/usr/bin:/bin")
        env["OPENBLAS_NUM_THREADS"] = "1"
        for (k, v) in s.environment { env[k] = try rewrite(v, for: s, pid: pid) }
        return env
    }

    // MARK: processes

    /// Starts one replica of a service; stdout and stderr go to logs/<service>-<i>.out / .err.
    @discardableResult
    func start(_ s: ComposeFile.Service, index: Int = 0, extraEnvironment: [String: String] = [:]) throws -> Replica {
        guard let exe = s.command.first else { throw Failure(description: "\(s.name) has no command") }
        let p = Process()
        p.executableURL = binDir.appendingPathComponent(exe)
        guard FileManager.default.isExecutableFile(atPath: p.executableURL!.path) else {
            throw Failure(description: "\(exe) (service \(s.name)) is not in \(binDir.path): run swift build --build-tests")
        }
        p.arguments = try s.command.dropFirst().map { try rewrite($0, for: s) }
        var env = try environment(s)
        for (k, v) in extraEnvironment { env[k] = v }
        p.environment = env
        let cwd = try s.workingDir.map { try rewrite($0, for: s) }
        if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        try FileManager.default.createDirectory(at: logDirectory(), withIntermediateDirectories: true)
        let log = logDirectory().appendingPathComponent("\(s.name)-\(index)")
        p.standardOutput = try Self.logHandle(log.appendingPathExtension("out"))
        p.standardError = try Self.logHandle(log.appendingPathExtension("err"))
        try p.run()
        let r = Replica(service: s.name, index: index, process: p, log: log)
        replicas.append(r)
        return r
    }

    /// Runs the service's health check once (as docker would, inside the container: its env, its PID).
    func healthy(_ r: Replica) throws -> Bool {
        guard let s = file.services[r.service], let test = s.healthcheck, let kind = test.first else { return r.process.isRunning }
        let argv: [String]
        switch kind {
        case "CMD": argv = Array(test.dropFirst())
        case "CMD-SHELL": argv = ["sh", "-c"] + test.dropFirst()
        default: throw Failure(description: "\(s.name): health check kind \(kind)")
        }
        let pid = r.process.processIdentifier
        let (status, _) = try Self.run(["/usr/bin/env"] + argv.map { try rewrite($0, for: s, pid: pid) }, environment: try environment(s, pid: pid),
                                       timeout: 10)
        return status == 0
    }

    func waitHealthy(_ r: Replica, timeout: Double) throws {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if !r.process.isRunning { throw Failure(description: "\(r.service) exited with \(r.process.terminationStatus): \(tail(r))") }
            if try healthy(r) { return }
            Thread.sleep(forTimeInterval: 0.2)
        }
        throw Failure(description: "\(r.service) did not become healthy within \(Int(timeout)) s: \(tail(r))")
    }

    /// `up`: the active services in dependency order, each started once its depends_on conditions hold.
    /// Starts every service in dependency order; `started` runs after each replica starts, before the next service.
    func up(scale: [String: Int] = [:], first: [String] = [], timeout: Double = 30, started: (Replica) throws -> Void = { _ in }) throws {
        for s in try file.startOrder(first: first) {
            for (dep, condition) in s.dependsOn {
                for r in replicas where r.service == dep {
                    switch condition {
                    case "service_healthy": try waitHealthy(r, timeout: timeout)
                    case "service_completed_successfully":
                        let end = Date().addingTimeInterval(timeout)
                        while r.process.isRunning && Date() < end { Thread.sleep(forTimeInterval: 0.05) }
                        guard !r.process.isRunning, r.process.terminationStatus == 0 else {
                            throw Failure(description: "\(dep) did not complete successfully: \(tail(r))")
                        }
                    default: break
                    }
                }
            }
            for i in 0..<(scale[s.name] ?? 1) { try started(try start(s, index: i)) }
        }
    }

    /// SIGTERM to every replica still running, SIGKILL after 3 s, then reap them all.
    func down() {
        for r in replicas where r.process.isRunning { kill(r.process.processIdentifier, SIGTERM) }
        let end = Date().addingTimeInterval(3)
        while replicas.contains(where: { $0.process.isRunning }) && Date() < end { Thread.sleep(forTimeInterval: 0.05) }
        for r in replicas where r.process.isRunning { kill(r.process.processIdentifier, SIGKILL) }
        for r in replicas { r.process.waitUntilExit() }
    }

    func tail(_ r: Replica) -> String {
        let err = (try? String(contentsOf: r.log.appendingPathExtension("err"), encoding: .utf8)) ?? ""
        return String(err.suffix(800))
    }

    // MARK: helpers

    static func logHandle(_ url: URL) throws -> FileHandle {
        FileManager.default.createFile(atPath: url.path, contents: nil)
        return try FileHandle(forWritingTo: url)
    }

    /// Runs a command to the end (killed by PID after `timeout`); returns its status and stdout + stderr.
    static func run(_ argv: [String], environment: [String: String]? = nil, timeout: Double) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        if let environment { p.environment = environment }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("deploy-\(UUID().uuidString).log")
        let h = try logHandle(out)
        defer { try? h.close(); try? FileManager.default.removeItem(at: out) }
        p.standardOutput = h
        p.standardError = h
        try p.run()
        let end = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < end { Thread.sleep(forTimeInterval: 0.02) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        return (p.terminationStatus, (try? String(contentsOf: out, encoding: .utf8)) ?? "")
    }

    /// A TCP port the kernel reports free on 127.0.0.1 (bound to port 0, read back, released).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket() failed") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { ptr in
            ptr.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { throw Failure(description: "could not bind a free port") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
