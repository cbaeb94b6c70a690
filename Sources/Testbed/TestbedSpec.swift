import Foundation
import Yams

/// A testbed scenario: hosts (each a network namespace running one stage node) and the links between them.
/// Rates are shaped in the kernel (htb on each sender's interface, one class per destination); one-way latencies
/// are added in user space by the sending stage node (these kernels have no netem).
///
///     heartbeat_ms: 200
///     model: {width: 128, layers: 6, heads: 4, vocab: 256, context: 64}
///     hosts:
///       - {name: device-0, role: device, flops: 2.0e7}
///       - {name: edge-0, role: edge, flops: 1.0e8, max_layers: 3}
///     links:
///       - {between: [device-0, edge-0], rate_mbit: 20, latency_ms: 2}
///       - {from: edge-0, to: device-0, rate_mbit: 50}        # one direction only
///     default_link: {rate_mbit: 1000, latency_ms: 0}        # pairs not listed
public struct TestbedSpec: Sendable, Equatable {
    public struct Host: Sendable, Equatable {
        public var name: String
        public var role: String
        /// FLOP/s the node emulates (`--flops --emulate-compute`), and its background load (`--load`).
        public var flops: Double
        public var load: Double
        public var maxLayers: Int?
        public var maxSessions: Int?
    }

    public struct Link: Sendable, Equatable {
        public var from: String
        public var to: String
        public var rateBitsPerSecond: Double
        public var latencySeconds: Double

        public init(from: String, to: String, rateBitsPerSecond: Double, latencySeconds: Double) {
            self.from = from; self.to = to; self.rateBitsPerSecond = rateBitsPerSecond; self.latencySeconds = latencySeconds
        }
    }

    public struct ModelShape: Sendable, Equatable {
        public var width = 128, layers = 6, heads = 4, vocab = 256, context = 64
    }

    public var heartbeatMs = 200
    public var model = ModelShape()
    public var hosts: [Host] = []
    /// Directed links (a `between` entry gives both directions).
    public var links: [Link] = []
    public var defaultRateBitsPerSecond = 1e9
    public var defaultLatencySeconds = 0.0

    public init() {}

    public func host(_ name: String) -> Host? { hosts.first { $0.name == name } }

    /// The link from → to (the default one if not listed).
    public func link(_ from: String, _ to: String) -> Link {
        links.last { $0.from == from && $0.to == to }
            ?? Link(from: from, to: to, rateBitsPerSecond: defaultRateBitsPerSecond, latencySeconds: defaultLatencySeconds)
    }

