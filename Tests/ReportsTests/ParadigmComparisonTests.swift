import Foundation
import Reports
import XCTest

/// Writes one paradigm's run: `loss(round)` per domain at the cloud tier, `seconds` of sim time per round.
private func writeRun(_ dir: URL, _ name: String, rounds: Int = 20, seconds: Double = 10,
                      loss: (Int) -> [String: Double], bytesUp: Int = 12_000, participants: Int = 12,
                      summary: RunSummary? = nil, extra: [MetricRecord] = []) throws {
    let writer = try MetricsWriter(directory: dir.appendingPathComponent(name))
    for r in 1...rounds {
        try writer.append(MetricRecord(round: r, paradigm: "ignored-\(name)", tier: .cloud, valLoss: loss(r), bytesUp: bytesUp,
                                       participants: participants, simTimeSeconds: seconds * Double(r)))
    }
    for e in extra { try writer.append(e) }
    if let summary { try writer.writeSummary(summary) }
}

private func linear(_ start: Double, _ end: Double, rounds: Int = 20) -> (Int) -> [String: Double] {
    { r in
        let v = start + (end - start) * Double(r) / Double(rounds)
        return ["bible-kjv": v - 0.1, "man-pages": v + 0.1]
    }
}

final class ParadigmComparisonTests: XCTestCase {
    private func fixture() throws -> URL {
        let dir = try temporaryDirectory()
        try writeRun(dir, "fedavg", loss: linear(3, 2.1), summary: RunSummary(notes: ["model_bytes": "100000"]))
        try writeRun(dir, "clustered", loss: linear(3, 1.8), summary: RunSummary(ari: 1))
        try writeRun(dir, "clustered-oracle", loss: linear(3, 1.79))
        try writeRun(dir, "local", loss: linear(3, 2.5))
        // Hierarchical: device → edge every round, edge → cloud (2 edges × 1000 B) every second round; loss 2.2 (> 3% off).
        let edgeRecords = (1...20).map { MetricRecord(round: $0, tier: .edge, bytesUp: 12_000, participants: 12) }
        try writeRun(dir, "hierarchical", loss: { r in r % 2 == 0 ? linear(3, 2.2)(r) : [:] }, bytesUp: 0,
                     extra: edgeRecords + (1...10).map { MetricRecord(round: 2 * $0, tier: .cloud, bytesUp: 2_000) })
        // Stragglers: the sync baseline takes 100 s a round and ends at 2.1 (round 20, 2000 s); async gets there at 800 s.
        try writeRun(dir, "fedavg-stragglers", seconds: 100, loss: linear(3, 2.1))
        try writeRun(dir, "async", rounds: 40, seconds: 20, loss: linear(3, 1.65, rounds: 40))
        return dir
    }

    func testComparisonMeasuresEveryParadigmAndEveryTarget() throws {
        let c = try ParadigmComparison.load(experiment: try fixture())
        XCTAssertEqual(c.paradigms.map(\.paradigm),
                       ["async", "clustered", "clustered-oracle", "fedavg", "fedavg-stragglers", "hierarchical", "local"])
        let fedavg = try XCTUnwrap(c.outcome("fedavg"))
        XCTAssertEqual(fedavg.finalValLoss!, 2.1, accuracy: 1e-12)
        XCTAssertEqual(fedavg.valLossByDomain["bible-kjv"]!, 2.0, accuracy: 1e-12)
        XCTAssertEqual(fedavg.rounds, 20)
        XCTAssertEqual(fedavg.cloudBoundBytes, 240_000)
        XCTAssertEqual(fedavg.timeToFedAvgLossSeconds, 200)
        let clustered = try XCTUnwrap(c.outcome("clustered"))
        XCTAssertEqual(clustered.ratioToFedAvg!, 1.8 / 2.1, accuracy: 1e-12)
        // 3 − 0.06·r ≤ 2.1 first at r = 15.
        XCTAssertEqual(clustered.timeToFedAvgLossSeconds, 150)
        XCTAssertEqual(clustered.ari, 1)
        XCTAssertEqual(c.outcome("hierarchical")?.cloudBoundBytes, 20_000)
        XCTAssertNil(c.outcome("local")?.timeToFedAvgLossSeconds)

        let status = Dictionary(uniqueKeysWithValues: c.targets.map { ($0.id, $0.status) })
        XCTAssertEqual(status, ["clustered_vs_fedavg": .met, "clustered_vs_oracle": .met, "clustered_vs_local": .met,
                                "ari": .met, "hierarchical_cloud_bytes": .met, "hierarchical_loss": .missed,
                                "async_time_to_target": .met, "adapter_bytes": .met])
        let measured = Dictionary(uniqueKeysWithValues: c.targets.map { ($0.id, $0.measured ?? -1) })
        XCTAssertEqual(measured["hierarchical_cloud_bytes"]!, 20_000.0 / 240_000, accuracy: 1e-12)
        XCTAssertEqual(measured["hierarchical_loss"]!, 2.2 / 2.1, accuracy: 1e-12)
        // Async: 3 − 0.03375·r ≤ 2.1 first at r = 27 → 540 s, against the baseline's 2000 s.
        XCTAssertEqual(measured["async_time_to_target"]!, 540.0 / 2000, accuracy: 1e-12)
        XCTAssertEqual(measured["adapter_bytes"]!, 0.01, accuracy: 1e-12)
    }

