import Foundation
import Yams

/// What was wrong with a scenario file, naming the field and what to do.
public enum ScenarioError: Error, Equatable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case malformed(format: String, reason: String)
    case unknownKey(field: String, allowed: [String])
    case wrongType(field: String, expected: String)
    case invalidValue(field: String, value: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason):
            return "cannot read scenario '\(path)': \(reason)"
        case .malformed(let format, let reason):
            return "scenario is not valid \(format): \(reason)"
        case .unknownKey(let field, let allowed):
            return "unknown scenario key '\(field)': expected one of \(allowed.joined(separator: ", "))"
        case .wrongType(let field, let expected):
            return "scenario field '\(field)' must be \(expected)"
        case .invalidValue(let field, let value, let reason):
            return "scenario field '\(field)' = \(value) is invalid: \(reason)"
        }
    }
}

extension Scenario {
    /// Loads a scenario from a `.json` file, or YAML for any other extension; missing
    /// fields take the defaults, then every value is validated.
    public static func load(_ url: URL) throws -> Scenario {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ScenarioError.unreadable(path: url.path, reason: error.localizedDescription)
        }
        if url.pathExtension.lowercased() == "json" { return try decode(json: data) }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ScenarioError.malformed(format: "YAML", reason: "the file is not UTF-8 text")
        }
        return try decode(yaml: text)
    }

    public static func decode(yaml text: String) throws -> Scenario {
        let body = text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? "{}" : text
        return try decoding("YAML") { try YAMLDecoder().decode(Scenario.self, from: body) }
    }

    public static func decode(json data: Data) throws -> Scenario {
        try decoding("JSON") { try JSONDecoder().decode(Scenario.self, from: data) }
    }

    private static func decoding(_ format: String, _ body: () throws -> Scenario) throws -> Scenario {
        let scenario: Scenario
        do { scenario = try body() } catch let error as ScenarioError {
            throw error
        } catch let error as DecodingError {
            // Yams wraps errors thrown by our own init(from:) (unknown keys) as dataCorrupted.
            if case .dataCorrupted(let context) = error, let inner = context.underlyingError as? ScenarioError {
                throw inner
            }
            throw ScenarioError(error, format: format)
        } catch {
            throw ScenarioError.malformed(format: format, reason: "\(error)")
        }
        try scenario.validate()
        return scenario
    }
}

extension ScenarioError {
    init(_ error: DecodingError, format: String) {
        func field(_ path: [CodingKey]) -> String { path.map(\.stringValue).joined(separator: ".") }
        switch error {
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            self = context.codingPath.isEmpty
                ? .malformed(format: format, reason: "the top level must be a mapping of keys")
                : .wrongType(field: field(context.codingPath), expected: Self.name(of: type))
        case .dataCorrupted(let context):
            self = context.codingPath.isEmpty
                ? .malformed(format: format, reason: context.debugDescription)
                : .invalidValue(field: field(context.codingPath), value: "?", reason: context.debugDescription)
        case .keyNotFound(let key, let context):
            self = .wrongType(field: field(context.codingPath + [key]), expected: "present")
        @unknown default:
            self = .malformed(format: format, reason: "\(error)")
        }
    }

    private static func name(of type: Any.Type) -> String {
        switch type {
        case is Double.Type: return "a number"
        case is Int.Type, is UInt64.Type: return "an integer"
        case is Bool.Type: return "true or false"
        case is String.Type: return "a string"
        default: return "a mapping (\(type))"
        }
    }
}

/// A keyed container that rejects keys it does not know (catches typos such as
/// `bandwith`) and fills missing keys with defaults.
struct StrictFields {
    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    let container: KeyedDecodingContainer<Key>

    init(_ decoder: any Decoder, allowed: [String]) throws {
        container = try decoder.container(keyedBy: Key.self)
        for key in container.allKeys where !allowed.contains(key.stringValue) {
            let path = (decoder.codingPath + [key]).map(\.stringValue).joined(separator: ".")
            throw ScenarioError.unknownKey(field: path, allowed: allowed)
        }
    }

    func callAsFunction<T: Decodable>(_ name: String, _ fallback: T) throws -> T {
        try container.decodeIfPresent(T.self, forKey: Key(stringValue: name)) ?? fallback
    }
}

extension Scenario: Decodable {
    public init(from decoder: any Decoder) throws {
        let f = try StrictFields(decoder, allowed: ["seed", "channel", "backhaul", "cloud", "edges", "devices"])
        self.init()
        seed = try f("seed", seed)
        channel = try f("channel", channel)
        backhaul = try f("backhaul", backhaul)
        cloud = try f("cloud", cloud)
        edges = try f("edges", edges)
        devices = try f("devices", devices)
    }
}

