import Foundation

/// How the pool chunks are dealt to devices.
public enum PartitionScheme: String, Sendable, Codable, CaseIterable {
    /// Each device holds one domain; a domain's devices get skewed (log-normal) shares.
    case domain
    /// For each domain, shares over devices ~ Dirichlet(α) (Hsu et al. 2019): small α gives
    /// devices dominated by one domain, large α approaches IID.
    case dirichlet
    /// A uniform shuffle dealt into equal parts.
    case iid
}

public struct PartitionSpec: Sendable, Codable, Equatable {
    public var devices: Int
    public var scheme: PartitionScheme
    /// Dirichlet concentration (used by `.dirichlet`).
    public var alpha: Double
    public var seed: UInt64
    /// Share of each device's chunks kept for validation.
    public var validationFraction: Double
    /// σ of the log-normal device sizes in the `.domain` scheme (0: equal sizes).
    public var sizeSigma: Double
    /// Every device gets at least this many chunks (one for validation, the rest for training).
    public var minChunksPerDevice: Int

    public init(devices: Int, scheme: PartitionScheme, alpha: Double = 0.5, seed: UInt64 = 0,
                validationFraction: Double = 0.1, sizeSigma: Double = 1.0, minChunksPerDevice: Int = 2) {
        self.devices = devices
        self.scheme = scheme
        self.alpha = alpha
        self.seed = seed
        self.validationFraction = validationFraction
        self.sizeSigma = sizeSigma
        self.minChunksPerDevice = minChunksPerDevice
    }

    enum CodingKeys: String, CodingKey {
        case devices, scheme, alpha, seed, validationFraction, sizeSigma, minChunksPerDevice
    }

    /// Only `devices` and `scheme` are required, so a YAML/JSON config can name just those.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = PartitionSpec(devices: 1, scheme: .iid)
        self.init(devices: try c.decode(Int.self, forKey: .devices),
                  scheme: try c.decode(PartitionScheme.self, forKey: .scheme),
                  alpha: try c.decodeIfPresent(Double.self, forKey: .alpha) ?? defaults.alpha,
                  seed: try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? defaults.seed,
                  validationFraction: try c.decodeIfPresent(Double.self, forKey: .validationFraction) ?? defaults.validationFraction,
                  sizeSigma: try c.decodeIfPresent(Double.self, forKey: .sizeSigma) ?? defaults.sizeSigma,
                  minChunksPerDevice: try c.decodeIfPresent(Int.self, forKey: .minChunksPerDevice) ?? defaults.minChunksPerDevice)
    }
}

/// Deals pool chunks to devices. Pure: same pools and spec, same result.
public enum Partitioner {
    /// `pools[k]` holds the pool chunk ids of domain k. Returns, per device, its chunk ids.
    /// Every pool chunk of a used domain goes to exactly one device; the `.domain` scheme with
    /// fewer devices than domains uses the first `devices` domains of a seeded order, and
    /// `unused` lists the domains left out.
    public static func assign(pools: [[Int]], spec: PartitionSpec) throws -> (devices: [[Int]], unused: [Int]) {
        let d = spec.devices
        guard d >= 1 else { throw DataError.invalidPartition("need at least one device, got \(d)") }
        let minChunks = max(1, spec.minChunksPerDevice)
        let total = pools.reduce(0) { $0 + $1.count }
        guard total >= d * minChunks else {
            throw DataError.invalidPartition("\(total) pool chunks cannot give \(d) devices \(minChunks) chunks each; "
                + "use fewer devices, more text or a smaller --chunk-bytes")
        }
        var rng = SplitMix64(seed: spec.seed)
        switch spec.scheme {
        case .iid:
            var all = pools.flatMap { $0 }
            rng.shuffle(&all)
            let counts = proportionalCounts(total: all.count, weights: [Double](repeating: 1, count: d))
            return (slices(all, counts), [])
        case .domain:
            return try byDomain(pools: pools, spec: spec, minChunks: minChunks, rng: &rng)
        case .dirichlet:
            guard spec.alpha > 0, spec.alpha.isFinite else {
                throw DataError.invalidPartition("Dirichlet α must be a positive number, got \(spec.alpha)")
            }
            return (dirichlet(pools: pools, devices: d, alpha: spec.alpha, minChunks: minChunks, rng: &rng), [])
        }
    }

