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
        // Per paradigm: 3 domains × (by round + by sim time) + 1 device-tier training loss = 7 lines;
        // plus 2 in the comparison chart.
        XCTAssertEqual(count("<polyline class=\"series\"", in: html), 16)
        XCTAssertEqual(count("<polyline class=\"series\" data-series=\"device\"", in: html), 2)
        // Points: 2 paradigms × (2 charts × 3 domains + 1 training) × 10 rounds, 2 × 10 compared,
        // 6 router requests.
        XCTAssertEqual(count("<circle class=\"point\"", in: html), 140 + 20 + 6)
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
        // The per-request scatter has one colour per chosen plan kind.
        for name in ["cluster 0", "cluster 1", "cluster 2", "router", "oracle", "local only", "cloud only",
                     "vertical", "horizontal", "multi-access"] {
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

    func testNonFiniteLossesRoundTripAndAreLeftOutOfPlots() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let writer = try MetricsWriter(directory: dir)
        try writer.append(MetricRecord(round: 1, tier: .cloud, trainLoss: 3, valLoss: ["a": 3]))
        try writer.append(MetricRecord(round: 2, tier: .cloud, trainLoss: .nan, valLoss: ["a": .infinity]))
        try writer.append(MetricRecord(round: 3, tier: .cloud, trainLoss: 2, valLoss: ["a": 2]))
        let run = try XCTUnwrap(RunDirectory.load(dir).runs.first)
        XCTAssertTrue(run.records[1].trainLoss?.isNaN ?? false)
        XCTAssertEqual(run.records[1].valLoss["a"], .infinity)
        XCTAssertEqual(run.valLossSeries(against: .round)[0].points.map(\.x), [1, 3])
        XCTAssertEqual(run.trainLossSeries()[0].points.map(\.y), [3, 2])
        let svg = LineChart(title: "t", xLabel: "x", yLabel: "y",
                            series: [Series(name: "s", points: [(1, 1), (2, .nan), (3, 2)], color: "#000")]).svg()
        XCTAssertEqual(count("<circle class=\"point\"", in: svg), 2)
        XCTAssertFalse(svg.contains("nan"))
    }

    func testLargeAssignmentGridsAreThinned() {
        var records: [MetricRecord] = []
        for round in 1...300 {
            let clusters = Dictionary(uniqueKeysWithValues: (0..<500).map { ("d\($0)", $0 % 4) })
            records.append(MetricRecord(round: round, tier: .device, clusters: clusters))
        }
        let a = Run(paradigm: "clustered", records: records).assignments()
        XCTAssertEqual(a?.devices.count, 120)
        XCTAssertEqual(a?.devices.first, "d0")
        XCTAssertEqual(a?.devices.last, "d499")
        XCTAssertEqual(a?.rounds.count, 120)
        XCTAssertEqual(a?.rounds.last, 300)
        XCTAssertEqual(a?.totalDevices, 500)
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
