import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A progress bar for long jobs (pretraining, experiments):
///
///     pretrain [########------------] 42% 12/30 ETA 0:35 | loss 2.31
///
/// On a terminal it redraws one line with \r (at most every `redrawInterval` seconds).
/// Otherwise (CI logs, pipes) it prints a plain line each time progress crosses another
/// `logEveryPercent`, so logs stay short. Safe to call from any thread.
public final class ProgressBar: @unchecked Sendable {  // safe: every mutable access holds `lock`
    public let total: Int
    public let label: String
    public let width: Int
    public let isTerminal: Bool
    public let logEveryPercent: Int
    public let redrawInterval: Double

    private let lock = NSLock()
    private let sink: @Sendable (String) -> Void
    private let clock: @Sendable () -> Double
    private let start: Double
    private var completed = 0
    private var status = ""
    private var lastDraw = -Double.infinity
    private var lastLoggedStep = 0
    private var lastLogged = ""  // "completed|status" of the last plain line
    private var finished = false

    /// - Parameters:
    ///   - isTerminal: nil asks isatty(stderr).
    ///   - sink: where text goes (default: stderr). Tests pass a collector.
    ///   - clock: seconds, monotonic (default: the system's monotonic clock).
    public init(total: Int, label: String, width: Int = 20, isTerminal: Bool? = nil,
                logEveryPercent: Int = 10, redrawInterval: Double = 0.1,
                sink: (@Sendable (String) -> Void)? = nil, clock: (@Sendable () -> Double)? = nil) {
        self.total = max(total, 0)
        self.label = label
        self.width = max(width, 1)
        self.isTerminal = isTerminal ?? (isatty(STDERR_FILENO) != 0)
        self.logEveryPercent = min(max(logEveryPercent, 1), 100)
        self.redrawInterval = redrawInterval
        self.sink = sink ?? { FileHandle.standardError.write(Foundation.Data($0.utf8)) }
        self.clock = clock ?? { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
        self.start = self.clock()
    }

    /// Adds `n` finished units; `status` (e.g. "loss 2.31") replaces the text after the bar.
    public func advance(by n: Int = 1, status: String? = nil) {
        lock.lock(); defer { lock.unlock() }
        update(completed + n, status)
    }

    /// Sets the number of finished units.
    public func set(completed: Int, status: String? = nil) {
        lock.lock(); defer { lock.unlock() }
        update(completed, status)
    }

    /// Draws the final state and ends the line. Later calls do nothing.
    public func finish(status: String? = nil) {
        lock.lock(); defer { lock.unlock() }
        guard !finished else { return }
        if let status { self.status = status }
        finished = true
        let line = Self.render(label: label, completed: completed, total: total,
                               elapsed: clock() - start, width: width, status: self.status)
        if isTerminal {
            sink("\r" + line + "\n")
        } else if "\(completed)|\(self.status)" != lastLogged {  // the 100% line may be logged already
            sink(line + "\n")
        }
    }

    private func update(_ value: Int, _ newStatus: String?) {
        guard !finished else { return }
        completed = min(max(value, 0), total == 0 ? max(value, 0) : total)
        if let newStatus { status = newStatus }
        let now = clock()
        let line = Self.render(label: label, completed: completed, total: total,
                               elapsed: now - start, width: width, status: status)
        if isTerminal {
            guard now - lastDraw >= redrawInterval || completed == total else { return }
            lastDraw = now
            sink("\r" + line + "\u{1B}[K")
        } else {
            let step = Self.percent(completed, total) / logEveryPercent
            guard step > lastLoggedStep else { return }
            lastLoggedStep = step
            lastLogged = "\(completed)|\(status)"
            sink(line + "\n")
        }
    }

    // MARK: formatting (pure, pinned by tests)

    /// Whole percent done, rounded down; 100 when total is 0.
    public static func percent(_ completed: Int, _ total: Int) -> Int {
        total <= 0 ? 100 : min(100, max(0, completed * 100 / total))
    }

    /// Seconds left at the average rate so far; nil before the first unit.
    public static func eta(completed: Int, total: Int, elapsed: Double) -> Double? {
        guard completed > 0, elapsed.isFinite, elapsed >= 0 else { return nil }
        return elapsed / Double(completed) * Double(max(total - completed, 0))
    }

    /// m:ss below an hour, h:mm:ss above, "--:--" when unknown.
    public static func formatDuration(_ seconds: Double?) -> String {
        guard let seconds, seconds.isFinite, seconds >= 0 else { return "--:--" }
        let s = Int(seconds.rounded())
        let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60)
        return h > 0 ? String(format: "%d:%02d:%02d", h, m, sec) : String(format: "%d:%02d", m, sec)
    }

    /// `label [####------] 42% 12/30 ETA 0:35 | status`
    public static func render(label: String, completed: Int, total: Int, elapsed: Double,
                              width: Int, status: String = "") -> String {
        let pct = percent(completed, total)
        let filled = total <= 0 ? width : min(width, max(0, completed * width / total))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let time = completed >= total && total > 0
            ? "in " + formatDuration(elapsed)
            : "ETA " + formatDuration(eta(completed: completed, total: total, elapsed: elapsed))
        var line = "\(label) [\(bar)] \(pct)% \(completed)/\(total) \(time)"
        if !status.isEmpty { line += " | " + status }
        return line
    }
}

extension ProgressBar {
    /// The status of a federated run after record `r`: `round 3/20 · 100 sampled · sim 12:34 · val 2.1234`.
    public static func roundStatus(_ r: MetricRecord, rounds: Int) -> String {
        let val = r.valLoss.isEmpty ? "-" : String(format: "%.4f", r.valLoss.values.reduce(0, +) / Double(r.valLoss.count))
        return "round \(r.round)/\(rounds) · \(r.participants) sampled · sim \(formatDuration(r.simTimeSeconds)) · val \(val)"
    }
}
