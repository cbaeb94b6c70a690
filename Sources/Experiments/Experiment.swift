import EdgeEnvironment
import Federation
import Foundation
import Yams

/// A bad experiment file: names the key (dotted path) and what to write instead.
public enum ExperimentError: Error, Equatable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case malformedYAML(reason: String)
    case wrongType(key: String, expected: String, got: String)
    case badValue(key: String, value: String, reason: String)
    case unknownKey(key: String, known: [String])
    /// Two settings that cannot run together.
    case conflict(keys: [String], reason: String)

    public var description: String {
        switch self {
        case let .unreadable(p, r): return "cannot read experiment file \(p): \(r)"
        case let .malformedYAML(r): return "experiment file is not valid YAML: \(r)"
        case let .wrongType(k, e, g): return "experiment key '\(k)' must be \(e), got \(g)"
        case let .badValue(k, v, r): return "experiment key '\(k)' = \(v) is invalid: \(r)"
        case let .unknownKey(k, known): return "unknown experiment key '\(k)'; known keys here: \(known.joined(separator: ", "))"
        case let .conflict(keys, r): return "experiment keys \(keys.map { "'\($0)'" }.joined(separator: " and ")) cannot be combined: \(r)"
        }
    }
}

/// One experiment file (YAML): model, data partition, LoRA, federation settings and the edge scenario.
public struct Experiment: Sendable, Equatable {
    public struct DataSection: Sendable, Equatable {
        public var devices = 4
        public var scheme = "domain"
        public var alpha = 0.5
        public var domains: [String] = []
        public var seed: UInt64 = 0
        /// A prepared partition folder; nil: `fi run` prepares one into `<out>/data`.
        public var manifest: String?
        /// Size of the text pieces partitions deal out: thousands of devices need smaller ones (the built-in corpus
        /// is about 16 MB; each device needs at least two pieces).
        public var chunkBytes = 1536
        public init() {}
    }

    public struct LoRASection: Sendable, Equatable {
        public var rank = 4
        public var alpha: Double = 8
        public var targets = ["c_attn"]
        public init() {}
    }

    public struct FederationSection: Sendable, Equatable {
        /// fedavg, clustered, async or hierarchical (Experiment.paradigms).
        public var paradigm = "fedavg"
        public var rounds = 5
        public var localSteps = 10
        public var batch = 4
        public var seq = 64
        public var lr: Double = 2e-3
        public var fraction: Double = 1
        public var quorum = 1
        public var deadlineS: Double = 60
        public var evalTokens = 4096
        /// Evaluate a fixed seeded sample of at most this many devices (0: every device), for large federations.
        public var evalDevices = 0
        /// How each round's updates combine: fedavg | median | trimmed_mean | krum | multi_krum | norm_bounded.
        public var strategy = StrategySettings()
        /// No participant weighs more than this share of a round's total, whatever sample count it claims.
        public var maxWeight = 0.5
        public var serverOptimizer = ServerOptimizerConfig()
        /// FedProx μ (0: plain local training).
        public var proximalMu = 0.0
        public init() {}
    }

    /// `clustered: {mode: auto|oracle|local, warmup_rounds, recluster_every, method, sketch_dim, init}`
    public struct ClusteredSection: Sendable, Equatable {
        public var mode = "auto"
        public var settings = ClusteredSettings()
        public init() {}
    }

    /// `async: {mode, alpha, staleness{kind,a,b}, buffer, history, eval_every}`
    public struct AsyncSection: Sendable, Equatable {
        public var settings = AsyncSettings()
        /// One metrics record (with evaluation) every this many applied updates; 0 = the device count.
        public var evalEvery = 0
        public init() {}
    }

    /// `compression: {codec: fp32|fp16|int8|topk, topk_fraction, error_feedback}`
    public struct CompressionSection: Sendable, Equatable {
        public var codec = "fp32"
        public var topkFraction = 0.01
        /// Each device adds what its lossy codec dropped to its next update (Federation's ErrorFeedback).
        public var errorFeedback = true
        public init() {}
    }

