import Foundation

/// What the round accounting needs from the edge environment: time to move bytes over a device's links and to
/// run FLOPs on it, on the virtual clock. EdgeEnvironment's cost model plugs in behind this protocol.
public protocol EdgeCostModel: Sendable {
    func downloadSeconds(bytes: Int, device: Int, at time: Double) -> Double
    func uploadSeconds(bytes: Int, device: Int, at time: Double) -> Double
    func computeSeconds(flops: Double, device: Int) -> Double
}

/// EdgeEnvironment's network as the round cost model: device i is scenario node "device-i", the aggregator sits in
/// the cloud, so a download is cloud → edge → device and an upload the way back (channel and band sharing included).
public struct EdgeNetworkCost: EdgeCostModel {
    public let network: EdgeNetwork
    let devices: [NodeID]

    /// Builds the scenario with at least `devices` devices.
    public init(scenario: EdgeEnvironment.Scenario, devices: Int) throws {
        var s = scenario
        s.devices.count = max(s.devices.count, devices, 1)
        network = try s.build()
        self.devices = network.topology.devices
    }

    func node(_ i: Int) -> NodeID { devices[((i % devices.count) + devices.count) % devices.count] }
    var cloud: NodeID { network.topology.cloud ?? "cloud" }

    public func downloadSeconds(bytes: Int, device: Int, at time: Double) -> Double {
        (try? network.transferTime(bytes: bytes, from: cloud, to: node(device), at: time)) ?? 0
    }

    public func uploadSeconds(bytes: Int, device: Int, at time: Double) -> Double {
        (try? network.transferTime(bytes: bytes, from: node(device), to: cloud, at: time)) ?? 0
    }

    public func computeSeconds(flops: Double, device: Int) -> Double {
        (try? network.computeTime(flops: flops, node: node(device))) ?? 0
    }

    /// The device's first uplink hop now (for its channel reports): link name, rate, SNR in dB.
    public func uplinkState(device: Int, at time: Double) -> (link: String, rateBps: Double, snrDb: Double)? {
        guard let hop = try? network.route(from: node(device), to: cloud).first, let st = try? network.linkState(hop, at: time) else { return nil }
        return (hop.description, st.rateBitsPerSecond, st.snr.isFinite && st.snr > 0 ? 10 * log10(st.snr) : 0)
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

/// The scenario index of a node: the number in "device-N", else a stable hash (so both ends agree without talking).
public func deviceOrdinal(_ id: String) -> Int {
    if let n = Int(id.split(separator: "-").last ?? "") { return max(0, n) }
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in id.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
    return Int(h % 1_000_003)
}
