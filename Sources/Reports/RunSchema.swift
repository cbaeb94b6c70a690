import Foundation

// The run-directory schema: what experiments write and `fi report` reads.
//
//   <dir>/summary.json   one RunSummary
//   <dir>/metrics.jsonl  one MetricRecord per line: one per round and tier (and cluster)
//   <dir>/router.jsonl   one RouterRecord per line: router latency against the oracle
//
// An experiment directory holds either one run, several runs in sub-directories
// (one per paradigm), or one metrics.jsonl whose records carry a `paradigm` field.

/// Where a record was measured.
public enum Tier: String, Codable, Sendable, CaseIterable, Comparable {
    case device, edge, cloud

    public static func < (a: Tier, b: Tier) -> Bool { a.rank < b.rank }
    var rank: Int { self == .device ? 0 : self == .edge ? 1 : 2 }
}

/// One round of one tier (and optionally one cluster) of one paradigm.
public struct MetricRecord: Codable, Sendable, Equatable {
    public var round: Int
    /// "fedavg", "clustered", "hierarchical", "async", "local", "oracle", …; nil when the
    /// directory (sub-directory name or summary.json) says which paradigm this is.
    public var paradigm: String?
    public var tier: Tier
    public var cluster: Int?
    public var trainLoss: Double?
    /// Validation loss per domain.
    public var valLoss: [String: Double]
    public var bytesUp: Int
    public var bytesDown: Int
    public var participants: Int
    public var dropped: Int
    public var wallSeconds: Double
    public var simTimeSeconds: Double
    /// Cluster assignment at this round: device id -> cluster id.
    public var clusters: [String: Int]?
    /// Hierarchical edge-tier records: which edge aggregator (ordinal) this is.
    public var edge: Int?
    /// Differential privacy: ε spent so far, at the run's δ (summary notes `dp_delta`).
    public var epsilon: Double?

    public init(round: Int, paradigm: String? = nil, tier: Tier, cluster: Int? = nil,
                trainLoss: Double? = nil, valLoss: [String: Double] = [:],
                bytesUp: Int = 0, bytesDown: Int = 0, participants: Int = 0, dropped: Int = 0,
                wallSeconds: Double = 0, simTimeSeconds: Double = 0, clusters: [String: Int]? = nil, edge: Int? = nil,
                epsilon: Double? = nil) {
        self.round = round; self.paradigm = paradigm; self.tier = tier; self.cluster = cluster
        self.trainLoss = trainLoss; self.valLoss = valLoss
        self.bytesUp = bytesUp; self.bytesDown = bytesDown
        self.participants = participants; self.dropped = dropped
        self.wallSeconds = wallSeconds; self.simTimeSeconds = simTimeSeconds; self.clusters = clusters
        self.edge = edge
        self.epsilon = epsilon
    }

    enum CodingKeys: String, CodingKey {
        case round, paradigm, tier, cluster, clusters, edge, epsilon
        case trainLoss = "train_loss", valLoss = "val_loss"
        case bytesUp = "bytes_up", bytesDown = "bytes_down"
        case participants, dropped
        case wallSeconds = "wall_s", simTimeSeconds = "sim_time_s"
    }

    // `round` and `tier` are required; counters default to zero so a producer can omit them.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        round = try c.decode(Int.self, forKey: .round)
        paradigm = try c.decodeIfPresent(String.self, forKey: .paradigm)
        tier = try c.decode(Tier.self, forKey: .tier)
        cluster = try c.decodeIfPresent(Int.self, forKey: .cluster)
        trainLoss = try c.decodeIfPresent(Double.self, forKey: .trainLoss)
        valLoss = try c.decodeIfPresent([String: Double].self, forKey: .valLoss) ?? [:]
        bytesUp = try c.decodeIfPresent(Int.self, forKey: .bytesUp) ?? 0
        bytesDown = try c.decodeIfPresent(Int.self, forKey: .bytesDown) ?? 0
        participants = try c.decodeIfPresent(Int.self, forKey: .participants) ?? 0
        dropped = try c.decodeIfPresent(Int.self, forKey: .dropped) ?? 0
        wallSeconds = try c.decodeIfPresent(Double.self, forKey: .wallSeconds) ?? 0
        simTimeSeconds = try c.decodeIfPresent(Double.self, forKey: .simTimeSeconds) ?? 0
        clusters = try c.decodeIfPresent([String: Int].self, forKey: .clusters)
        edge = try c.decodeIfPresent(Int.self, forKey: .edge)
        epsilon = try c.decodeIfPresent(Double.self, forKey: .epsilon)
    }
}

/// One routed inference request: the plan the router chose against the best plan in hindsight.
public struct RouterRecord: Codable, Sendable, Equatable {
    public var scenario: String
    public var chosenPlan: String
    public var chosenLatencySeconds: Double
    public var oraclePlan: String
    public var oracleLatencySeconds: Double
    public var localLatencySeconds: Double
    public var cloudLatencySeconds: Double

