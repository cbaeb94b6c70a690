import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a run directory could not be written.
public enum MetricsWriterError: Error, Equatable, CustomStringConvertible {
    case cannotCreate(path: String, reason: String)
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .cannotCreate(let p, let r): return "cannot create \(p): \(r); check the --out directory and its permissions"
        case .writeFailed(let p, let r): return "cannot write \(p): \(r); is the disk full?"
        }
    }
}

/// Writes a run directory while the run goes on: each record is one JSON line handed to the
/// kernel at once (a crash loses at most the line being written), and summary.json is
/// replaced atomically (temp file + rename), so a reader never sees half a summary.
public final class MetricsWriter: @unchecked Sendable {  // safe: every mutable access holds `lock`
    public let directory: URL
    private let lock = NSLock()
    private var files: [String: Int32] = [:]
    private let encoder: JSONEncoder

    public init(directory: URL) throws {
        self.directory = directory
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw MetricsWriterError.cannotCreate(path: directory.path, reason: error.localizedDescription)
        }
        encoder = RunFiles.encoder()
    }

    deinit { for fd in files.values { close(fd) } }

    /// Appends one line to metrics.jsonl.
    public func append(_ record: MetricRecord) throws { try appendLine(record, to: RunFiles.metrics) }

    /// Appends one line to router.jsonl.
    public func append(_ record: RouterRecord) throws { try appendLine(record, to: RunFiles.router) }

    /// Appends any Encodable value as one JSON line to `file` inside the directory.
    public func appendLine<T: Encodable>(_ value: T, to file: String) throws {
        var data = try encoder.encode(value)
        data.append(UInt8(ascii: "\n"))
        lock.lock(); defer { lock.unlock() }
        let fd = try descriptor(for: file)
        try writeAll(fd, data, path: directory.appendingPathComponent(file).path)
    }

    /// Replaces summary.json atomically.
    public func writeSummary(_ summary: RunSummary) throws {
        let enc = RunFiles.encoder()
        enc.outputFormatting.insert(.prettyPrinted)
        let data = try enc.encode(summary)
        let target = directory.appendingPathComponent(RunFiles.summary)
        let temp = directory.appendingPathComponent(".\(RunFiles.summary).\(getpid()).tmp")
        lock.lock(); defer { lock.unlock() }
        let fd = open(temp.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else {
            throw MetricsWriterError.writeFailed(path: temp.path, reason: String(cString: strerror(errno)))
        }
        do {
            try writeAll(fd, data, path: temp.path)
            fsync(fd)
            close(fd)
        } catch {
            close(fd); unlink(temp.path); throw error
        }
        guard rename(temp.path, target.path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temp.path)
            throw MetricsWriterError.writeFailed(path: target.path, reason: reason)
        }
    }

    private func descriptor(for file: String) throws -> Int32 {
        if let fd = files[file] { return fd }
        let path = directory.appendingPathComponent(file).path
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard fd >= 0 else {
            throw MetricsWriterError.cannotCreate(path: path, reason: String(cString: strerror(errno)))
        }
        files[file] = fd
        return fd
    }

    private func writeAll(_ fd: Int32, _ data: Foundation.Data, path: String) throws {
        try data.withUnsafeBytes { (buf: UnsafeRawBufferPointer) in
            var offset = 0
            while offset < buf.count {
                let n = write(fd, buf.baseAddress! + offset, buf.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw MetricsWriterError.writeFailed(path: path, reason: String(cString: strerror(errno)))
                }
                offset += n
            }
        }
    }
}
