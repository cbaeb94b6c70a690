import Foundation

/// Access points (edge servers): how many, where, and their radio and compute.
public struct EdgeSpec: Sendable, Equatable {
    public var count: Int = 2
    /// Devices are dropped uniformly in a disc of this radius around their AP, metres.
    public var cellRadiusMeters: Double = 250
    /// Distance between neighbouring APs on the square grid, metres (nil: 2 × cell radius).
    public var interSiteDistanceMeters: Double? = nil
    public var bandwidthHz: Double = 10e6
    public var txPowerDBm: Double = 40
    public var compute = ComputeSpec(flopsPerSecond: 500e9, heterogeneitySigma: 0.2)
    public init() {}
}

/// Devices: how many (assigned to APs round-robin), their radio and compute.
public struct DeviceSpec: Sendable, Equatable {
    public var count: Int = 20
    public var txPowerDBm: Double = 23
    public var compute = ComputeSpec(flopsPerSecond: 10e9, heterogeneitySigma: 0.3,
                                     stragglerFraction: 0.1, stragglerSlowdown: 10)
    /// Availability churn (nil: always online).
    public var availability: AvailabilitySpec?
    public init() {}
}

/// Everything needed to build an `EdgeNetwork`, with literature defaults
/// (3GPP TR 36.814 channel, 10 MHz LTE-like cells, 1 Gb/s backhaul).
public struct Scenario: Sendable, Equatable {
    public var seed: UInt64 = 1
    public var channel = ChannelParameters()
    public var backhaul = WiredLink()
    public var cloud = ComputeSpec(flopsPerSecond: 10e12)
    public var edges = EdgeSpec()
    public var devices = DeviceSpec()
    public init() {}

    /// Checks every value; the error names the first bad field.
    public func validate() throws {
        func check(_ ok: Bool, _ field: String, _ value: Double, _ reason: String) throws {
            if !ok { throw ScenarioError.invalidValue(field: field, value: "\(value)", reason: reason) }
        }
        let c = channel
        try check(c.pathLossInterceptDB.isFinite, "channel.pathLossInterceptDB", c.pathLossInterceptDB, "must be a finite number of dB")
        try check(c.pathLossSlopeDB > 0 && c.pathLossSlopeDB.isFinite, "channel.pathLossSlopeDB", c.pathLossSlopeDB, "must be > 0 (e.g. 37.6)")
        try check(c.shadowingSigmaDB >= 0 && c.shadowingSigmaDB.isFinite, "channel.shadowingSigmaDB", c.shadowingSigmaDB, "must be ≥ 0 (e.g. 8)")
        try check(c.coherenceTimeSeconds > 0 && c.coherenceTimeSeconds.isFinite, "channel.coherenceTimeSeconds", c.coherenceTimeSeconds, "must be > 0 (e.g. 0.1)")
        try check(c.noiseDensityDBmPerHz.isFinite, "channel.noiseDensityDBmPerHz", c.noiseDensityDBmPerHz, "must be finite (e.g. -174)")
        try check(c.noiseFigureDB >= 0 && c.noiseFigureDB.isFinite, "channel.noiseFigureDB", c.noiseFigureDB, "must be ≥ 0 (e.g. 9)")
        try check(c.minDistanceMeters > 0 && c.minDistanceMeters.isFinite, "channel.minDistanceMeters", c.minDistanceMeters, "must be > 0")
        try check(backhaul.rateBitsPerSecond > 0, "backhaul.rateBitsPerSecond", backhaul.rateBitsPerSecond, "must be > 0 (e.g. 1e9)")
        try check(backhaul.latencySeconds >= 0 && backhaul.latencySeconds.isFinite, "backhaul.latencySeconds", backhaul.latencySeconds, "must be ≥ 0")
        try validate(cloud, "cloud")
        try check(edges.count >= 1, "edges.count", Double(edges.count), "must be ≥ 1")
        try check(edges.cellRadiusMeters > 0 && edges.cellRadiusMeters.isFinite, "edges.cellRadiusMeters", edges.cellRadiusMeters, "must be > 0 (e.g. 250)")
        if let isd = edges.interSiteDistanceMeters {
            try check(isd > 0 && isd.isFinite, "edges.interSiteDistanceMeters", isd, "must be > 0")
        }
        try check(edges.bandwidthHz > 0 && edges.bandwidthHz.isFinite, "edges.bandwidthHz", edges.bandwidthHz, "must be > 0 Hz (e.g. 10e6)")
        try check(edges.txPowerDBm.isFinite, "edges.txPowerDBm", edges.txPowerDBm, "must be finite (e.g. 40)")
        try validate(edges.compute, "edges.compute")
        try check(devices.count >= 0, "devices.count", Double(devices.count), "must be ≥ 0")
        try check(devices.txPowerDBm.isFinite, "devices.txPowerDBm", devices.txPowerDBm, "must be finite (e.g. 23)")
        try validate(devices.compute, "devices.compute")
        if let a = devices.availability {
            try check(a.meanOnlineSeconds > 0 && a.meanOnlineSeconds.isFinite, "devices.availability.meanOnlineSeconds", a.meanOnlineSeconds,
                      "must be > 0 seconds (e.g. 600)")
            try check(a.meanOfflineSeconds > 0 && a.meanOfflineSeconds.isFinite, "devices.availability.meanOfflineSeconds", a.meanOfflineSeconds,
                      "must be > 0 seconds (e.g. 300)")
        }
    }

