import EdgeEnvironment
import Foundation
import Messages

/// A device's radio state from the scenario's channel model (path loss, shadowing, fading, band sharing) at a
/// given time: what a device stage node reports with each heartbeat as a radio LinkReport to its access point.
public struct RadioState: Sendable {
    public let network: EdgeNetwork
    /// The device's node id in the scenario ("device-3").
    public let device: String
    /// The stage node id of its serving access point (what the router calls that edge server).
    public let accessPointPeer: String

    public init(network: EdgeNetwork, device: String, accessPointPeer: String? = nil) throws {
        let node = try network.topology.node(device)
        guard node.tier == .device, let ap = node.accessPoint else { throw EdgeNetworkError.notADevice(device) }
        self.network = network
        self.device = device
        self.accessPointPeer = accessPointPeer ?? ap
    }

    /// Loads `scenario` (YAML or JSON) and builds its network.
    public init(scenario: URL, device: String, accessPointPeer: String? = nil) throws {
        try self.init(network: try Scenario.load(scenario).build(), device: device, accessPointPeer: accessPointPeer)
    }

    /// Uplink (device → AP) rate and SNR, and the downlink rate as the reverse rate, at `time` seconds.
    public func report(at time: Double) throws -> LinkReport {
        let c = try network.channelReport(device: device, at: time)
        return LinkReport(peer: accessPointPeer, rateBps: c.uplinkBitsPerSecond, snrDb: c.uplinkSNRDB, radio: true,
                          reverseRateBps: c.downlinkBitsPerSecond)
    }
}
