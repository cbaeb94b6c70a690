import Foundation

/// The same experiments over several seeds (`fi experiment paper --seeds N`): each paradigm's final loss and each
/// target's measurement as mean ± sample standard deviation and range, so a claim can be stated against the spread
/// a re-run on the same commit shows.
public struct SeedSpread: Codable, Sendable, Equatable {
    public struct Stat: Codable, Sendable, Equatable {
        public var n: Int
        public var mean: Double
        /// Sample standard deviation (0 for one value).
        public var std: Double
        public var min: Double
        public var max: Double

        public init?(_ xs: [Double]) {
            let v = xs.filter(\.isFinite)
            guard !v.isEmpty else { return nil }
            n = v.count
            mean = v.reduce(0, +) / Double(v.count)
            let m = mean
            std = v.count > 1 ? (v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(v.count - 1)).squareRoot() : 0
            min = v.min()!; max = v.max()!
        }

        func text(_ format: String) -> String {
            "\(String(format: format, mean)) ± \(String(format: format, std)) [\(String(format: format, min))–\(String(format: format, max))]"
        }
    }

    public struct ParadigmRow: Codable, Sendable, Equatable {
        public var paradigm: String
        public var finalValLoss: Stat?
        public var ratioToFedAvg: Stat?
        public var ari: Stat?
    }

    public struct TargetSpread: Codable, Sendable, Equatable {
        public var id: String
        public var description: String
        public var goal: String
        public var measured: Stat?
        /// Seeds in which the target was met, of `seeds`.
        public var met: Int
        public var seeds: Int
    }

    public var seeds: Int
    public var machine: String?
    public var paradigms: [ParadigmRow]
    public var targets: [TargetSpread]

    public static let markdownFile = "table.md"
    public static let jsonFile = "seeds.json"

    public init(_ runs: [ParadigmComparison]) {
        seeds = runs.count
        machine = runs.compactMap(\.machine).first
        let names = Array(Set(runs.flatMap { $0.paradigms.map(\.paradigm) })).sorted()
        paradigms = names.map { name in
            let o = runs.compactMap { $0.outcome(name) }
            return ParadigmRow(paradigm: name, finalValLoss: Stat(o.compactMap(\.finalValLoss)), ratioToFedAvg: Stat(o.compactMap(\.ratioToFedAvg)),
                               ari: Stat(o.compactMap(\.ari)))
        }
        var ids: [String] = []
        for r in runs { for t in r.targets where !ids.contains(t.id) { ids.append(t.id) } }
        targets = ids.map { id in
            let rows = runs.compactMap { $0.targets.first { $0.id == id } }
            return TargetSpread(id: id, description: rows.last!.description, goal: rows.last!.goal, measured: Stat(rows.compactMap(\.measured)),
                                met: rows.filter { $0.status == .met }.count, seeds: runs.count)
        }
    }

    public func markdown() -> String {
        var out = "# Paradigm comparison over \(seeds) seeds\n\n"
        if let m = machine { out += "Ran on \(m).\n\n" }
        out += "Mean ± sample standard deviation [min–max] over the seeds (each seed: initialisation, data order, sampling). "
        out += "Per-seed tables: `seed-<k>/table.md`.\n\n"
        out += "| paradigm | final val loss | × FedAvg | ARI |\n|---|---:|---:|---:|\n"
        for p in paradigms {
            out += "| \(p.paradigm) | \(p.finalValLoss?.text("%.4f") ?? "–") | \(p.ratioToFedAvg?.text("%.3f") ?? "–") | \(p.ari?.text("%.3f") ?? "–") |\n"
        }
        out += "\n## Targets\n\n| target | measured | goal | met in |\n|---|---|---|---:|\n"
        for t in targets {
            out += "| \(t.description) | \(t.measured?.text("%.4f") ?? "not measured") | \(t.goal) | \(t.met) of \(t.seeds) |\n"
        }
        return out
    }

    /// Writes `table.md` and `seeds.json` into `directory`.
    public func write(to directory: URL) throws {
        try RunFiles.writeTable(self, json: Self.jsonFile, markdown: markdown(), file: Self.markdownFile, to: directory)
    }
}