    func testMissingRunsAreNotMeasuredNeverMet() throws {
        let dir = try temporaryDirectory()
        try writeRun(dir, "fedavg", loss: linear(3, 2.1))
        let c = try ParadigmComparison.load(experiment: dir)
        XCTAssertEqual(c.targets.count, 8)
        XCTAssertTrue(c.targets.allSatisfy { $0.status == .notMeasured }, "\(c.targets.map { ($0.id, $0.status) })")
    }

    func testWritesMarkdownAndJSONTablesThatShowMisses() throws {
        let dir = try fixture()
        let c = try ParadigmComparison.load(experiment: dir, settings: .init(kappa2: 2))
        try c.write(to: dir)
        let md = try String(contentsOf: dir.appendingPathComponent("table.md"), encoding: .utf8)
        XCTAssertTrue(md.contains("| clustered | 20 | 1.8000 | 0.857 |"), md)
        XCTAssertTrue(md.contains("hierarchical final loss within 3% of FedAvg | hierarchical 2.2000 / fedavg 2.1000 = 1.0476 | ≤ 1.03× | **missed** |"), md)
        XCTAssertTrue(md.contains("7 of 8 targets met."), md)
        let json = try Data(contentsOf: dir.appendingPathComponent("table.json"))
        let back = try RunFiles.decoder().decode(ParadigmComparison.self, from: json)
        XCTAssertEqual(back, c)
    }

    func testHierarchicalClusteredRunAddsItsTargetsAgainstFlatClustered() throws {
        let dir = try fixture()
        // Cloud every second round: 10 × 3000 B against flat clustered's 20 × 12,000 B; loss 1.85 vs 1.80 (2.8% off).
        let edgeRecords = (1...20).map { MetricRecord(round: $0, tier: .edge, bytesUp: 12_000, participants: 12) }
        try writeRun(dir, "hierarchical-clustered", loss: { r in r % 2 == 0 ? linear(3, 1.85)(r) : [:] }, bytesUp: 0,
                     summary: RunSummary(ari: 0.9), extra: edgeRecords + (1...10).map { MetricRecord(round: 2 * $0, tier: .cloud, bytesUp: 3_000) })
        let c = try ParadigmComparison.load(experiment: dir, settings: .init(kappa2: 2))
        XCTAssertEqual(c.targets.count, 11)
        let byID = Dictionary(uniqueKeysWithValues: c.targets.map { ($0.id, $0) })
        XCTAssertEqual(byID["hierarchical_clustered_cloud_bytes"]?.measured ?? -1, 30_000.0 / 240_000, accuracy: 1e-12)
        XCTAssertEqual(byID["hierarchical_clustered_cloud_bytes"]?.status, .met)
        XCTAssertEqual(byID["hierarchical_clustered_loss"]?.measured ?? -1, 1.85 / 1.8, accuracy: 1e-12)
        XCTAssertEqual(byID["hierarchical_clustered_loss"]?.status, .met)
        XCTAssertEqual(byID["hierarchical_clustered_ari"]?.status, .missed)
    }