    public var name = "experiment"
    public var seed: UInt64 = 0
    public var model = "models/base"
    public var data = DataSection()
    public var lora = LoRASection()
    public var federation = FederationSection()
    public var clustered = ClusteredSection()
    public var async = AsyncSection()
    /// naive | frozen_a | product_svd
    public var loraAggregation = "naive"
    /// `loraAggregation` as the federation math's mode.
    public var loraMode: LoRAAggregationMode {
        switch loraAggregation {
        case "frozen_a": return .frozenA
        case "product_svd": return .productSVD
        default: return .naive
        }
    }
    public var compression = CompressionSection()
    public var scenario = EdgeEnvironment.Scenario()
    public var scenarioName = "builtin-default"
    /// `hierarchical:` (edges, kappa1, kappa2); see Hierarchy.swift.
    public var hierarchical: HierarchicalSection?
    /// `simulation: true`: `fi run` drives the round engine on the virtual clock (Simulation library) instead of
    /// starting the services: time is accounted from the scenario, not slept; the training is real.
    public var simulation = false
    /// `privacy:` (clip, noise, accounting); see ExperimentPrivacy.swift.
    public var privacy: PrivacySettings?
    /// Folder the file was read from: relative paths resolve against the working directory, not this.
    public var sourcePath: String?

    public init() {}

    public static let paradigms = ["fedavg", "clustered", "async", "hierarchical"]
    public static let clusteredModes = ["auto", "oracle", "local"]
    public static let loraAggregations = ["naive", "frozen_a", "product_svd"]
    public static let codecs = ["fp32", "fp16", "int8", "topk"]
    public static let defaultScenarioPath = "examples/scenarios/default.yaml"

    static func loadScenario(_ path: String) throws -> EdgeEnvironment.Scenario {
        do { return try EdgeEnvironment.Scenario.load(URL(fileURLWithPath: path)) } catch {
            throw ExperimentError.badValue(key: "scenario", value: path, reason: "\(error)")
        }
    }

    /// Reads and validates an experiment file.
    public static func load(path: String) throws -> Experiment {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ExperimentError.unreadable(path: path, reason: error.localizedDescription)
        }
        var e = try parse(yaml: text)
        e.sourcePath = path
        return e
    }

    public static func parse(yaml: String) throws -> Experiment {
        let root: Any?
        do { root = try Yams.load(yaml: yaml) } catch { throw ExperimentError.malformedYAML(reason: "\(error)") }
        guard let top = root else { return Experiment() }
        let r = try Keys(top, path: "")
        var e = Experiment()
        try r.only(["name", "seed", "model", "data", "lora", "federation", "scenario", "clustered", "async", "lora_aggregation",
                    "compression", "hierarchical", "simulation", "privacy"])
        e.name = try r.string("name") ?? e.name
        e.seed = try r.uint("seed") ?? e.seed
        e.model = try r.string("model") ?? e.model
        e.simulation = try r.bool("simulation") ?? e.simulation
        if let d = try r.section("data") {
            try d.only(["devices", "scheme", "alpha", "domains", "seed", "manifest", "chunk_bytes"])
            e.data.devices = try d.int("devices", min: 1) ?? e.data.devices
            e.data.scheme = try d.string("scheme") ?? e.data.scheme
            guard ["domain", "dirichlet", "iid"].contains(e.data.scheme) else {
                throw ExperimentError.badValue(key: "data.scheme", value: e.data.scheme, reason: "use domain, dirichlet or iid")
            }
            e.data.alpha = try d.double("alpha", positive: true) ?? e.data.alpha
            e.data.domains = try d.strings("domains") ?? e.data.domains
            e.data.seed = try d.uint("seed") ?? e.data.seed
            e.data.manifest = try d.string("manifest")
            e.data.chunkBytes = try d.int("chunk_bytes", min: 64) ?? e.data.chunkBytes
        }
        if let l = try r.section("lora") {
            try l.only(["rank", "alpha", "targets"])
            e.lora.rank = try l.int("rank", min: 1) ?? e.lora.rank
            e.lora.alpha = try l.double("alpha", positive: true) ?? e.lora.alpha
            e.lora.targets = try l.strings("targets") ?? e.lora.targets
        }
        if let f = try r.section("federation") { try parseFederation(f, into: &e) }
        if let h = try r.section("hierarchical") { e.hierarchical = try HierarchicalSection.parse(h) }
        try parseParadigms(r, into: &e)
        if let p = try r.section("privacy") { try parsePrivacy(p, into: &e) }
        if let s = r.raw("scenario") {
            if let path = s as? String {
                e.scenario = try Experiment.loadScenario(path)
                e.scenarioName = path
            } else {
                _ = try Keys(s, path: "scenario")
                do {
                    e.scenario = try EdgeEnvironment.Scenario.decode(yaml: try Yams.dump(object: s))
                } catch {
                    throw ExperimentError.badValue(key: "scenario", value: "(inline)", reason: "\(error)")
                }
                e.scenarioName = "inline"
            }
        } else if FileManager.default.fileExists(atPath: Experiment.defaultScenarioPath) {
            e.scenario = try Experiment.loadScenario(Experiment.defaultScenarioPath)
            e.scenarioName = Experiment.defaultScenarioPath
        }
        try e.checkPrivacy()
        return e
    }
}

