/// What a device reports about its radio at one instant (telemetry for the router).
public struct ChannelReport: Sendable, Equatable {
    public var device: NodeID
    public var accessPoint: NodeID
    public var distanceMeters: Double
    /// Full-band SNR in dB (shadowing and fading included).
    public var uplinkSNRDB: Double
    public var downlinkSNRDB: Double
    /// Rates in bit/s after sharing the AP's band with its active devices.
    public var uplinkBitsPerSecond: Double
    public var downlinkBitsPerSecond: Double
    public var sharedBy: Int
}

extension EdgeNetwork {
    /// The channel between a device and an access point (its serving AP by default) at time t.
    public func channelReport(device: NodeID, accessPoint: NodeID? = nil, at time: Double) throws -> ChannelReport {
        let node = try topology.node(device)
        guard node.tier == .device else { throw EdgeNetworkError.notADevice(device) }
        guard let ap = accessPoint ?? node.accessPoint else {
            throw EdgeNetworkError.noRoute(from: device, to: "?", reason: "device has no serving access point")
        }
        let up = try linkState(LinkID(from: device, to: ap), at: time)
        let down = try linkState(LinkID(from: ap, to: device), at: time)
        return ChannelReport(device: device, accessPoint: ap, distanceMeters: up.distanceMeters,
                             uplinkSNRDB: Decibel.fromLinear(up.snr), downlinkSNRDB: Decibel.fromLinear(down.snr),
                             uplinkBitsPerSecond: up.rateBitsPerSecond, downlinkBitsPerSecond: down.rateBitsPerSecond,
                             sharedBy: up.sharedBy)
    }
}
