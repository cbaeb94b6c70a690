// Turns records into the series the report plots. Pure functions, tested directly.

public enum XAxis: Sendable { case round, simTime }

extension Run {
    /// Domains with a validation loss anywhere in this run, sorted.
    public var domains: [String] {
        Array(Set(records.flatMap { $0.valLoss.keys })).sorted()
    }

    /// The tier whose validation losses the report shows: the highest tier that reports any
    /// (the cloud model for hierarchical runs, the global model for FedAvg, devices for "local").
    public var evaluationTier: Tier? {
        records.filter { !$0.valLoss.isEmpty }.map(\.tier).max()
    }

    /// Validation loss per domain at the evaluation tier, one series per domain. Several records
    /// of one round (one per cluster) are averaged; x is the round or the simulated time.
    public func valLossSeries(against x: XAxis) -> [Series] {
        guard let tier = evaluationTier else { return [] }
        let rows = records.filter { $0.tier == tier && !$0.valLoss.isEmpty }
        let byRound = Dictionary(grouping: rows, by: \.round)
        return domains.enumerated().map { (i, domain) in
            var pts: [(x: Double, y: Double)] = []
            for round in byRound.keys.sorted() {
                let rs = byRound[round] ?? []
                let vals = rs.compactMap { $0.valLoss[domain] }.filter(\.isFinite)
                guard !vals.isEmpty else { continue }
                let xv = x == .round ? Double(round) : (rs.map(\.simTimeSeconds).max() ?? 0)
                pts.append((xv, vals.reduce(0, +) / Double(vals.count)))
            }
            return Series(name: domain, points: pts, color: paletteColor(i))
        }
    }

    /// Training loss per tier by round (mean over the tier's records of a round), one series per tier.
    public func trainLossSeries() -> [Series] {
        Tier.allCases.enumerated().compactMap { (i, tier) in
            let byRound = Dictionary(grouping: records.filter { $0.tier == tier }, by: \.round)
            let pts = byRound.keys.sorted().compactMap { round -> (x: Double, y: Double)? in
                let vals = (byRound[round] ?? []).compactMap(\.trainLoss).filter(\.isFinite)
                return vals.isEmpty ? nil : (Double(round), vals.reduce(0, +) / Double(vals.count))
            }
            return pts.isEmpty ? nil : Series(name: tier.rawValue, points: pts, color: paletteColor(i))
        }
    }

    /// Mean validation loss over domains per round (for comparing paradigms on one chart).
    public func meanValLoss() -> [(x: Double, y: Double)] {
        let per = valLossSeries(against: .round)
        var sums: [Double: (Double, Int)] = [:]
        for s in per { for p in s.points { let o = sums[p.x] ?? (0, 0); sums[p.x] = (o.0 + p.y, o.1 + 1) } }
        return sums.sorted { $0.key < $1.key }.map { ($0.key, $0.value.0 / Double($0.value.1)) }
    }

    /// Total bytes (up + down) per tier over the whole run.
    public func bytesByTier() -> [Tier: (up: Int, down: Int)] {
        var out: [Tier: (up: Int, down: Int)] = [:]
        for r in records {
            let o = out[r.tier] ?? (0, 0)
            out[r.tier] = (o.up + r.bytesUp, o.down + r.bytesDown)
        }
        return out
    }

    /// Cluster assignments over time: devices sorted (numerically when their ids end in
    /// numbers), the rounds that carry assignments, and cluster[device][round index].
    /// A later record of the same round overrides an earlier one. Large runs are thinned
    /// evenly to at most `maxDevices` rows and `maxRounds` columns (the last round is kept).
    public func assignments(maxDevices: Int = 120, maxRounds: Int = 120)
        -> (devices: [String], rounds: [Int], cluster: [[Int?]], totalDevices: Int)? {
        var byRound: [Int: [String: Int]] = [:]
        for r in records { if let c = r.clusters { byRound[r.round, default: [:]].merge(c) { _, new in new } } }
        guard !byRound.isEmpty else { return nil }
        let allDevices = Array(Set(byRound.values.flatMap { $0.keys })).sorted(by: naturalLess)
        let rounds = thin(byRound.keys.sorted(), to: maxRounds)
        let devices = thin(allDevices, to: maxDevices)
        let grid = devices.map { d in rounds.map { byRound[$0]?[d] } }
        return (devices, rounds, grid, allDevices.count)
    }

    /// The last round seen.
    public var lastRound: Int { records.map(\.round).max() ?? 0 }
}

/// At most `n` elements spread evenly over `xs`, first and last included.
func thin<T>(_ xs: [T], to n: Int) -> [T] {
    guard xs.count > n, n >= 2 else { return xs.count > n ? Array(xs.prefix(max(n, 0))) : xs }
    return (0..<n).map { xs[$0 * (xs.count - 1) / (n - 1)] }
}

/// "dev-2" before "dev-10".
func naturalLess(_ a: String, _ b: String) -> Bool {
    func split(_ s: String) -> (String, Int?) {
        let digits = s.reversed().prefix { $0.isNumber }
        guard !digits.isEmpty else { return (s, nil) }
        return (String(s.dropLast(digits.count)), Int(String(digits.reversed())))
    }
    let (pa, na) = split(a), (pb, nb) = split(b)
    if pa == pb, let na, let nb, na != nb { return na < nb }
    return a < b
}
