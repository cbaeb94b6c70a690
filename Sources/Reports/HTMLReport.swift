import Foundation

/// A self-contained HTML report of an experiment directory: inline CSS and SVG, no scripts,
/// no external assets, so it opens from a CI artifact or an e-mail attachment as is.
public enum HTMLReport {
    /// Renders the whole report.
    public static func render(_ dir: RunDirectory, title: String? = nil) -> String {
        let name = title ?? "Report: \(dir.url.lastPathComponent)"
        var body = "<h1>\(htmlEscape(name))</h1>\n"
        var meta: [String] = []
        if !dir.runs.isEmpty { meta.append("\(dir.runs.count) paradigm(s): \(dir.runs.map { htmlEscape($0.paradigm) }.joined(separator: ", "))") }
        if !dir.router.isEmpty { meta.append("\(dir.router.count) routed request(s)") }
        body += "<p class=\"meta\">" + meta.joined(separator: "; ")
        body += "</p>\n"
        if !dir.runs.isEmpty {
            body += summaryTable(dir.runs)
            if let c = dir.comparison { body += ParadigmTableHTML.section(c) }
            body += comparisonSection(dir.runs)
            for run in dir.runs { body += paradigmSection(run) }
            body += bytesSection(dir.runs)
        }
        if !dir.router.isEmpty { body += routerSection(dir.router) }
        return page(title: name, body: body)
    }

