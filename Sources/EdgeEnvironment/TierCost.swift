import Foundation

// The virtual-clock cost of each hop in a hierarchical run (the flat device ↔ cloud model is EdgeNetworkCost).

/// Device ↔ its edge server: downloads leave the device's access point, uploads end there (no backhaul).
public struct EdgeTierCost: EdgeCostModel {
    public let base: EdgeNetworkCost
    public init(_ base: EdgeNetworkCost) { self.base = base }

    func accessPoint(_ device: Int) -> NodeID { base.network.topology[base.node(device)]?.accessPoint ?? base.cloud }

    public func downloadSeconds(bytes: Int, device: Int, at time: Double) -> Double {
        (try? base.network.transferTime(bytes: bytes, from: accessPoint(device), to: base.node(device), at: time)) ?? 0
    }
    public func uploadSeconds(bytes: Int, device: Int, at time: Double) -> Double {
        (try? base.network.transferTime(bytes: bytes, from: base.node(device), to: accessPoint(device), at: time)) ?? 0
    }
    public func computeSeconds(flops: Double, device: Int) -> Double { base.computeSeconds(flops: flops, device: device) }
}

/// Edge server ↔ cloud over the backhaul; "device" is the edge ordinal, and an edge's "compute" is the sim time
/// its κ2 edge rounds took (it reports that as compute_s), so the cloud round = max(down + edge time + up).
public struct CloudTierCost: EdgeCostModel {
    public let base: EdgeNetworkCost
    public init(_ base: EdgeNetworkCost) { self.base = base }

    func accessPoint(_ edge: Int) -> NodeID {
        let aps = base.network.topology.accessPoints
        return aps.isEmpty ? base.cloud : aps[((edge % aps.count) + aps.count) % aps.count]
    }

    public func downloadSeconds(bytes: Int, device: Int, at time: Double) -> Double {
        (try? base.network.transferTime(bytes: bytes, from: base.cloud, to: accessPoint(device), at: time)) ?? 0
    }
    public func uploadSeconds(bytes: Int, device: Int, at time: Double) -> Double {
        (try? base.network.transferTime(bytes: bytes, from: accessPoint(device), to: base.cloud, at: time)) ?? 0
    }
    public func computeSeconds(flops: Double, device: Int) -> Double { 0 }
}
