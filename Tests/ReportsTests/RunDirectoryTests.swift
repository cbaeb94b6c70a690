import Foundation
import Reports
import XCTest

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("reports-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

final class RunDirectoryTests: XCTestCase {
    func testLoadsOneRunPerSubdirectoryWithSummariesAndRouterRecords() throws {
        let dir = try RunDirectory.load(fixtures.appendingPathComponent("experiment"))
        XCTAssertEqual(dir.runs.map(\.paradigm), ["clustered", "fedavg"])
        XCTAssertEqual(dir.runs[0].records.count, 36)
        XCTAssertEqual(dir.runs[1].records.count, 20)
        XCTAssertEqual(dir.runs[0].summary?.ari, 1.0)
        XCTAssertEqual(dir.runs[1].summary?.notes["seed"], "7")
        XCTAssertEqual(dir.router.count, 6)
        XCTAssertEqual(dir.router[0], RouterRecord(scenario: "good-channel", chosenPlan: "vertical",
                                                   chosenLatencySeconds: 0.4, oraclePlan: "vertical",
                                                   oracleLatencySeconds: 0.4, localLatencySeconds: 1.2,
                                                   cloudLatencySeconds: 0.72))
        XCTAssertTrue(dir.runs.allSatisfy { run in run.records.allSatisfy { $0.paradigm == run.paradigm } })
    }

    func testSeriesAverageClustersAtTheEvaluationTier() throws {
        let dir = try RunDirectory.load(fixtures.appendingPathComponent("experiment"))
        let clustered = dir.runs[0]
        XCTAssertEqual(clustered.evaluationTier, .cloud)
        XCTAssertEqual(clustered.domains, ["bible", "fortunes", "manpages"])
        let byRound = clustered.valLossSeries(against: .round)
        XCTAssertEqual(byRound.map(\.name), ["bible", "fortunes", "manpages"])
        XCTAssertEqual(byRound[0].points.count, 10)
        // Round 5 has clusters 0, 1, 2: bible = 3.4 - 0.65 + 0.01·mean(0,1,2) = 2.76.
        XCTAssertEqual(byRound[0].points[4].x, 5)
        XCTAssertEqual(byRound[0].points[4].y, 2.76, accuracy: 1e-9)
        let byTime = clustered.valLossSeries(against: .simTime)
        XCTAssertEqual(byTime[0].points[4].x, 66.0)  // 13·5 + 1
        let bytes = clustered.bytesByTier()
        XCTAssertEqual(bytes[.device]?.up, 10 * 6 * 40960)
        XCTAssertEqual(bytes[.cloud]?.down, (2 * 1 + 8 * 3) * 2 * 40960)
        let a = try XCTUnwrap(clustered.assignments())
        XCTAssertEqual(a.devices, ["dev-0", "dev-1", "dev-2", "dev-3", "dev-4", "dev-5"])
        XCTAssertEqual(a.rounds, Array(1...10))
        XCTAssertEqual(a.cluster[4][0], 0)
        XCTAssertEqual(a.cluster[4][2], 1)  // dev-4 is a "fortunes" device, cluster 1 from round 3
    }

    func testMalformedJSONLNamesFileAndLine() {
        let file = fixtures.appendingPathComponent("malformed.jsonl")
        XCTAssertThrowsError(try RunDirectory.readJSONLines(file, as: MetricRecord.self)) { error in
            guard case let RunDirectoryError.malformedLine(path, line, _) = error else {
                return XCTFail("unexpected error \(error)")
            }
            XCTAssertEqual(path, file.path)
            XCTAssertEqual(line, 3)  // line 2 is blank and skipped; line 3 lacks its closing brace
            XCTAssertTrue("\(error)".contains("malformed.jsonl:3"), "\(error)")
        }
    }

    func testUnknownTierIsRejectedWithTheLine() {
        let file = fixtures.appendingPathComponent("badtier.jsonl")
        XCTAssertThrowsError(try RunDirectory.readJSONLines(file, as: MetricRecord.self)) { error in
            guard case let RunDirectoryError.malformedLine(_, line, reason) = error else {
                return XCTFail("unexpected error \(error)")
            }
            XCTAssertEqual(line, 1)
            XCTAssertTrue(reason.contains("tier"), reason)
        }
    }

    func testMissingMetricsIsATypedError() throws {
        let empty = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: empty) }
        XCTAssertThrowsError(try RunDirectory.load(empty)) { error in
            XCTAssertEqual(error as? RunDirectoryError, .noRuns(path: empty.path))
        }
        XCTAssertThrowsError(try RunDirectory.load(empty.appendingPathComponent("nope"))) { error in
            XCTAssertEqual(error as? RunDirectoryError, .notADirectory(path: empty.appendingPathComponent("nope").path))
        }
    }

    func testWriterRoundTripsAndParadigmFieldSplitsRuns() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let writer = try MetricsWriter(directory: dir)
        for r in 1...3 {
            try writer.append(MetricRecord(round: r, paradigm: "async", tier: .cloud, valLoss: ["a": 3.0 - Double(r)],
                                           bytesUp: 10, simTimeSeconds: Double(r)))
            try writer.append(MetricRecord(round: r, paradigm: "local", tier: .device, valLoss: ["a": 3.5]))
        }
        try writer.append(RouterRecord(scenario: "s", chosenPlan: "vertical", chosenLatencySeconds: 1,
                                       oraclePlan: "vertical", oracleLatencySeconds: 1,
                                       localLatencySeconds: 2, cloudLatencySeconds: 3))
        try writer.writeSummary(RunSummary(paradigm: nil, rounds: 3, devices: 2))
        try writer.writeSummary(RunSummary(paradigm: nil, rounds: 3, devices: 4))
        let loaded = try RunDirectory.load(dir)
        XCTAssertEqual(loaded.runs.map(\.paradigm), ["async", "local"])
        XCTAssertEqual(loaded.runs[0].records.map(\.round), [1, 2, 3])
        XCTAssertEqual(loaded.runs[0].records[2].valLoss["a"], 0.0)
        XCTAssertEqual(loaded.runs[0].summary?.devices, 4)
        XCTAssertEqual(loaded.router.count, 1)
        // Only the final summary remains, no temp file.
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        XCTAssertEqual(names, ["metrics.jsonl", "router.jsonl", "summary.json"])
    }

    func testConcurrentAppendsKeepWholeLines() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let writer = try MetricsWriter(directory: dir)
        DispatchQueue.concurrentPerform(iterations: 200) { i in
            try? writer.append(MetricRecord(round: i, tier: .device, bytesUp: i))
        }
        let records = try RunDirectory.readJSONLines(dir.appendingPathComponent("metrics.jsonl"), as: MetricRecord.self)
        XCTAssertEqual(records.map(\.round).sorted(), Array(0..<200))
    }
}
