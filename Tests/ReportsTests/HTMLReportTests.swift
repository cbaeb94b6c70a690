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

    /// A simulated run of thousands of devices: its tasks become per-round distributions (percentiles of task time,
    /// tasks by outcome), never a line per device; a sub-folder's run is named by the folder.
    func testSimulatedTasksAreShownAsDistributions() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let writer = try MetricsWriter(directory: dir.appendingPathComponent("local"))
        try writer.append(MetricRecord(round: 1, paradigm: "clustered", tier: .cloud, valLoss: ["a": 2]))
        try writer.append(MetricRecord(round: 2, paradigm: "clustered", tier: .cloud, valLoss: ["a": 1]))
        // Round 1 (wire 5): 3000 devices taking 1…3000 s; round 2 (wire 9): 2000 delivered in 10 s, 1000 offline.
        for i in 0..<3000 {
            try writer.appendLine(TaskRecord(wire: 5, device: "device-\(i)", start: 0, downloadS: 0.5, computeS: Double(i), uploadS: 0.5,
                                             arrival: Double(i + 1), outcome: i < 2900 ? .delivered : .late), to: RunFiles.arrivals)
            try writer.appendLine(TaskRecord(wire: 9, device: "device-\(i)", start: 100, downloadS: 1, computeS: 8, uploadS: 1,
                                             arrival: 110, outcome: i < 2000 ? .delivered : .offline), to: RunFiles.arrivals)
        }
        let loaded = try RunDirectory.load(dir)
        XCTAssertEqual(loaded.runs.map(\.paradigm), ["local"], "named by its folder, not by the records' paradigm")
        let d = TaskDistribution(loaded.runs[0].tasks)
        XCTAssertEqual(d.rounds, [1, 2])
        XCTAssertEqual(d.devices, 3000)
        XCTAssertEqual(d.tasks, 6000)
        XCTAssertEqual(d.p50, [1501, 10])
        XCTAssertEqual(d.p90, [2700, 10])
        XCTAssertEqual(d.max, [3000, 10])
        XCTAssertEqual(d.outcomes[.delivered], [2900, 2000])
        XCTAssertEqual(d.outcomes[.late], [100, 0])
        XCTAssertEqual(d.outcomes[.offline], [0, 1000])
        let html = HTMLReport.render(loaded)
        XCTAssertTrue(html.contains("6000 tasks of 3000 devices"))
        XCTAssertEqual(count("<polyline class=\"series\" data-series=\"median\"", in: html), 1)
        XCTAssertEqual(count("<polyline class=\"series\" data-series=\"offline\"", in: html), 1)
        XCTAssertFalse(html.contains("device-17"), "no device is drawn on its own")
        XCTAssertLessThan(html.utf8.count, 200_000)
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
