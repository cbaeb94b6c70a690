import Foundation
import Reports
import XCTest

/// `fi report` inputs besides a plain run: an experiment folder with table.json, and a router benchmark folder.
final class ReportDirectoryKindsTests: XCTestCase {
    func tempCopy(of fixture: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("report-kinds-\(UUID().uuidString.prefix(8))")
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent(fixture), to: dir)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func testExperimentReportIncludesTheParadigmComparisonTable() throws {
        let dir = try tempCopy(of: "experiment")
        let comparison = try ParadigmComparison.load(experiment: dir)
        try comparison.write(to: dir)
        let loaded = try RunDirectory.load(dir)
        XCTAssertEqual(loaded.comparison, comparison)
        let html = HTMLReport.render(loaded)
        XCTAssertTrue(html.contains("<h2>Paradigm comparison</h2>"))
        for p in comparison.paradigms {
            XCTAssertTrue(html.contains("<tr><td>\(p.paradigm)</td><td>\(p.rounds)</td><td>\(String(format: "%.4f", p.finalValLoss ?? .nan))</td>"), p.paradigm)
        }
        let met = comparison.targets.filter { $0.status == .met }.count
        XCTAssertTrue(html.contains("Targets: \(met) of \(comparison.targets.count) met"))
        XCTAssertEqual(count("<table class=\"targets\">", in: html), comparison.targets.isEmpty ? 0 : 1)
    }

    func testExperimentFolderWithoutTableJSONGetsTheComparisonComputed() throws {
        let dir = try tempCopy(of: "experiment")
        let html = try String(contentsOf: try HTMLReport.write(runDirectory: dir), encoding: .utf8)
        let comparison = try ParadigmComparison.load(experiment: dir)
        XCTAssertTrue(html.contains("<h2>Paradigm comparison</h2>"))
        XCTAssertTrue(html.contains("Targets: \(comparison.targets.filter { $0.status == .met }.count) of \(comparison.targets.count) met"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("table.json").path), "the report writes only report.html")
    }

    func testMalformedComparisonTableNamesTheFile() throws {
        let dir = try tempCopy(of: "experiment")
        try "{\"paradigms\": 3}".write(to: dir.appendingPathComponent("table.json"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try RunDirectory.load(dir)) { error in
            XCTAssertTrue("\(error)".contains("table.json"), "\(error)")
        }
    }

    func testRouterBenchmarkFolderWithOnlyRouterJSONLRendersTheRoutingCharts() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("report-router-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("experiment/router.jsonl"), to: dir.appendingPathComponent("router.jsonl"))
        let out = try HTMLReport.write(runDirectory: dir)
        let html = try String(contentsOf: out, encoding: .utf8)
        XCTAssertTrue(html.contains("<h2>Inference routing</h2>"))
        XCTAssertFalse(html.contains("<h2>Summary</h2>"), "no federation runs, no summary table")
        XCTAssertEqual(count("<circle class=\"point\"", in: html), 6)
        XCTAssertEqual(count("<rect class=\"bar\" data-series=\"oracle\"", in: html), 2)
    }

    /// `fi run` writes round 0 (the evaluation before training, no participants): it is no round of its own.
    func testSummaryCountsTrainingRoundsWithoutTheInitialEvaluation() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("report-rounds-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let lines = (0...2).map { r in
            #"{"round":\#(r),"tier":"cloud","paradigm":"fedavg","participants":\#(r == 0 ? 0 : 4),"dropped":0,"bytes_up":0,"bytes_down":0,"#
                + #""val_loss":{"a":\#(2.0 - 0.1 * Double(r))},"wall_s":\#(r),"sim_time_s":\#(r)}"#
        }
        try lines.joined(separator: "\n").write(to: dir.appendingPathComponent("metrics.jsonl"), atomically: true, encoding: .utf8)
        let html = HTMLReport.render(try RunDirectory.load(dir))
        XCTAssertTrue(html.contains("<tr><td>fedavg</td><td>2</td><td>1.8000</td>"), html)
        XCTAssertTrue(html.contains("<td>4.0</td>"), "participants per training round")
    }

    func testEmptyFolderIsStillAnError() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("report-empty-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        XCTAssertThrowsError(try RunDirectory.load(dir)) { XCTAssertEqual($0 as? RunDirectoryError, .noRuns(path: dir.path)) }
    }
}