/// Typed access to one YAML mapping; every error names the dotted key.
struct Keys {
    let map: [String: Any]
    let path: String

    init(_ value: Any, path: String) throws {
        guard let m = value as? [String: Any] else {
            throw ExperimentError.wrongType(key: path.isEmpty ? "(top level)" : path, expected: "a mapping", got: describe(value))
        }
        map = m; self.path = path
    }

    func key(_ k: String) -> String { path.isEmpty ? k : path + "." + k }
    func raw(_ k: String) -> Any? { map[k] }

    func only(_ known: [String]) throws {
        for k in map.keys.sorted() where !known.contains(k) { throw ExperimentError.unknownKey(key: key(k), known: known) }
    }

    func section(_ k: String) throws -> Keys? {
        guard let v = map[k] else { return nil }
        return try Keys(v, path: key(k))
    }

    func string(_ k: String) throws -> String? {
        guard let v = map[k] else { return nil }
        if let s = v as? String { return s }
        if let i = v as? Int { return String(i) }
        throw ExperimentError.wrongType(key: key(k), expected: "a string", got: describe(v))
    }

    func int(_ k: String, min: Int = Int.min) throws -> Int? {
        guard let v = map[k] else { return nil }
        guard let i = v as? Int else { throw ExperimentError.wrongType(key: key(k), expected: "an integer", got: describe(v)) }
        guard i >= min else { throw ExperimentError.badValue(key: key(k), value: "\(i)", reason: "must be at least \(min)") }
        return i
    }

    func bool(_ k: String) throws -> Bool? {
        guard let v = map[k] else { return nil }
        guard let b = v as? Bool else { throw ExperimentError.wrongType(key: key(k), expected: "true or false", got: describe(v)) }
        return b
    }

    func uint(_ k: String) throws -> UInt64? {
        guard let i = try int(k, min: 0) else { return nil }
        return UInt64(i)
    }

    func double(_ k: String, positive: Bool = false) throws -> Double? {
        guard let v = map[k] else { return nil }
        let d: Double
        if let x = v as? Double { d = x } else if let i = v as? Int { d = Double(i) } else {
            throw ExperimentError.wrongType(key: key(k), expected: "a number", got: describe(v))
        }
        guard d.isFinite, !positive || d > 0 else {
            throw ExperimentError.badValue(key: key(k), value: "\(d)", reason: positive ? "must be a positive number" : "must be finite")
        }
        return d
    }

    func strings(_ k: String) throws -> [String]? {
        guard let v = map[k] else { return nil }
        if let s = v as? String { return s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        guard let list = v as? [Any] else { throw ExperimentError.wrongType(key: key(k), expected: "a list of strings", got: describe(v)) }
        return try list.map {
            guard let s = $0 as? String else { throw ExperimentError.wrongType(key: key(k), expected: "a list of strings", got: describe($0)) }
            return s
        }
    }
}

func describe(_ v: Any) -> String {
    switch v {
    case let s as String: return "the string \"\(s)\""
    case let i as Int: return "the integer \(i)"
    case let d as Double: return "the number \(d)"
    case is [Any]: return "a list"
    case is [String: Any]: return "a mapping"
    default: return "\(type(of: v))"
    }
}
