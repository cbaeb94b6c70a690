import Foundation

/// Resident memory of a process from /proc/<pid>/status: VmRSS (now) and VmHWM (peak), in bytes.
public enum ProcessMemory {
    public struct Resident: Sendable, Equatable {
        public var current: Int
        public var peak: Int
    }

    /// This process (nil pid) or another one; nil where /proc is unavailable or the process is gone.
    public static func resident(pid: Int32? = nil) -> Resident? {
        let path = "/proc/\(pid.map(String.init) ?? "self")/status"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        func kB(_ key: String) -> Int? {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }) else { return nil }
            return line.split(separator: " ").compactMap { Int($0) }.first.map { $0 * 1024 }
        }
        guard let rss = kB("VmRSS"), let hwm = kB("VmHWM") else { return nil }
        return Resident(current: rss, peak: hwm)
    }
}
