import COpenBLAS
import Foundation

/// What a measured number ran on: results files record it, so a number from another machine can be told apart.
public enum MachineInfo {
    /// The CPU's model name (/proc/cpuinfo), or "unknown".
    public static var cpuModel: String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
              let colon = line.firstIndex(of: ":") else { return "unknown" }
        return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }

    /// The kernel set OpenBLAS chose for this CPU at run time (e.g. "Haswell") and its build configuration.
    public static var blasKernel: String {
        let core = openblas_get_corename().map { String(cString: $0) } ?? "unknown"
        let config = openblas_get_config().map { String(cString: $0) } ?? ""
        return config.isEmpty ? "OpenBLAS \(core)" : "OpenBLAS \(core) (\(config.trimmingCharacters(in: .whitespaces)))"
    }

    /// One line for a results file: `CPU: …; BLAS: …; cores: N`.
    public static var summary: String {
        "CPU: \(cpuModel); BLAS: \(blasKernel); cores: \(ProcessInfo.processInfo.activeProcessorCount)"
    }
}
