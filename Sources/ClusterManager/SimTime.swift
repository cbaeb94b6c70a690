import Foundation
import Yams

/// What the round accounting needs from the edge environment: time to move bytes over a device's links and to
/// run FLOPs on it, on the virtual clock. EdgeEnvironment's cost model plugs in behind this protocol.
public protocol EdgeCostModel: Sendable {
    func downloadSeconds(bytes: Int, device: Int, at time: Double) -> Double
    func uploadSeconds(bytes: Int, device: Int, at time: Double) -> Double
    func computeSeconds(flops: Double, device: Int) -> Double
}

/// A simple scenario: device i has profile i mod count (FLOP/s, up/down rates, one-way latency).
public struct Scenario: EdgeCostModel, Equatable {
    public struct Profile: Sendable, Equatable {
        public var flops: Double
        public var uplinkBps: Double
        public var downlinkBps: Double
        public var latencyS: Double
        public init(flops: Double, uplinkBps: Double, downlinkBps: Double, latencyS: Double) {
            self.flops = flops; self.uplinkBps = uplinkBps; self.downlinkBps = downlinkBps; self.latencyS = latencyS
        }
    }

    public static let defaultPath = "examples/scenarios/default.yaml"

    public var name: String
    public var profiles: [Profile]

    /// Phones to laptops on 4G/Wi-Fi: 2–20 GFLOP/s, 5–50 Mbit/s up.
    public init(name: String = "builtin-default", profiles: [Profile] = [
        Profile(flops: 2e9, uplinkBps: 5e6, downlinkBps: 20e6, latencyS: 0.03),
        Profile(flops: 5e9, uplinkBps: 10e6, downlinkBps: 40e6, latencyS: 0.02),
        Profile(flops: 10e9, uplinkBps: 20e6, downlinkBps: 80e6, latencyS: 0.01),
        Profile(flops: 20e9, uplinkBps: 50e6, downlinkBps: 200e6, latencyS: 0.005),
    ]) {
        self.name = name; self.profiles = profiles
    }

    public func profile(_ device: Int) -> Profile { profiles[((device % profiles.count) + profiles.count) % profiles.count] }

    public func downloadSeconds(bytes: Int, device: Int, at time: Double) -> Double {
        let p = profile(device)
        return p.latencyS + Double(bytes) * 8 / p.downlinkBps
    }

    public func uploadSeconds(bytes: Int, device: Int, at time: Double) -> Double {
        let p = profile(device)
        return p.latencyS + Double(bytes) * 8 / p.uplinkBps
    }

    public func computeSeconds(flops: Double, device: Int) -> Double { flops / profile(device).flops }

    public static func load(path: String) throws -> Scenario {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ExperimentError.unreadable(path: path, reason: error.localizedDescription)
        }
        let root: Any?
        do { root = try Yams.load(yaml: text) } catch { throw ExperimentError.malformedYAML(reason: "\(path): \(error)") }
        var s = try parse(try Keys(root ?? [String: Any](), path: "scenario"))
        if s.name == "inline" { s.name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent }
        return s
    }

    /// `{name, devices: [{flops, uplink_bps, downlink_bps, latency_s}]}`. Unknown keys are left for EdgeEnvironment.
    static func parse(_ k: Keys) throws -> Scenario {
        var s = Scenario()
        s.name = try k.string("name") ?? "inline"
        guard let list = k.raw("devices") else { return s }
        guard let items = list as? [Any], !items.isEmpty else {
            throw ExperimentError.wrongType(key: "scenario.devices", expected: "a non-empty list of device profiles", got: describe(list))
        }
        s.profiles = try items.enumerated().map { i, item in
            let p = try Keys(item, path: "scenario.devices[\(i)]")
            return Profile(flops: try p.double("flops", positive: true) ?? 5e9,
                           uplinkBps: try p.double("uplink_bps", positive: true) ?? 10e6,
                           downlinkBps: try p.double("downlink_bps", positive: true) ?? 40e6,
                           latencyS: try p.double("latency_s") ?? 0.02)
        }
        return s
    }
}

/// Training FLOPs of LoRA fine-tuning: forward 2N per token, backward ≈ 2N more (no weight gradients of the frozen base).
public func loraTrainingFLOPs(parameters: Int, tokens: Int) -> Double { 4 * Double(parameters) * Double(tokens) }

/// Synchronous round on the virtual clock: each participant's arrival = download + compute + upload.
public struct SimulatedArrival: Sendable, Equatable {
    public var device: String
    public var seconds: Double
}

public func simulatedArrival(device: String, index: Int, modelBytes: Int, updateBytes: Int, computeS: Double,
                             cost: any EdgeCostModel, roundStart: Double) -> SimulatedArrival {
    let down = cost.downloadSeconds(bytes: modelBytes, device: index, at: roundStart)
    let up = cost.uploadSeconds(bytes: updateBytes, device: index, at: roundStart + down + computeS)
    return SimulatedArrival(device: device, seconds: down + max(0, computeS) + up)
}