    /// Loads `dir`, renders, and writes the report (default `<dir>/report.html`). Returns the path.
    @discardableResult
    public static func write(runDirectory dir: URL, to out: URL? = nil) throws -> URL {
        var loaded = try RunDirectory.load(dir)
        // An experiment folder (one sub-folder per paradigm) without table.json gets its comparison computed here.
        let fm = FileManager.default
        let paradigmFolders = ((try? fm.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)) ?? [])
            .filter { fm.fileExists(atPath: $0.appendingPathComponent(RunFiles.metrics).path) }
        if loaded.comparison == nil, !paradigmFolders.isEmpty { loaded.comparison = try ParadigmComparison.load(experiment: dir) }
        let target = out ?? dir.appendingPathComponent("report.html")
        do {
            try Foundation.Data(render(loaded).utf8).write(to: target, options: .atomic)
        } catch {
            throw MetricsWriterError.writeFailed(path: target.path, reason: error.localizedDescription)
        }
        return target
    }

    static func summaryTable(_ runs: [Run]) -> String {
        var s = "<h2>Summary</h2>\n<table class=\"summary\"><tr><th>paradigm</th><th>rounds</th><th>final mean val loss</th>"
        s += "<th>bytes up</th><th>bytes down</th><th>participants / round</th><th>dropped</th><th>sim time</th><th>wall time</th><th>ARI</th><th>ε (δ)</th></tr>\n"
        for run in runs {
            let last = run.meanValLoss().last?.y
            let bytes = run.bytesByTier().values.reduce((0, 0)) { ($0.0 + $1.up, $0.1 + $1.down) }
            // Round 0 is the initial evaluation before any training: not a round.
            let rounds = Set(run.records.map(\.round).filter { $0 > 0 }).count
            let lowest = run.records.map(\.tier).min()
            let participants = run.records.filter { $0.tier == lowest }
            let avgPart = participants.isEmpty ? 0 : Double(participants.map(\.participants).reduce(0, +)) / Double(max(rounds, 1))
            let sim = run.records.map(\.simTimeSeconds).max() ?? 0
            let wall = run.records.map(\.wallSeconds).max() ?? 0
            s += "<tr><td>\(htmlEscape(run.paradigm))</td><td>\(rounds)</td><td>\(last.map { String(format: "%.4f", $0) } ?? "–")</td>"
            s += "<td>\(byteString(bytes.0))</td><td>\(byteString(bytes.1))</td><td>\(String(format: "%.1f", avgPart))</td>"
            s += "<td>\(run.records.map(\.dropped).reduce(0, +))</td><td>\(durationString(sim))</td><td>\(durationString(wall))</td>"
            s += "<td>\(run.summary?.ari.map { String(format: "%.3f", $0) } ?? "–")</td>"
            let eps = run.records.compactMap(\.epsilon).max()
            s += "<td>\(eps.map { String(format: "%.3f", $0) + " (\(htmlEscape(run.summary?.notes["dp_delta"] ?? "?")))" } ?? "–")</td></tr>\n"
        }
        return s + "</table>\n"
    }

    static func comparisonSection(_ runs: [Run]) -> String {
        let series = runs.enumerated().compactMap { (i, run) -> Series? in
            let pts = run.meanValLoss()
            return pts.isEmpty ? nil : Series(name: run.paradigm, points: pts, color: paletteColor(i))
        }
        guard runs.count > 1, !series.isEmpty else { return "" }
        let chart = LineChart(title: "Mean validation loss over domains, per paradigm",
                              xLabel: "round", yLabel: "validation loss", series: series)
        return "<h2>Paradigms compared</h2>\n<figure>\(chart.svg())</figure>\n"
    }

    static func paradigmSection(_ run: Run) -> String {
        let p = htmlEscape(run.paradigm)
        var s = "<section class=\"paradigm\" id=\"paradigm-\(p)\">\n<h2>\(p)</h2>\n"
        if let tier = run.evaluationTier {
            s += "<p class=\"meta\">validation loss measured at the \(tier.rawValue) tier</p>\n<div class=\"row\">"
            s += "<figure>" + LineChart(title: "\(run.paradigm): validation loss per domain by round", xLabel: "round",
                                        yLabel: "validation loss", series: run.valLossSeries(against: .round)).svg() + "</figure>"
            s += "<figure>" + LineChart(title: "\(run.paradigm): validation loss per domain by simulated time",
                                        xLabel: "simulated time (s)", yLabel: "validation loss",
                                        series: run.valLossSeries(against: .simTime)).svg() + "</figure></div>\n"
        } else {
            s += "<p class=\"meta\">no validation losses recorded</p>\n"
        }
        s += "<div class=\"row\">"
        let train = run.trainLossSeries()
        if !train.isEmpty {
            s += "<figure>" + LineChart(title: "\(run.paradigm): training loss by round", xLabel: "round",
                                        yLabel: "training loss", series: train).svg() + "</figure>\n"
        }
        let eps = run.records.filter { $0.epsilon != nil }.sorted { $0.round < $1.round }
        if !eps.isEmpty {
            let pts = eps.map { (x: Double($0.round), y: $0.epsilon!) }
            s += "<figure>" + LineChart(title: "\(run.paradigm): privacy spent (ε at δ = \(run.summary?.notes["dp_delta"] ?? "?"))", xLabel: "round",
                                        yLabel: "ε", series: [Series(name: "ε", points: pts, color: paletteColor(0))]).svg() + "</figure>\n"
        }
        if let a = run.assignments() {
            let shown = a.devices.count < a.totalDevices ? " (\(a.devices.count) of \(a.totalDevices) devices)" : ""
            s += "<figure>" + AssignmentGrid(title: "\(run.paradigm): cluster assignments over time\(shown)",
                                             devices: a.devices, rounds: a.rounds, cluster: a.cluster).svg() + "</figure>\n"
        }
        s += "</div>\n"
        if !run.tasks.isEmpty { s += tasksSection(run) }
        return s + "</section>\n"
    }

    /// A simulated run's tasks as per-round distributions (readable with thousands of devices: no line per device).
    static func tasksSection(_ run: Run) -> String {
        let d = TaskDistribution(run.tasks)
        let x = d.rounds.map(Double.init)
        func series(_ name: String, _ ys: [Double], _ i: Int) -> Series { Series(name: name, points: Array(zip(x, ys)).map { ($0, $1) }, color: paletteColor(i)) }
        let times = LineChart(title: "\(run.paradigm): device task time per round (start to arrival, virtual clock)", xLabel: "round",
                              yLabel: "seconds", series: [series("p10", d.p10, 0), series("median", d.p50, 1), series("p90", d.p90, 2),
                                                          series("max", d.max, 3)])
        let outcomes = LineChart(title: "\(run.paradigm): tasks per round by outcome", xLabel: "round", yLabel: "tasks",
                                 series: TaskRecord.Outcome.allCases.enumerated().compactMap { i, o in
                                     let ys = (d.outcomes[o] ?? []).map(Double.init)
                                     return ys.contains { $0 > 0 } ? series(o.rawValue, ys, i) : nil
                                 })
        return "<p class=\"meta\">\(d.tasks) tasks of \(d.devices) devices on the virtual clock (\(RunFiles.arrivals))</p>\n"
            + "<div class=\"row\"><figure>\(times.svg())</figure><figure>\(outcomes.svg())</figure></div>\n"
    }

    static func bytesSection(_ runs: [Run]) -> String {
        let tiers = Tier.allCases.filter { t in runs.contains { $0.bytesByTier()[t] != nil } }
        guard !tiers.isEmpty else { return "" }
        let totals = runs.map { $0.bytesByTier() }
        let maxBytes = totals.flatMap { $0.values.map { Double($0.up + $0.down) } }.max() ?? 0
        let (scale, unit) = maxBytes >= 1e9 ? (1e9, "GB") : maxBytes >= 1e6 ? (1e6, "MB") : maxBytes >= 1e3 ? (1e3, "kB") : (1, "B")
        let series = tiers.enumerated().map { (i, t) in
            (name: t.rawValue, color: paletteColor(i),
             values: totals.map { $0[t].map { Double($0.up + $0.down) / scale } })
        }
        let chart = BarChart(title: "Bytes per tier (up + down)", yLabel: unit,
                             categories: runs.map(\.paradigm), series: series)
        var table = "<table><tr><th>paradigm</th><th>tier</th><th>bytes up</th><th>bytes down</th></tr>\n"
        for (run, t) in zip(runs, totals) {
            for tier in Tier.allCases { if let b = t[tier] {
                table += "<tr><td>\(htmlEscape(run.paradigm))</td><td>\(tier.rawValue)</td><td>\(byteString(b.up))</td><td>\(byteString(b.down))</td></tr>\n"
            } }
        }
        return "<h2>Communication</h2>\n<div class=\"row\"><figure>\(chart.svg())</figure>\(table)</table></div>\n"
    }

    static func routerSection(_ records: [RouterRecord]) -> String {
        let scenarios = orderedUnique(records.map(\.scenario))
        func mean(_ s: String, _ f: (RouterRecord) -> Double) -> Double? {
            let v = records.filter { $0.scenario == s }.map(f)
            return v.isEmpty ? nil : v.reduce(0, +) / Double(v.count)
        }
        let bars = BarChart(title: "Router latency against the oracle (mean per scenario)", yLabel: "latency (s)",
                            categories: scenarios, series: [
                                ("router", paletteColor(0), scenarios.map { mean($0, \.chosenLatencySeconds) }),
                                ("oracle", paletteColor(2), scenarios.map { mean($0, \.oracleLatencySeconds) }),
                                ("local only", paletteColor(1), scenarios.map { mean($0, \.localLatencySeconds) }),
                                ("cloud only", paletteColor(3), scenarios.map { mean($0, \.cloudLatencySeconds) }),
                            ])
        let scatter = LineChart(title: "Chosen plan against the oracle, per request", xLabel: "oracle latency (s)",
                                yLabel: "router latency (s)",
                                // One colour per chosen plan kind: a legend of scenarios would not fit.
                                series: orderedUnique(records.map(\.chosenPlan)).enumerated().map { (i, plan) in
                                    Series(name: plan, points: records.filter { $0.chosenPlan == plan }
                                        .map { ($0.oracleLatencySeconds, $0.chosenLatencySeconds) }, color: paletteColor(i))
                                }, drawLines: false, diagonal: true)
        var table = "<table><tr><th>#</th><th style=\"text-align:left\">scenario</th><th>requests</th><th>plan chosen</th><th>oracle plan chosen</th><th>mean regret</th></tr>\n"
        for (i, sc) in scenarios.enumerated() {
            let rs = records.filter { $0.scenario == sc }
            let hits = rs.filter { $0.chosenPlan == $0.oraclePlan }.count
            let regret = rs.map { $0.oracleLatencySeconds > 0 ? $0.chosenLatencySeconds / $0.oracleLatencySeconds : 1 }
            let plans = orderedUnique(rs.map(\.chosenPlan)).joined(separator: ", ")
            table += "<tr><td>\(i + 1)</td><td style=\"text-align:left\">\(htmlEscape(sc))</td><td>\(rs.count)</td><td>\(htmlEscape(plans))</td><td>\(hits)/\(rs.count)</td>"
            table += "<td>\(String(format: "%.2f×", regret.reduce(0, +) / Double(max(regret.count, 1))))</td></tr>\n"
        }
        return "<h2>Inference routing</h2>\n<div class=\"row\"><figure>\(bars.svg())</figure><figure>\(scatter.svg())</figure></div>\n\(table)</table>\n"
    }

    static func page(title: String, body: String) -> String {
        """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>\(htmlEscape(title))</title>
        <style>
        body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;max-width:1400px}
        h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
        .meta{color:#666;font-size:13px}
        table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}
        th:first-child,td:first-child{text-align:left}table.targets td{text-align:left}
        .row{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}figure{margin:0}
        svg.chart{font-size:11px;background:#fff}
        svg .title{font-size:13px;font-weight:600}svg .label{fill:#444}svg .tick{fill:#555}
        svg .grid{stroke:#eee}svg .axis,svg .tickmark{stroke:#333}
        svg polyline.series{fill:none;stroke-width:2}svg .diagonal{stroke:#999;stroke-dasharray:4 3}
        </style></head><body>
        \(body)
        </body></html>

        """
    }
}

func orderedUnique(_ xs: [String]) -> [String] {
    var seen = Set<String>()
    return xs.filter { seen.insert($0).inserted }
}

func byteString(_ b: Int) -> String {
    let d = Double(b)
    if d >= 1e9 { return String(format: "%.2f GB", d / 1e9) }
    if d >= 1e6 { return String(format: "%.2f MB", d / 1e6) }
    if d >= 1e3 { return String(format: "%.1f kB", d / 1e3) }
    return "\(b) B"
}

func durationString(_ s: Double) -> String {
    s >= 3600 ? String(format: "%.2f h", s / 3600) : s >= 60 ? String(format: "%.1f min", s / 60) : String(format: "%.1f s", s)
}