    public init(scenario: String, chosenPlan: String, chosenLatencySeconds: Double,
                oraclePlan: String, oracleLatencySeconds: Double,
                localLatencySeconds: Double, cloudLatencySeconds: Double) {
        self.scenario = scenario; self.chosenPlan = chosenPlan
        self.chosenLatencySeconds = chosenLatencySeconds
        self.oraclePlan = oraclePlan; self.oracleLatencySeconds = oracleLatencySeconds
        self.localLatencySeconds = localLatencySeconds; self.cloudLatencySeconds = cloudLatencySeconds
    }

    enum CodingKeys: String, CodingKey {
        case scenario
        case chosenPlan = "chosen_plan", chosenLatencySeconds = "chosen_latency_s"
        case oraclePlan = "oracle_plan", oracleLatencySeconds = "oracle_latency_s"
        case localLatencySeconds = "local_latency_s", cloudLatencySeconds = "cloud_latency_s"
    }
}

/// `summary.json`: what a run was and how it ended. Written atomically at the end (and may be
/// rewritten during a run), so a reader never sees half a file.
public struct RunSummary: Codable, Sendable, Equatable {
    public var paradigm: String?
    public var rounds: Int
    public var devices: Int
    public var finalValLoss: [String: Double]
    public var bytesUp: Int
    public var bytesDown: Int
    public var wallSeconds: Double
    public var simTimeSeconds: Double
    /// Adjusted Rand index of the final clustering against the true domains (clustered runs).
    public var ari: Double?
    /// Free-form settings worth showing in a report (seed, model, learning rate, …).
    public var notes: [String: String]

    public init(paradigm: String? = nil, rounds: Int = 0, devices: Int = 0,
                finalValLoss: [String: Double] = [:], bytesUp: Int = 0, bytesDown: Int = 0,
                wallSeconds: Double = 0, simTimeSeconds: Double = 0, ari: Double? = nil,
                notes: [String: String] = [:]) {
        self.paradigm = paradigm; self.rounds = rounds; self.devices = devices
        self.finalValLoss = finalValLoss; self.bytesUp = bytesUp; self.bytesDown = bytesDown
        self.wallSeconds = wallSeconds; self.simTimeSeconds = simTimeSeconds
        self.ari = ari; self.notes = notes
    }

    enum CodingKeys: String, CodingKey {
        case paradigm, rounds, devices, ari, notes
        case finalValLoss = "final_val_loss"
        case bytesUp = "bytes_up", bytesDown = "bytes_down"
        case wallSeconds = "wall_s", simTimeSeconds = "sim_time_s"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        paradigm = try c.decodeIfPresent(String.self, forKey: .paradigm)
        rounds = try c.decodeIfPresent(Int.self, forKey: .rounds) ?? 0
        devices = try c.decodeIfPresent(Int.self, forKey: .devices) ?? 0
        finalValLoss = try c.decodeIfPresent([String: Double].self, forKey: .finalValLoss) ?? [:]
        bytesUp = try c.decodeIfPresent(Int.self, forKey: .bytesUp) ?? 0
        bytesDown = try c.decodeIfPresent(Int.self, forKey: .bytesDown) ?? 0
        wallSeconds = try c.decodeIfPresent(Double.self, forKey: .wallSeconds) ?? 0
        simTimeSeconds = try c.decodeIfPresent(Double.self, forKey: .simTimeSeconds) ?? 0
        ari = try c.decodeIfPresent(Double.self, forKey: .ari)
        notes = try c.decodeIfPresent([String: String].self, forKey: .notes) ?? [:]
    }
}

/// One applied (or buffered/rejected) update of an asynchronous run, a line of `updates.jsonl`: the sim-time order.
public struct AsyncUpdateRecord: Codable, Sendable, Equatable {
    public var index: Int
    public var device: String
    public var arrival: Double
    public var dispatchSimTime: Double
    public var dispatchVersion: UInt64
    public var staleness: UInt64
    /// applied | buffered | rejected
    public var outcome: String
    public var version: UInt64

    public init(index: Int, device: String, arrival: Double, dispatchSimTime: Double, dispatchVersion: UInt64, staleness: UInt64,
                outcome: String, version: UInt64) {
        self.index = index; self.device = device; self.arrival = arrival; self.dispatchSimTime = dispatchSimTime
        self.dispatchVersion = dispatchVersion; self.staleness = staleness; self.outcome = outcome; self.version = version
    }
}

/// File names inside a run directory, and the JSON coding they use.
public enum RunFiles {
    /// A diverged run writes NaN or infinite losses; JSON has no such numbers, so they are
    /// written as the strings "nan", "inf", "-inf" (and read back; plots skip them).
    public static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }

    public static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }

    public static let summary = "summary.json"
    public static let metrics = "metrics.jsonl"
    public static let router = "router.jsonl"
    public static let updates = "updates.jsonl"
}
