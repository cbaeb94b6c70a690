/// One device's contribution: the change of its adapter since the global version it started from.
public struct ModelUpdate: Sendable, Equatable {
    public var device: String
    /// Round the device trained in; (device, round) makes a retry idempotent.
    public var round: UInt64
    /// Local training examples: FedAvg's weight.
    public var samples: Int
    /// Global version the device started from; staleness τ = current − base.
    public var baseVersion: UInt64
    /// x_local − x_base, flat, in the global layout.
    public var delta: [Float]
    /// Mean training loss reported by the device.
    public var loss: Float
    /// Distributed DP with adaptive clipping: the device's noised "my update was not clipped" (1 or 0, plus noise).
    public var clipReport: Float?

    public init(device: String, round: UInt64 = 0, samples: Int, baseVersion: UInt64, delta: [Float], loss: Float = 0, clipReport: Float? = nil) {
        self.device = device; self.round = round; self.samples = samples
        self.baseVersion = baseVersion; self.delta = delta; self.loss = loss; self.clipReport = clipReport
    }
}

/// The server's current adapter.
public struct GlobalModel: Sendable, Equatable {
    public var layout: ParameterLayout
    public var parameters: [Float]
    /// Advances each time an aggregation changes `parameters`.
    public var version: UInt64

    public init(layout: ParameterLayout, parameters: [Float], version: UInt64 = 0) {
        self.layout = layout; self.parameters = parameters; self.version = version
    }

    /// An all-zero model of `layout`.
    public init(layout: ParameterLayout, version: UInt64 = 0) {
        self.init(layout: layout, parameters: [Float](repeating: 0, count: layout.count), version: version)
    }
}
