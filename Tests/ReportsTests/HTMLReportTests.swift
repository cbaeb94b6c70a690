import Foundation
import Reports
import XCTest

/// Counts occurrences of `needle` in `haystack`.
func count(_ needle: String, in haystack: String) -> Int {
    haystack.components(separatedBy: needle).count - 1
}

final class HTMLReportTests: XCTestCase {
    func testReportRendersEverySeriesOfTheFixture() throws {
        let html = HTMLReport.render(try RunDirectory.load(fixtures.appendingPathComponent("experiment")))
        // Per paradigm: 3 domains × (by round + by sim time) = 6 lines; plus 2 in the comparison chart.
        XCTAssertEqual(count("<polyline class=\"series\"", in: html), 14)
        // Points: 2 paradigms × 2 charts × 3 domains × 10 rounds, 2 × 10 compared, 6 router requests.
        XCTAssertEqual(count("<circle class=\"point\"", in: html), 120 + 20 + 6)
        for domain in ["bible", "fortunes", "manpages"] {
            XCTAssertEqual(count("<polyline class=\"series\" data-series=\"\(domain)\"", in: html), 4, domain)
        }
        for paradigm in ["fedavg", "clustered"] {
            XCTAssertEqual(count("<polyline class=\"series\" data-series=\"\(paradigm)\"", in: html), 1)
            XCTAssertTrue(html.contains("<h2>\(paradigm)</h2>"), paradigm)
        }
        // Bytes: 2 paradigms × 2 tiers; router: 2 scenarios × 4 strategies.
        XCTAssertEqual(count("<rect class=\"bar\" data-series=\"device\"", in: html), 2)
        XCTAssertEqual(count("<rect class=\"bar\" data-series=\"cloud\"", in: html), 2)
        XCTAssertEqual(count("<rect class=\"bar\" data-series=\"oracle\"", in: html), 2)
        XCTAssertEqual(count("<rect class=\"bar\"", in: html), 4 + 8)
        // Cluster grid: 6 devices × 10 rounds, only for the clustered run; 3 clusters in the legend.
        XCTAssertEqual(count("<rect class=\"cell\"", in: html), 60)
        XCTAssertEqual(count("data-cluster=\"2\"", in: html), 16)  // dev-2 and dev-5 from round 3
        for name in ["cluster 0", "cluster 1", "cluster 2", "router", "oracle", "local only", "cloud only",
                     "good-channel", "congested-edge"] {
            XCTAssertTrue(html.contains("<text x=") && html.contains(">\(name)</text></g>"), name)
        }
        // Self-contained: no scripts, no external references.
        XCTAssertFalse(html.contains("<script"))
        XCTAssertFalse(html.contains("src="))
        XCTAssertFalse(html.contains("href="))
        XCTAssertTrue(html.hasPrefix("<!DOCTYPE html>"))
    }

    func testWriteDefaultsToReportHTMLInTheRunDirectory() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let writer = try MetricsWriter(directory: dir.appendingPathComponent("fedavg"))
        try writer.append(MetricRecord(round: 1, tier: .cloud, valLoss: ["x<y": 2]))
        try writer.append(MetricRecord(round: 2, tier: .cloud, valLoss: ["x<y": 1]))
        let out = try HTMLReport.write(runDirectory: dir)
        XCTAssertEqual(out.lastPathComponent, "report.html")
        let html = try String(contentsOf: out, encoding: .utf8)
        XCTAssertEqual(count("<polyline class=\"series\" data-series=\"x&lt;y\"", in: html), 2)
        XCTAssertFalse(html.contains("x<y"), "domain names are escaped")
    }

    func testNiceAxisTicks() {
        XCTAssertEqual(Axis.nice(0.3, 9.7).ticks, [0, 2, 4, 6, 8, 10])
        // Range 1.25 over 5 ticks: step 0.25 rounds up to 0.5; over 10 ticks: 0.125 → 0.2.
        XCTAssertEqual(Axis.nice(2.05, 3.3).ticks, [2, 2.5, 3, 3.5])
        XCTAssertEqual(Axis.nice(2.05, 3.3, target: 10).ticks.count, 8)  // 2.0, 2.2, …, 3.4
        let flat = Axis.nice(5, 5)
        XCTAssertLessThan(flat.lo, 5)
        XCTAssertGreaterThan(flat.hi, 5)
    }
}