    public static func load(_ url: URL) throws -> TestbedSpec {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw TestbedError.badScenario("cannot read \(url.path)")
        }
        return try parse(yaml: text)
    }

    /// Parses and validates; every error names the field.
    public static func parse(yaml text: String) throws -> TestbedSpec {
        let root: Any?
        do { root = try Yams.load(yaml: text) } catch { throw TestbedError.badScenario("not YAML: \(error)") }
        guard let top = root as? [String: Any] else { throw TestbedError.badScenario("the file must be a mapping with hosts and links") }
        let known: Set = ["heartbeat_ms", "model", "hosts", "links", "default_link"]
        if let bad = top.keys.sorted().first(where: { !known.contains($0) }) {
            throw TestbedError.badScenario("unknown key '\(bad)'; expected \(known.sorted().joined(separator: ", "))")
        }
        var spec = TestbedSpec()
        if let hb = top["heartbeat_ms"] { spec.heartbeatMs = try int(hb, "heartbeat_ms", min: 10) }
        if let m = top["model"] {
            guard let m = m as? [String: Any] else { throw TestbedError.badScenario("model must be a mapping") }
            for (k, v) in m {
                switch k {
                case "width": spec.model.width = try int(v, "model.width", min: 1)
                case "layers": spec.model.layers = try int(v, "model.layers", min: 1)
                case "heads": spec.model.heads = try int(v, "model.heads", min: 1)
                case "vocab": spec.model.vocab = try int(v, "model.vocab", min: 2)
                case "context": spec.model.context = try int(v, "model.context", min: 2)
                default: throw TestbedError.badScenario("unknown key model.\(k); expected width, layers, heads, vocab, context")
                }
            }
            guard spec.model.width % spec.model.heads == 0 else {
                throw TestbedError.badScenario("model.width \(spec.model.width) must be a multiple of model.heads \(spec.model.heads)")
            }
        }
        guard let hosts = top["hosts"] as? [[String: Any]], !hosts.isEmpty else {
            throw TestbedError.badScenario("hosts must be a non-empty list of {name, role, flops}")
        }
        for (i, h) in hosts.enumerated() {
            let at = "hosts[\(i)]"
            if let bad = h.keys.sorted().first(where: { !["name", "role", "flops", "load", "max_layers", "max_sessions"].contains($0) }) {
                throw TestbedError.badScenario("unknown key \(at).\(bad)")
            }
            guard let name = h["name"] as? String, name.range(of: "^[a-z][a-z0-9-]{0,15}$", options: .regularExpression) != nil else {
                throw TestbedError.badScenario("\(at).name must be 1-16 of a-z, 0-9 and '-', starting with a letter")
            }
            guard let role = h["role"] as? String, ["device", "edge", "cloud"].contains(role) else {
                throw TestbedError.badScenario("\(at).role must be device, edge or cloud")
            }
            guard spec.host(name) == nil else { throw TestbedError.badScenario("\(at).name '\(name)' appears twice") }
            let flops = try number(h["flops"] ?? 0, "\(at).flops")
            guard flops > 0 else { throw TestbedError.badScenario("\(at).flops must be > 0") }
            let load = try number(h["load"] ?? 0, "\(at).load")
            guard (0..<1).contains(load) else { throw TestbedError.badScenario("\(at).load must be in [0, 1)") }
            spec.hosts.append(Host(name: name, role: role, flops: flops, load: load,
                                   maxLayers: try h["max_layers"].map { try int($0, "\(at).max_layers", min: 1) },
                                   maxSessions: try h["max_sessions"].map { try int($0, "\(at).max_sessions", min: 0) }))
        }
        if let d = top["default_link"] {
            guard let d = d as? [String: Any] else { throw TestbedError.badScenario("default_link must be a mapping") }
            let (rate, latency) = try rateAndLatency(d, "default_link")
            spec.defaultRateBitsPerSecond = rate ?? spec.defaultRateBitsPerSecond
            spec.defaultLatencySeconds = latency
        }
        for (i, l) in ((top["links"] as? [[String: Any]]) ?? []).enumerated() {
            let at = "links[\(i)]"
            if let bad = l.keys.sorted().first(where: { !["between", "from", "to", "rate_mbit", "latency_ms"].contains($0) }) {
                throw TestbedError.badScenario("unknown key \(at).\(bad)")
            }
            var pairs: [(String, String)]
            if let b = l["between"] as? [String], b.count == 2 {
                pairs = [(b[0], b[1]), (b[1], b[0])]
            } else if let f = l["from"] as? String, let t = l["to"] as? String {
                pairs = [(f, t)]
            } else {
                throw TestbedError.badScenario("\(at) needs between: [a, b] or from: a, to: b")
            }
            let (rate, latency) = try rateAndLatency(l, at)
            for (f, t) in pairs {
                guard spec.host(f) != nil, spec.host(t) != nil, f != t else {
                    throw TestbedError.badScenario("\(at): '\(f)' → '\(t)' must join two different hosts of the list")
                }
                spec.links.append(Link(from: f, to: t, rateBitsPerSecond: rate ?? spec.defaultRateBitsPerSecond, latencySeconds: latency))
            }
        }
        return spec
    }

    private static func rateAndLatency(_ m: [String: Any], _ at: String) throws -> (Double?, Double) {
        let rate = try m["rate_mbit"].map { try number($0, "\(at).rate_mbit") * 1e6 }
        if let r = rate, !(r >= 1e4) { throw TestbedError.badScenario("\(at).rate_mbit must be at least 0.01") }
        let latency = try number(m["latency_ms"] ?? 0, "\(at).latency_ms") / 1000
        guard latency >= 0, latency < 10 else { throw TestbedError.badScenario("\(at).latency_ms must be in [0, 10000)") }
        return (rate, latency)
    }

    private static func number(_ v: Any, _ field: String) throws -> Double {
        switch v {
        case let d as Double where d.isFinite: return d
        case let i as Int: return Double(i)
        case let s as String: if let d = Double(s), d.isFinite { return d }
        default: break
        }
        throw TestbedError.badScenario("\(field) must be a number, got \(v)")
    }

    private static func int(_ v: Any, _ field: String, min: Int) throws -> Int {
        guard let i = v as? Int, i >= min else { throw TestbedError.badScenario("\(field) must be an integer ≥ \(min), got \(v)") }
        return i
    }
}