    static func slices(_ items: [Int], _ counts: [Int]) -> [[Int]] {
        var start = 0
        return counts.map { n in
            defer { start += n }
            return Array(items[start..<(start + n)])
        }
    }

    static func byDomain(pools: [[Int]], spec: PartitionSpec, minChunks: Int,
                         rng: inout SplitMix64) throws -> (devices: [[Int]], unused: [Int]) {
        var domainOrder = pools.indices.filter { !pools[$0].isEmpty }
        rng.shuffle(&domainOrder)
        let used = Array(domainOrder.prefix(spec.devices))
        let unused = Array(domainOrder.dropFirst(spec.devices)).sorted()
        // Device i holds domain used[i % K]: every used domain has ⌊D/K⌋ or ⌈D/K⌉ devices.
        var result = [[Int]](repeating: [], count: spec.devices)
        for (slot, k) in used.enumerated() {
            let members = Array(stride(from: slot, to: spec.devices, by: used.count))
            var chunks = pools[k]
            guard chunks.count >= members.count * minChunks else {
                throw DataError.invalidPartition("domain \(k) has \(chunks.count) pool chunks, too few for "
                    + "\(members.count) devices with \(minChunks) each")
            }
            rng.shuffle(&chunks)
            let weights = members.map { _ in Foundation.exp(spec.sizeSigma * (rng.nextGaussian() as Double)) }
            // Give everyone the minimum, then split the rest by the log-normal weights.
            let extra = proportionalCounts(total: chunks.count - members.count * minChunks, weights: weights)
            for (j, part) in slices(chunks, extra.map { $0 + minChunks }).enumerated() {
                result[members[j]] = part
            }
        }
        return (result, unused)
    }

    static func dirichlet(pools: [[Int]], devices d: Int, alpha: Double, minChunks: Int,
                          rng: inout SplitMix64) -> [[Int]] {
        var result = [[Int]](repeating: [], count: d)
        for pool in pools where !pool.isEmpty {
            var chunks = pool
            rng.shuffle(&chunks)
            let shares = rng.dirichlet(alpha: alpha, count: d)
            for (device, part) in slices(chunks, proportionalCounts(total: chunks.count, weights: shares)).enumerated() {
                result[device] += part
            }
        }
        // Small α leaves some devices (nearly) empty. Top them up from the largest device,
        // taking its most common domain's chunks, so the mixes stay as concentrated as drawn.
        let domainOf = Dictionary(uniqueKeysWithValues: pools.enumerated().flatMap { k, ids in ids.map { ($0, k) } })
        for device in 0..<d {
            while result[device].count < minChunks {
                guard let donor = result.indices.max(by: { result[$0].count < result[$1].count }),
                      result[donor].count > minChunks else { break }
                var counts: [Int: Int] = [:]
                for id in result[donor] { counts[domainOf[id] ?? 0, default: 0] += 1 }
                let top = counts.max { ($0.value, -$0.key) < ($1.value, -$1.key) }?.key ?? 0
                let recipientDomain = result[device].first.flatMap { domainOf[$0] } ?? top
                let pick = result[donor].lastIndex { domainOf[$0] == recipientDomain }
                    ?? result[donor].lastIndex { domainOf[$0] == top } ?? (result[donor].count - 1)
                result[device].append(result[donor].remove(at: pick))
            }
        }
        return result
    }

    /// Splits one device's chunks into train and validation (at least one validation chunk
    /// when the device has two or more). Both lists come back sorted.
    public static func trainValidation(_ chunks: [Int], fraction: Double,
                                       rng: inout SplitMix64) -> (train: [Int], validation: [Int]) {
        var shuffled = chunks
        rng.shuffle(&shuffled)
        let n = shuffled.count
        let v = n >= 2 ? min(n - 1, max(1, Int((fraction * Double(n)).rounded()))) : 0
        return (Array(shuffled[v...]).sorted(), Array(shuffled[..<v]).sorted())
    }
}
