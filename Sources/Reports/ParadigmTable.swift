import Foundation

// table.md and table.json of a ParadigmComparison.

extension ParadigmComparison {
    public static let markdownFile = "table.md"
    public static let jsonFile = "table.json"

    /// Paradigms, per-domain losses and the issue-7 targets (every target shown, met or not).
    public func markdown() -> String {
        func num(_ x: Double?, _ format: String = "%.4f") -> String { x.map { $0.isFinite ? String(format: format, $0) : "\($0)" } ?? "–" }
        var out = "# Paradigm comparison\n\n"
        if let m = machine { out += "Ran on \(m).\n\n" }
        out += "| paradigm | rounds | final val loss (mean over domains) | × FedAvg | sim time to FedAvg's loss (s) | sim time (s) | cloud-bound bytes | ARI |\n"
        out += "|---|---:|---:|---:|---:|---:|---:|---:|\n"
        for p in paradigms {
            out += "| \(p.paradigm) | \(p.rounds) | \(num(p.finalValLoss)) | \(num(p.ratioToFedAvg, "%.3f")) | "
            out += "\(num(p.timeToFedAvgLossSeconds, "%.1f")) | \(num(p.simTimeSeconds, "%.1f")) | \(p.cloudBoundBytes) | \(num(p.ari, "%.3f")) |\n"
        }
        let domains = Array(Set(paradigms.flatMap { $0.valLossByDomain.keys })).sorted()
        if !domains.isEmpty {
            out += "\n## Final validation loss per domain\n\n| paradigm | " + domains.joined(separator: " | ") + " |\n"
            out += "|---|" + domains.map { _ in "---:" }.joined(separator: "|") + "|\n"
            for p in paradigms {
                out += "| \(p.paradigm) | " + domains.map { num(p.valLossByDomain[$0]) }.joined(separator: " | ") + " |\n"
            }
        }
        out += "\n## \(settings.targetSet == Settings.quickstart ? "Quickstart" : "Issue 7") targets\n\n| target | measured | goal | status |\n|---|---|---|---|\n"
        for t in targets {
            let status = t.status == .met ? "met" : t.status == .missed ? "**missed**" : "not measured"
            out += "| \(t.description) | \(t.measuredText) | \(t.goal) | \(status) |\n"
        }
        let met = targets.filter { $0.status == .met }.count
        out += "\n\(met) of \(targets.count) targets met.\n"
        return out
    }

    /// The short comparison a terminal shows at the end of a run: one line per paradigm (final loss, × FedAvg, each
    /// domain, ARI), then the targets.
    public func terminalTable() -> String {
        func num(_ x: Double?, _ format: String = "%.4f") -> String { x.map { $0.isFinite ? String(format: format, $0) : "\($0)" } ?? "–" }
        let domains = Array(Set(paradigms.flatMap { $0.valLossByDomain.keys })).sorted()
        let header = ["paradigm", "val loss", "× FedAvg"] + domains + ["ARI"]
        var rows = [header]
        for p in paradigms {
            rows.append([p.paradigm, num(p.finalValLoss), num(p.ratioToFedAvg, "%.3f")] + domains.map { num(p.valLossByDomain[$0]) } + [num(p.ari, "%.2f")])
        }
        let widths = header.indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
        var out = rows.map { r in
            r.enumerated().map { c, v in
                let pad = String(repeating: " ", count: widths[c] - v.count)
                return c == 0 ? v + pad : pad + v
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
        for t in targets {
            let status = t.status == .met ? "met" : t.status == .missed ? "MISSED" : "not measured"
            out += "\(t.description): \(t.measuredText) (goal \(t.goal): \(status))\n"
        }
        return out
    }

    /// Writes `table.md` and `table.json` into `directory` (created if needed).
    public func write(to directory: URL) throws {
        try RunFiles.writeTable(self, json: Self.jsonFile, markdown: markdown(), file: Self.markdownFile, to: directory)
    }
}

extension RunFiles {
    /// Writes a table as pretty-printed JSON and as markdown into `directory` (created if needed).
    static func writeTable<T: Encodable>(_ value: T, json: String, markdown: String, file: String, to directory: URL) throws {
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let encoder = RunFiles.encoder()
            encoder.outputFormatting.insert(.prettyPrinted)
            try encoder.encode(value).write(to: directory.appendingPathComponent(json), options: .atomic)
            try Foundation.Data(markdown.utf8).write(to: directory.appendingPathComponent(file), options: .atomic)
        } catch let e as EncodingError {
            throw MetricsWriterError.writeFailed(path: directory.appendingPathComponent(json).path, reason: "\(e)")
        } catch {
            throw MetricsWriterError.writeFailed(path: directory.path, reason: error.localizedDescription)
        }
    }
}
