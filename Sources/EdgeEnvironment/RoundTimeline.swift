/// One device's part in a synchronous round, in seconds.
public struct DeviceRoundTiming: Sendable, Equatable {
    public var device: NodeID
    public var downloadSeconds: Double
    public var computeSeconds: Double
    public var uploadSeconds: Double
    /// Absolute virtual time at which the update reaches the aggregator.
    public var arrival: Double
}

extension EdgeNetwork {
    /// Simulates one round on the virtual clock: every device downloads `modelBytes` from the
    /// aggregator, runs `flops(device)` FLOPs, then uploads `updateBytes`. The upload's rate is
    /// taken when it starts, so fading and stragglers shape the arrival order. All listed
    /// devices share their access points for the round. `aggregator` nil means each device's
    /// serving access point (edge aggregation); pass "cloud" for a flat cloud aggregator.
    /// Returns the timings sorted by arrival.
    public func roundTimeline(devices: [NodeID], aggregator: NodeID? = nil, start: Double,
                              modelBytes: Int, updateBytes: Int,
                              flops: (NodeID) -> Double) throws -> [DeviceRoundTiming] {
        var network = self
        try network.setActive(devices)
        enum Step { case computed(NodeID), arrived(NodeID) }
        var clock = VirtualClock<Step>(start: start)
        var timing: [NodeID: DeviceRoundTiming] = [:]
        func target(_ device: NodeID) throws -> NodeID {
            if let aggregator { return aggregator }
            guard let ap = try network.topology.node(device).accessPoint else {
                throw EdgeNetworkError.noRoute(from: device, to: "?", reason: "device has no serving access point")
            }
            return ap
        }
        for device in devices {
            let down = try network.transferTime(bytes: modelBytes, from: target(device), to: device, at: start)
            let compute = try network.computeTime(flops: flops(device), node: device)
            timing[device] = DeviceRoundTiming(device: device, downloadSeconds: down, computeSeconds: compute,
                                               uploadSeconds: 0, arrival: 0)
            clock.schedule(at: start + down + compute, .computed(device))
        }
        var order: [NodeID] = []
        try clock.run { clock, now, step in
            switch step {
            case .computed(let device):
                let up = try network.transferTime(bytes: updateBytes, from: device, to: target(device), at: now)
                timing[device]?.uploadSeconds = up
                clock.schedule(at: now + up, .arrived(device))
            case .arrived(let device):
                timing[device]?.arrival = now
                order.append(device)
            }
        }
        return order.compactMap { timing[$0] }
    }
}
