import ArgumentParser
import Foundation
import Reports

/// `fi report <run dir> [--out FILE]`: a self-contained HTML report of an experiment directory.
struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a self-contained HTML report (inline SVG plots) of a run directory.")

    @Argument(help: "Run or experiment directory holding metrics.jsonl (or one sub-directory per paradigm).")
    var runDirectory: String

    @Option(help: "Output file (default: <run dir>/report.html).")
    var out: String?

    func run() throws {
        let path = try HTMLReport.write(runDirectory: URL(fileURLWithPath: runDirectory),
                                        to: out.map { URL(fileURLWithPath: $0) })
        print(path.path)
    }
}