    /// The quickstart's targets: clustered ≤ 0.92× FedAvg after however many rounds ran, below local-only, ARI; and the
    /// short table a terminal shows.
    func testQuickstartTargetsAndTerminalTable() throws {
        let dir = try temporaryDirectory()
        try writeRun(dir, "fedavg", rounds: 8, loss: linear(3, 2.5, rounds: 8))
        try writeRun(dir, "clustered", rounds: 8, loss: linear(3, 2.25, rounds: 8), summary: RunSummary(ari: 1))
        try writeRun(dir, "local", rounds: 8, loss: linear(3, 2.2, rounds: 8))
        let c = try ParadigmComparison.load(experiment: dir, settings: .init(targetSet: ParadigmComparison.Settings.quickstart))
        XCTAssertEqual(c.targets.map(\.id), ["clustered_vs_fedavg", "clustered_vs_local", "ari"])
        XCTAssertEqual(c.targets.map(\.status), [.met, .missed, .met])
        XCTAssertEqual(c.targets[0].measured ?? -1, 2.25 / 2.5, accuracy: 1e-12)
        XCTAssertTrue(c.targets[0].description.contains("after 8 rounds"), c.targets[0].description)
        let lines = c.terminalTable().split(separator: "\n").map(String.init)
        XCTAssertEqual(lines[0].split(separator: " ").map(String.init), ["paradigm", "val", "loss", "×", "FedAvg", "bible-kjv", "man-pages", "ARI"])
        XCTAssertEqual(lines[2].split(separator: " ").map(String.init), ["fedavg", "2.5000", "1.000", "2.4000", "2.6000", "–"])
        XCTAssertEqual(lines[1].split(separator: " ").map(String.init), ["clustered", "2.2500", "0.900", "2.1500", "2.3500", "1.00"])
        XCTAssertTrue(lines[4].hasPrefix("clustered final loss vs FedAvg after 8 rounds: clustered 2.2500 / fedavg 2.5000 = 0.9000 (goal ≤ 0.92×: met)"), lines[4])
        XCTAssertTrue(lines[5].hasSuffix("(goal < 1.00×: MISSED)"), lines[5])
        XCTAssertTrue(c.markdown().contains("## Quickstart targets"))
    }

    /// Several seeds: each paradigm's final loss and each target as mean ± sample std and range, met in k of N.
    func testSeedSpreadIsMeanStdAndRangeOverSeeds() throws {
        var runs: [ParadigmComparison] = []
        for (f, c) in [(2.5, 2.25), (2.4, 2.28), (2.6, 2.2)] {
            let dir = try temporaryDirectory()
            try writeRun(dir, "fedavg", rounds: 8, loss: linear(3, f, rounds: 8))
            try writeRun(dir, "clustered", rounds: 8, loss: linear(3, c, rounds: 8))
            var comparison = try ParadigmComparison.load(experiment: dir, settings: .init(targetSet: ParadigmComparison.Settings.quickstart))
            comparison.machine = "CPU: test"
            runs.append(comparison)
        }
        let s = SeedSpread(runs)
        XCTAssertEqual(s.seeds, 3)
        let fedavg = try XCTUnwrap(s.paradigms.first { $0.paradigm == "fedavg" }?.finalValLoss)
        XCTAssertEqual(fedavg.mean, 2.5, accuracy: 1e-12)
        XCTAssertEqual(fedavg.std, 0.1, accuracy: 1e-12)
        XCTAssertEqual([fedavg.min, fedavg.max], [2.4, 2.6])
        // Ratios 0.9, 0.95, 0.846…: two of three at or below 0.92.
        let target = try XCTUnwrap(s.targets.first { $0.id == "clustered_vs_fedavg" })
        XCTAssertEqual(target.met, 2)
        XCTAssertEqual(target.measured?.mean ?? 0, (2.25 / 2.5 + 2.28 / 2.4 + 2.2 / 2.6) / 3, accuracy: 1e-12)
        XCTAssertEqual(s.targets.first { $0.id == "clustered_vs_local" }?.measured, nil, "no local run: not measured")
        let md = s.markdown()
        XCTAssertTrue(md.contains("Ran on CPU: test."), md)
        XCTAssertTrue(md.contains("| fedavg | 2.5000 ± 0.1000 [2.4000–2.6000] |"), md)
        XCTAssertTrue(md.contains("| 2 of 3 |"), md)
    }
}