    private func validate(_ spec: ComputeSpec, _ path: String) throws {
        func check(_ ok: Bool, _ field: String, _ value: Double, _ reason: String) throws {
            if !ok { throw ScenarioError.invalidValue(field: "\(path).\(field)", value: "\(value)", reason: reason) }
        }
        try check(spec.flopsPerSecond > 0 && spec.flopsPerSecond.isFinite, "flopsPerSecond", spec.flopsPerSecond, "must be > 0")
        try check(spec.heterogeneitySigma >= 0 && spec.heterogeneitySigma.isFinite, "heterogeneitySigma", spec.heterogeneitySigma, "must be ≥ 0")
        try check((0...1).contains(spec.stragglerFraction), "stragglerFraction", spec.stragglerFraction, "must be in [0, 1]")
        try check(spec.stragglerSlowdown >= 1 && spec.stragglerSlowdown.isFinite, "stragglerSlowdown", spec.stragglerSlowdown, "must be ≥ 1")
        try check(spec.load >= 0 && spec.load < 1, "load", spec.load, "must be in [0, 1)")
        if let e = spec.energyPerFLOPJoules {
            try check(e >= 0 && e.isFinite, "energyPerFLOPJoules", e, "must be ≥ 0")
        }
    }

    /// Builds the network: cloud, APs on a square grid, devices uniform in their AP's disc,
    /// compute drawn per tier. Each kind of draw has its own seeded stream, so changing the
    /// device count does not move the APs or change their compute.
    public func build() throws -> EdgeNetwork {
        try validate()
        var topology = Topology()
        var cloudRNG = SplitMix64.keyed(seed: seed, stableHash("cloud"))
        let cloudDraw = cloud.sample(count: 1, using: &cloudRNG)[0]
        topology.add(Node(id: "cloud", tier: .cloud, position: Position(x: 0, y: 0),
                          flopsPerSecond: cloudDraw.flopsPerSecond, load: cloud.load,
                          energyPerFLOPJoules: cloud.energyPerFLOPJoules))

        let spacing = edges.interSiteDistanceMeters ?? 2 * edges.cellRadiusMeters
        let columns = Int(Double(edges.count).squareRoot().rounded(.up))
        var edgeRNG = SplitMix64.keyed(seed: seed, stableHash("edges"))
        let edgeDraws = edges.compute.sample(count: edges.count, using: &edgeRNG)
        var apPositions: [Position] = []
        for i in 0..<edges.count {
            let position = Position(x: Double(i % columns) * spacing, y: Double(i / columns) * spacing)
            apPositions.append(position)
            topology.add(Node(id: "edge-\(i)", tier: .edge, position: position,
                              flopsPerSecond: edgeDraws[i].flopsPerSecond, load: edges.compute.load,
                              txPowerDBm: edges.txPowerDBm, bandwidthHz: edges.bandwidthHz,
                              energyPerFLOPJoules: edges.compute.energyPerFLOPJoules,
                              isStraggler: edgeDraws[i].isStraggler))
        }

        var placeRNG = SplitMix64.keyed(seed: seed, stableHash("positions"))
        var deviceRNG = SplitMix64.keyed(seed: seed, stableHash("devices"))
        let deviceDraws = devices.compute.sample(count: devices.count, using: &deviceRNG)
        for i in 0..<devices.count {
            let ap = i % edges.count
            // Uniform in the disc: radius R·√u, angle 2πv.
            let r = edges.cellRadiusMeters * placeRNG.nextUnit().squareRoot()
            let angle = 2 * Double.pi * placeRNG.nextUnit()
            let position = Position(x: apPositions[ap].x + r * cos(angle), y: apPositions[ap].y + r * sin(angle))
            topology.add(Node(id: "device-\(i)", tier: .device, position: position,
                              flopsPerSecond: deviceDraws[i].flopsPerSecond, load: devices.compute.load,
                              txPowerDBm: devices.txPowerDBm, accessPoint: "edge-\(ap)",
                              energyPerFLOPJoules: devices.compute.energyPerFLOPJoules,
                              isStraggler: deviceDraws[i].isStraggler))
        }
        return EdgeNetwork(topology: topology, channel: ChannelModel(parameters: channel, seed: seed),
                           backhaul: backhaul)
    }
}
