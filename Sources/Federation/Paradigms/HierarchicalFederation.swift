// HierFAVG coordination: devices → edge every κ1 local rounds, edges → cloud every κ2 edge rounds,
// with exact byte counts per tier and per-edge virtual clocks.

/// One device's local round: its update (delta from the model it holds), the encoded upload size, and its durations.
public struct DeviceRoundReport: Sendable, Equatable {
    public var update: ModelUpdate
    /// Encoded size of the update device → edge (counted only when the edge aggregates).
    public var uploadBytes: Int
    /// download is paid only when the device received a model this round; upload only when the edge aggregates.
    public var durations: TaskDurations

    public init(update: ModelUpdate, uploadBytes: Int, durations: TaskDurations) {
        self.update = update; self.uploadBytes = uploadBytes; self.durations = durations
    }
}

/// One edge's link to the cloud at a cloud aggregation.
public struct BackhaulCost: Sendable, Equatable {
    /// Encoded edge model edge → cloud.
    public var uploadBytes: Int
    /// Encoded global model cloud → edge.
    public var downloadBytes: Int
    public var uploadSeconds: Double
    public var downloadSeconds: Double

    public init(uploadBytes: Int, downloadBytes: Int, uploadSeconds: Double = 0, downloadSeconds: Double = 0) {
        self.uploadBytes = uploadBytes; self.downloadBytes = downloadBytes
        self.uploadSeconds = uploadSeconds; self.downloadSeconds = downloadSeconds
    }
}

/// Bytes moved per tier and direction.
public struct TierBytes: Sendable, Equatable {
    public var deviceToEdge = 0
    public var edgeToDevice = 0
    public var edgeToCloud = 0
    public var cloudToEdge = 0
    public init(deviceToEdge: Int = 0, edgeToDevice: Int = 0, edgeToCloud: Int = 0, cloudToEdge: Int = 0) {
        self.deviceToEdge = deviceToEdge; self.edgeToDevice = edgeToDevice
        self.edgeToCloud = edgeToCloud; self.cloudToEdge = cloudToEdge
    }
    public static func + (a: TierBytes, b: TierBytes) -> TierBytes {
        TierBytes(deviceToEdge: a.deviceToEdge + b.deviceToEdge, edgeToDevice: a.edgeToDevice + b.edgeToDevice,
                  edgeToCloud: a.edgeToCloud + b.edgeToCloud, cloudToEdge: a.cloudToEdge + b.cloudToEdge)
    }
}

/// What one local round did.
public struct HierarchicalRound: Sendable, Equatable {
    public var localRound: Int
    /// Edges that aggregated their devices after this round.
    public var edgesAggregated: [String]
    public var cloudAggregated: Bool
    /// Bytes of this round only.
    public var bytes: TierBytes
    /// Per-edge sim time after the round (and the cloud step, if any).
    public var edgeTimes: [String: Double]
    /// Latest edge clock: the run's sim time.
    public var simTime: Double
    /// Devices of an edge that sent no update this round.
    public var dropped: [String]
}

public struct HierarchicalFederation: Sendable {
    /// Edge -> its devices (sorted).
    public let edges: [String: [String]]
    public private(set) var schedule: HierarchicalSchedule
    public private(set) var cloud: GlobalModel
    public private(set) var edgeModels: [String: GlobalModel]
    /// Each device's current model (its edge's model after a push-down, then its own local progress).
    public private(set) var deviceModels: [String: [Float]]
    /// Bytes of the whole run.
    public private(set) var bytes = TierBytes()
    public private(set) var edgeClock: [String: Double]
    /// Size of one model copy edge → device.
    public let modelBytes: Int
    private var edgeOf: [String: String] = [:]
    /// Devices that get their edge's model before the next local round (all of them at the start).
    private var mustDownload: Set<String>
    /// Samples behind each device's model since its edge last aggregated, and behind each edge since the cloud did.
    private var deviceSamples: [String: Int] = [:]
    private var edgeSamples: [String: Int] = [:]

    public init(edges: [String: [String]], initial: GlobalModel, kappa1: Int, kappa2: Int, modelBytes: Int) throws(ParadigmError) {
        var edgeOf: [String: String] = [:]
        for (e, ds) in edges.sorted(by: { $0.key < $1.key }) {
            for d in ds {
                if let other = edgeOf[d], other != e { throw .deviceInTwoEdges(device: d, edges: [other, e]) }
                edgeOf[d] = e
            }
        }
        guard !edgeOf.isEmpty else { throw .noDevices }
        self.edges = edges.mapValues { Array(Set($0)).sorted() }
        self.edgeOf = edgeOf
        schedule = HierarchicalSchedule(kappa1: kappa1, kappa2: kappa2)
        cloud = initial
        edgeModels = edges.mapValues { _ in initial }
        deviceModels = edgeOf.mapValues { _ in initial.parameters }
        edgeClock = edges.mapValues { _ in 0 }
        self.modelBytes = max(0, modelBytes)
        mustDownload = Set(edgeOf.keys)
    }

