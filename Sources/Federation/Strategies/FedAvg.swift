/// FedAvg (McMahan et al. 2017): x ← x + Σ (nᵢ/Σn)·Δᵢ over the round's updates.
public struct FedAvg: AggregationStrategy {
    public let name = "fedavg"
    public let timing = AggregationTiming.synchronous
    /// Fraction of available devices asked per round.
    public var fraction: Double
    /// Devices asked at least (when available).
    public var minDevices: Int
    /// Updates needed before the round may close.
    public var quorum: Int
    public var seed: UInt64
    /// Defaults to maxStaleness 0: a sync round only takes updates on the current version.
    public var validator: UpdateValidator
    private var pending = PendingRound()

    public init(fraction: Double = 1, minDevices: Int = 1, quorum: Int = 1, seed: UInt64 = 0,
                validator: UpdateValidator = UpdateValidator(maxStaleness: 0)) {
        self.fraction = fraction; self.minDevices = minDevices; self.quorum = quorum
        self.seed = seed; self.validator = validator
    }

    public var pendingCount: Int { pending.updates.count }

    public func selectDevices(from available: [String], round: UInt64) -> [String] {
        sampleDevices(available, fraction: fraction, minimum: minDevices, seed: seed, round: round)
    }

    public mutating func submit(_ update: ModelUpdate, to global: inout GlobalModel) throws(UpdateRejection) -> AggregationResult? {
        try pending.add(update, validator: validator, global: global)
        return nil
    }

    public mutating func closeRound(_ global: inout GlobalModel) -> RoundOutcome {
        if pending.updates.isEmpty && quorum <= 0 { return .nothingPending }
        guard pending.updates.count >= max(1, quorum) else {
            return .belowQuorum(received: pending.updates.count, required: max(1, quorum))
        }
        let weights = sampleWeights(pending.updates.map(\.samples))
        let step = uncheckedWeightedSum(pending.updates.map(\.delta), weights: weights)
        return .applied(pending.apply(step: step, weights: weights, to: &global))
    }

    /// Drops what the round collected (e.g. after a timeout below quorum).
    public mutating func abandonRound() { pending = PendingRound() }
}
