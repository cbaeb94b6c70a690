import Foundation

// Issue 7's comparison of federation paradigms: one run directory per paradigm in, table.md + table.json out.
//
// Conventions the runs follow (what `fi run` writes):
// - final validation loss = the evaluation tier's last round, per domain averaged over that round's records
//   (clusters), then averaged over domains;
// - cloud-bound bytes = Σ bytes_up of tier-cloud records (flat: device → cloud uploads; hierarchical: edge → cloud);
// - sim time of a round = the largest sim_time_s among its records.

/// What one paradigm's run achieved.
public struct ParadigmOutcome: Codable, Sendable, Equatable {
    public var paradigm: String
    public var rounds: Int
    /// Mean over domains of the final validation loss.
    public var finalValLoss: Double?
    public var valLossByDomain: [String: Double]
    /// finalValLoss / FedAvg's.
    public var ratioToFedAvg: Double?
    /// First sim time at which the mean validation loss reached FedAvg's final loss (nil: never).
    public var timeToFedAvgLossSeconds: Double?
    public var simTimeSeconds: Double
    public var cloudBoundBytes: Int
    public var bytesUp: Int
    public var bytesDown: Int
    public var ari: Double?
    /// (sim time, mean validation loss) per evaluated round.
    public var curve: [CurvePoint]

    public struct CurvePoint: Codable, Sendable, Equatable {
        public var round: Int
        public var simTimeSeconds: Double
        public var meanValLoss: Double
    }
}

public enum TargetStatus: String, Codable, Sendable, Equatable {
    case met, missed
    /// A run or a number the target needs is absent: shown, never counted as met.
    case notMeasured = "not_measured"
}

/// One issue-7 target: what was measured against what was asked.
public struct TargetRow: Codable, Sendable, Equatable {
    public var id: String
    public var description: String
    public var measured: Double?
    /// Human-readable measurement (with the numbers it came from).
    public var measuredText: String
    public var goal: String
    public var status: TargetStatus
}

public struct ParadigmComparison: Codable, Sendable, Equatable {
    public struct Settings: Codable, Sendable, Equatable {
        /// κ2 of the hierarchical run: cloud bytes must be ≤ 1/κ2 of flat FedAvg's.
        public var kappa2: Int
        /// Bytes of the full model (fp32); nil: read `model_bytes` from a run's summary notes.
        public var fullModelBytes: Int?
        /// Bytes one device uploads per round; nil: `adapter_bytes` from the notes, else FedAvg's cloud bytes ÷ uploads.
        public var adapterBytesPerRound: Int?
        /// Which targets: nil or `paper` (issue 7's, every one shown), `quickstart` (clustered ≤ 0.92× FedAvg at the end of
        /// however many rounds ran, clustered below local-only, ARI).
        public var targetSet: String?
        public init(kappa2: Int = 2, fullModelBytes: Int? = nil, adapterBytesPerRound: Int? = nil, targetSet: String? = nil) {
            self.kappa2 = max(1, kappa2); self.fullModelBytes = fullModelBytes; self.adapterBytesPerRound = adapterBytesPerRound
            self.targetSet = targetSet
        }
        public static let quickstart = "quickstart"
    }

    public static let fedavg = "fedavg", clustered = "clustered", oracle = "clustered-oracle", local = "local"
    public static let hierarchical = "hierarchical", async = "async", fedavgStragglers = "fedavg-stragglers"
    public static let hierarchicalClustered = "hierarchical-clustered"

    public var settings: Settings
    public var paradigms: [ParadigmOutcome]
    public var targets: [TargetRow]
    /// The machine the runs ran on (CPU model, BLAS kernel), when the runner recorded it.
    public var machine: String?