    public func edge(of device: String) -> String? { edgeOf[device] }
    public var simTime: Double { edgeClock.values.max() ?? 0 }

    /// Groups devices by their serving access point (e.g. from EdgeEnvironment's topology): edge -> devices.
    public static func edges(servingAccessPoint: [String: String]) -> [String: [String]] {
        Dictionary(grouping: servingAccessPoint.keys.sorted(), by: { servingAccessPoint[$0]! })
    }

    /// One local round: applies each reporting device's delta to its own model, then aggregates at the edges
    /// (every κ1 rounds, sample-weighted) and at the cloud (every κ2 edge rounds, weighted by the edges' samples),
    /// pushing the result down. `backhaul` is needed only for rounds where the cloud aggregates.
    /// Throws (and changes nothing) on an unknown device, a bad update or a missing backhaul entry.
    @discardableResult
    public mutating func localRound(_ reports: [DeviceRoundReport],
                                    backhaul: [String: BackhaulCost] = [:]) throws(ParadigmError) -> HierarchicalRound {
        var byDevice: [String: DeviceRoundReport] = [:]
        for r in reports {
            let d = r.update.device
            guard let model = deviceModels[d] else { throw .unknownDevice(d) }
            let check = GlobalModel(layout: .flat(model.count), parameters: model, version: r.update.baseVersion)
            do { try UpdateValidator().validate(r.update, against: check) } catch { throw .badUpdate(device: d, rejection: error) }
            guard r.durations.isValid else { throw .invalidDuration(device: d, seconds: r.durations.total) }
            byDevice[d] = r
        }
        var step = schedule
        let s = step.advance()
        if s.cloud { for e in edges.keys.sorted() where backhaul[e] == nil { throw .missingBackhaul(edge: e) } }
        schedule = step

        var roundBytes = TierBytes()
        var dropped: [String] = []
        var aggregated: [String] = []
        for (e, devices) in edges.sorted(by: { $0.key < $1.key }) {
            var roundTime = 0.0
            var reporters: [String] = []
            for d in devices {
                guard let r = byDevice[d] else { dropped.append(d); continue }
                if mustDownload.contains(d) { roundBytes.edgeToDevice += modelBytes }
                var t = (mustDownload.contains(d) ? r.durations.download : 0) + r.durations.compute
                mustDownload.remove(d)
                VectorMath.axpy(1, r.update.delta, &deviceModels[d]!)
                deviceSamples[d, default: 0] += max(0, r.update.samples)
                if s.edge { t += r.durations.upload; roundBytes.deviceToEdge += r.uploadBytes }
                roundTime = max(roundTime, t)
                reporters.append(d)
            }
            edgeClock[e, default: 0] += roundTime
            guard s.edge else { continue }
            // The edge combines every device that trained since its last aggregation.
            let contributors = devices.filter { (deviceSamples[$0] ?? 0) > 0 }
            guard !contributors.isEmpty, var model = edgeModels[e] else { continue }
            let combined = try? hierarchicalCombine(contributors.map {
                WeightedModel(parameters: deviceModels[$0]!, samples: deviceSamples[$0]!)
            })
            guard let combined else { continue }
            model.parameters = combined.parameters
            model.version += 1
            edgeModels[e] = model
            edgeSamples[e, default: 0] += combined.samples
            for d in contributors { deviceSamples[d] = 0 }
            aggregated.append(e)
        }

        if s.cloud {
            let contributing = edges.keys.sorted().filter { (edgeSamples[$0] ?? 0) > 0 }
            var arrival = 0.0
            for e in contributing {
                roundBytes.edgeToCloud += backhaul[e]!.uploadBytes
                arrival = max(arrival, (edgeClock[e] ?? 0) + backhaul[e]!.uploadSeconds)
            }
            if !contributing.isEmpty, let combined = try? hierarchicalCombine(contributing.map {
                WeightedModel(parameters: edgeModels[$0]!.parameters, samples: edgeSamples[$0]!)
            }) {
                cloud.parameters = combined.parameters
                cloud.version += 1
            }
            // Every edge waits for the cloud step and receives the new global.
            for e in edges.keys {
                roundBytes.cloudToEdge += backhaul[e]!.downloadBytes
                edgeClock[e] = max(arrival, edgeClock[e] ?? 0) + backhaul[e]!.downloadSeconds
                edgeModels[e]!.parameters = cloud.parameters
                edgeModels[e]!.version += 1
                edgeSamples[e] = 0
            }
        }
        if s.edge {
            // Push-down: every device of an edge continues from the edge's model (downloaded next round).
            for (e, devices) in edges {
                for d in devices { deviceModels[d] = edgeModels[e]!.parameters; mustDownload.insert(d) }
            }
        }
        bytes = bytes + roundBytes
        return HierarchicalRound(localRound: s.localRound, edgesAggregated: aggregated, cloudAggregated: s.cloud,
                                 bytes: roundBytes, edgeTimes: edgeClock, simTime: simTime, dropped: dropped.sorted())
    }
}