extension ChannelParameters: Decodable {
    public init(from decoder: any Decoder) throws {
        let f = try StrictFields(decoder, allowed: [
            "pathLossInterceptDB", "pathLossSlopeDB", "shadowingSigmaDB", "rayleighFading", "coherenceTimeSeconds",
            "noiseDensityDBmPerHz", "noiseFigureDB", "minDistanceMeters", "deviceToDevice",
        ])
        self.init()
        pathLossInterceptDB = try f("pathLossInterceptDB", pathLossInterceptDB)
        pathLossSlopeDB = try f("pathLossSlopeDB", pathLossSlopeDB)
        shadowingSigmaDB = try f("shadowingSigmaDB", shadowingSigmaDB)
        rayleighFading = try f("rayleighFading", rayleighFading)
        coherenceTimeSeconds = try f("coherenceTimeSeconds", coherenceTimeSeconds)
        noiseDensityDBmPerHz = try f("noiseDensityDBmPerHz", noiseDensityDBmPerHz)
        noiseFigureDB = try f("noiseFigureDB", noiseFigureDB)
        minDistanceMeters = try f("minDistanceMeters", minDistanceMeters)
        deviceToDevice = try f("deviceToDevice", deviceToDevice)
    }
}

extension WiredLink: Decodable {
    public init(from decoder: any Decoder) throws {
        let f = try StrictFields(decoder, allowed: ["rateBitsPerSecond", "latencySeconds"])
        self.init()
        rateBitsPerSecond = try f("rateBitsPerSecond", rateBitsPerSecond)
        latencySeconds = try f("latencySeconds", latencySeconds)
    }
}

extension ComputeSpec: Decodable {
    /// A compute block replaces the tier's defaults key by key; `flopsPerSecond` defaults to
    /// the tier mean given by the enclosing spec (see `defaults(for:)`).
    public init(from decoder: any Decoder) throws {
        let base = ComputeSpec.defaults(for: decoder.codingPath)
        let f = try StrictFields(decoder, allowed: [
            "flopsPerSecond", "heterogeneitySigma", "stragglerFraction", "stragglerSlowdown", "load", "energyPerFLOPJoules",
        ])
        self = base
        flopsPerSecond = try f("flopsPerSecond", base.flopsPerSecond)
        heterogeneitySigma = try f("heterogeneitySigma", base.heterogeneitySigma)
        stragglerFraction = try f("stragglerFraction", base.stragglerFraction)
        stragglerSlowdown = try f("stragglerSlowdown", base.stragglerSlowdown)
        load = try f("load", base.load)
        energyPerFLOPJoules = try f("energyPerFLOPJoules", base.energyPerFLOPJoules)
    }

    /// Tier defaults, chosen by where the block sits in the scenario.
    static func defaults(for path: [CodingKey]) -> ComputeSpec {
        switch path.first?.stringValue {
        case "edges": return EdgeSpec().compute
        case "devices": return DeviceSpec().compute
        default: return Scenario().cloud
        }
    }
}

extension EdgeSpec: Decodable {
    public init(from decoder: any Decoder) throws {
        let f = try StrictFields(decoder, allowed: [
            "count", "cellRadiusMeters", "interSiteDistanceMeters", "bandwidthHz", "txPowerDBm", "compute",
        ])
        self.init()
        count = try f("count", count)
        cellRadiusMeters = try f("cellRadiusMeters", cellRadiusMeters)
        interSiteDistanceMeters = try f("interSiteDistanceMeters", interSiteDistanceMeters)
        bandwidthHz = try f("bandwidthHz", bandwidthHz)
        txPowerDBm = try f("txPowerDBm", txPowerDBm)
        compute = try f("compute", compute)
    }
}

extension DeviceSpec: Decodable {
    public init(from decoder: any Decoder) throws {
        let f = try StrictFields(decoder, allowed: ["count", "txPowerDBm", "compute", "availability"])
        self.init()
        count = try f("count", count)
        txPowerDBm = try f("txPowerDBm", txPowerDBm)
        compute = try f("compute", compute)
        availability = try f("availability", availability)
    }
}

extension AvailabilitySpec: Decodable {
    public init(from decoder: any Decoder) throws {
        let f = try StrictFields(decoder, allowed: ["meanOnlineSeconds", "meanOfflineSeconds"])
        self.init(meanOnlineSeconds: try f("meanOnlineSeconds", 600.0), meanOfflineSeconds: try f("meanOfflineSeconds", 300.0))
    }
}