    /// Reads `<dir>/<paradigm>/metrics.jsonl` for every sub-directory that has one (the sub-directory's name is the
    /// paradigm), or, without such sub-directories, the runs of `dir` itself by their `paradigm` fields.
    public static func load(experiment dir: URL, settings: Settings = Settings()) throws -> ParadigmComparison {
        let fm = FileManager.default
        let children = ((try? fm.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)) ?? [])
            .filter { fm.fileExists(atPath: $0.appendingPathComponent(RunFiles.metrics).path) }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        var runs: [String: Run] = [:]
        if children.isEmpty {
            for run in try RunDirectory.load(dir).runs { runs[run.paradigm] = run }
        } else {
            for child in children {
                let name = child.lastPathComponent
                let loaded = try RunDirectory.load(child).runs
                let records = loaded.flatMap(\.records).map { r -> MetricRecord in var r = r; r.paradigm = name; return r }
                runs[name] = Run(paradigm: name, summary: loaded.compactMap(\.summary).first, records: records)
            }
        }
        return ParadigmComparison(runs: runs, settings: settings)
    }

    public init(runs: [String: Run], settings: Settings = Settings()) {
        self.settings = settings
        var outcomes = runs.keys.sorted().map { Self.outcome(of: runs[$0]!, name: $0) }
        let fedavgLoss = outcomes.first { $0.paradigm == Self.fedavg }?.finalValLoss
        for i in outcomes.indices {
            guard let reference = fedavgLoss else { continue }
            if let l = outcomes[i].finalValLoss, reference > 0 { outcomes[i].ratioToFedAvg = l / reference }
            outcomes[i].timeToFedAvgLossSeconds = Self.timeToReach(reference, outcomes[i].curve)
        }
        paradigms = outcomes
        targets = []
        targets = evaluateTargets(runs: runs)
    }

    public func outcome(_ paradigm: String) -> ParadigmOutcome? { paradigms.first { $0.paradigm == paradigm } }

    static func outcome(of run: Run, name: String) -> ParadigmOutcome {
        var curve: [ParadigmOutcome.CurvePoint] = []
        var lastByDomain: [String: Double] = [:]
        if let tier = run.evaluationTier {
            let rows = run.records.filter { $0.tier == tier && !$0.valLoss.isEmpty }
            let byRound = Dictionary(grouping: rows, by: \.round)
            for round in byRound.keys.sorted() {
                let rs = byRound[round] ?? []
                var perDomain: [String: Double] = [:]
                for domain in Set(rs.flatMap { $0.valLoss.keys }) {
                    let vals = rs.compactMap { $0.valLoss[domain] }.filter(\.isFinite)
                    if !vals.isEmpty { perDomain[domain] = vals.reduce(0, +) / Double(vals.count) }
                }
                guard !perDomain.isEmpty else { continue }
                lastByDomain = perDomain
                curve.append(.init(round: round, simTimeSeconds: rs.map(\.simTimeSeconds).max() ?? 0,
                                   meanValLoss: perDomain.values.reduce(0, +) / Double(perDomain.count)))
            }
        }
        if lastByDomain.isEmpty, let s = run.summary { lastByDomain = s.finalValLoss.filter { $0.value.isFinite } }
        let final = lastByDomain.isEmpty ? nil : lastByDomain.values.reduce(0, +) / Double(lastByDomain.count)
        let simTime = max(run.records.map(\.simTimeSeconds).max() ?? 0, run.summary?.simTimeSeconds ?? 0)
        return ParadigmOutcome(
            paradigm: name, rounds: max(run.lastRound, run.summary?.rounds ?? 0), finalValLoss: final,
            valLossByDomain: lastByDomain, ratioToFedAvg: nil, timeToFedAvgLossSeconds: nil, simTimeSeconds: simTime,
            cloudBoundBytes: run.records.filter { $0.tier == .cloud }.reduce(0) { $0 + $1.bytesUp },
            bytesUp: run.records.reduce(0) { $0 + $1.bytesUp }, bytesDown: run.records.reduce(0) { $0 + $1.bytesDown },
            ari: run.summary?.ari, curve: curve)
    }

    /// First sim time at which the curve is at or below `target` (a 1e-9 relative slack absorbs printing round-off).
    static func timeToReach(_ target: Double, _ curve: [ParadigmOutcome.CurvePoint]) -> Double? {
        curve.first { $0.meanValLoss <= target + 1e-9 * abs(target) }?.simTimeSeconds
    }

    private func evaluateTargets(runs: [String: Run]) -> [TargetRow] {
        func loss(_ p: String) -> Double? { outcome(p)?.finalValLoss }
        func fmt(_ x: Double) -> String { String(format: "%.4f", x) }
        func row(_ id: String, _ description: String, goal: String, _ measured: Double?, _ text: String,
                 _ ok: (Double) -> Bool) -> TargetRow {
            guard let m = measured, m.isFinite else {
                return TargetRow(id: id, description: description, measured: nil, measuredText: text, goal: goal, status: .notMeasured)
            }
            return TargetRow(id: id, description: description, measured: m, measuredText: text, goal: goal, status: ok(m) ? .met : .missed)
        }
        func ratio(_ a: String, _ b: String) -> (Double?, String) {
            guard let x = loss(a), let y = loss(b), y > 0 else { return (nil, "needs final losses of \(a) and \(b)") }
            return (x / y, "\(a) \(fmt(x)) / \(b) \(fmt(y)) = \(fmt(x / y))")
        }
        func bytesRatio(_ a: String, _ b: String) -> (Double?, String) {
            guard let x = outcome(a)?.cloudBoundBytes, let y = outcome(b)?.cloudBoundBytes, y > 0 else {
                return (nil, "needs cloud-tier bytes of \(a) and \(b)")
            }
            return (Double(x) / Double(y), "\(x) / \(y) B = \(fmt(Double(x) / Double(y)))")
        }
        let withinKappa2 = { (r: Double) in r <= 1 / Double(self.settings.kappa2) + 1e-12 }
        var rows: [TargetRow] = []
        let rounds = outcome(Self.clustered)?.rounds ?? 0
        let (c2f, c2fText) = ratio(Self.clustered, Self.fedavg)
        let (c2l, c2lText) = ratio(Self.clustered, Self.local)
        let ari = outcome(Self.clustered)?.ari
        let ariRow = row("ari", "ARI of the clusters against the true domains", goal: "≥ 0.95", ari,
                         ari.map { "ARI \(fmt($0))" } ?? "clustered summary has no ari") { $0 >= 0.95 }
        if settings.targetSet == Settings.quickstart {
            return [row("clustered_vs_fedavg", "clustered final loss vs FedAvg after \(rounds) rounds", goal: "≤ 0.92×", c2f, c2fText) { $0 <= 0.92 },
                    row("clustered_vs_local", "clustered below local-only training", goal: "< 1.00×", c2l, c2lText) { $0 < 1 },
                    ariRow]
        }
        rows.append(row("clustered_vs_fedavg", "clustered final loss vs FedAvg after 20 rounds (ran \(rounds))",
                        goal: "≤ 0.90×", c2f, c2fText) { $0 <= 0.90 && rounds >= 20 })
        let (c2o, c2oText) = ratio(Self.clustered, Self.oracle)
        rows.append(row("clustered_vs_oracle", "clustered within 1% of the oracle clusters", goal: "≤ 1.01×", c2o, c2oText) { $0 <= 1.01 })
        rows.append(row("clustered_vs_local", "clustered below local-only training", goal: "< 1.00×", c2l, c2lText) { $0 < 1 })
        rows.append(ariRow)

        let (hBytes, hBytesText) = bytesRatio(Self.hierarchical, Self.fedavg)
        rows.append(row("hierarchical_cloud_bytes", "hierarchical cloud-bound bytes vs flat FedAvg (κ2 = \(settings.kappa2))",
                        goal: "≤ 1/κ2 = \(fmt(1 / Double(settings.kappa2)))", hBytes, hBytesText, withinKappa2))
        let (h2f, h2fText) = ratio(Self.hierarchical, Self.fedavg)
        rows.append(row("hierarchical_loss", "hierarchical final loss within 3% of FedAvg", goal: "≤ 1.03×", h2f, h2fText) { $0 <= 1.03 })

        // Hierarchy with clustered assignment: the hierarchical targets against flat clustered (only when it ran).
        if let hc = outcome(Self.hierarchicalClustered) {
            let (hcBytes, hcBytesText) = bytesRatio(Self.hierarchicalClustered, Self.clustered)
            rows.append(row("hierarchical_clustered_cloud_bytes", "hierarchical-clustered cloud-bound bytes (sketches included) vs flat clustered",
                            goal: "≤ 1/κ2 = \(fmt(1 / Double(settings.kappa2)))", hcBytes, hcBytesText, withinKappa2))
            let (hc2c, hc2cText) = ratio(Self.hierarchicalClustered, Self.clustered)
            rows.append(row("hierarchical_clustered_loss", "hierarchical-clustered final loss within 3% of flat clustered", goal: "≤ 1.03×",
                            hc2c, hc2cText) { $0 <= 1.03 })
            rows.append(row("hierarchical_clustered_ari", "ARI of the hierarchical-clustered clusters", goal: "≥ 0.95", hc.ari,
                            hc.ari.map { "ARI \(fmt($0))" } ?? "hierarchical-clustered summary has no ari") { $0 >= 0.95 })
        }

        // Async against the synchronous baseline under the same straggler scenario.
        let baselineName = outcome(Self.fedavgStragglers) != nil ? Self.fedavgStragglers : Self.fedavg
        var asyncRatio: Double? = nil
        var asyncText = "needs \(Self.async) and \(baselineName) runs with sim time"
        if let base = outcome(baselineName), let target = base.finalValLoss, let a = outcome(Self.async) {
            let baseTime = Self.timeToReach(target, base.curve) ?? base.simTimeSeconds
            if let t = Self.timeToReach(target, a.curve), baseTime > 0 {
                asyncRatio = t / baseTime
                asyncText = "async \(fmt(t)) s / \(baselineName) \(fmt(baseTime)) s to loss \(fmt(target)) = \(fmt(t / baseTime))"
            } else {
                asyncRatio = .infinity
                asyncText = "async never reached \(baselineName)'s final loss \(fmt(target)) (best \(a.curve.map(\.meanValLoss).min().map(fmt) ?? "–"))"
            }
        }
        rows.append(TargetRow(id: "async_time_to_target",
                              description: "async sim time to \(baselineName)'s final loss, 20% of devices 10× slower",
                              measured: asyncRatio.flatMap { $0.isFinite ? $0 : nil }, measuredText: asyncText, goal: "≤ 0.50×",
                              status: asyncRatio == nil ? .notMeasured : (asyncRatio! <= 0.5 ? .met : .missed)))

        let notes = runs.values.compactMap(\.summary?.notes)
        let fullBytes = settings.fullModelBytes ?? notes.lazy.compactMap { $0["model_bytes"].flatMap(Int.init) }.first
        var adapterBytes = settings.adapterBytesPerRound ?? notes.lazy.compactMap { $0["adapter_bytes"].flatMap(Int.init) }.first
        if adapterBytes == nil, let run = runs[Self.fedavg] {
            let cloud = run.records.filter { $0.tier == .cloud }
            let uploads = cloud.reduce(0) { $0 + $1.participants - $1.dropped }
            if uploads > 0 { adapterBytes = cloud.reduce(0) { $0 + $1.bytesUp } / uploads }
        }
        let adapterRatio: Double? = (adapterBytes != nil && (fullBytes ?? 0) > 0) ? Double(adapterBytes!) / Double(fullBytes!) : nil
        rows.append(row("adapter_bytes", "adapter bytes one device sends per round vs the full model", goal: "≤ 2%", adapterRatio,
                        adapterRatio.map { "\(adapterBytes!) / \(fullBytes!) B = \(String(format: "%.2f%%", 100 * $0))" }
                            ?? "needs adapter bytes and the full model size (summary note model_bytes)") { $0 <= 0.02 })
        return rows
    }
}
