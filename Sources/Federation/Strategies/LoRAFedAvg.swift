/// FedAvg for LoRA adapters with a choice of factor aggregation (naive, FFA-LoRA frozen A, product + SVD).
/// Devices send deltas; the exact modes rebuild each device's adapter as x + Δᵢ, combine, and step to the result.
public struct LoRAFedAvg: AggregationStrategy {
    public var name: String { "lora_fedavg_\(mode.rawValue)" }
    public let timing = AggregationTiming.synchronous
    public var mode: LoRAAggregationMode
    public var fraction: Double
    public var minDevices: Int
    public var quorum: Int
    public var seed: UInt64
    public var validator: UpdateValidator
    /// Last combine error (e.g. LAPACK unavailable); the round stays pending.
    public private(set) var lastError: LoRAAggregationError?
    private var pending = PendingRound()

    public init(mode: LoRAAggregationMode, fraction: Double = 1, minDevices: Int = 1, quorum: Int = 1, seed: UInt64 = 0,
                validator: UpdateValidator = UpdateValidator(maxStaleness: 0)) {
        self.mode = mode; self.fraction = fraction; self.minDevices = minDevices; self.quorum = quorum
        self.seed = seed; self.validator = validator
    }

    public func selectDevices(from available: [String], round: UInt64) -> [String] {
        sampleDevices(available, fraction: fraction, minimum: minDevices, seed: seed, round: round)
    }

    public mutating func submit(_ update: ModelUpdate, to global: inout GlobalModel) throws(UpdateRejection) -> AggregationResult? {
        try pending.add(update, validator: validator, global: global)
        return nil
    }

    public mutating func closeRound(_ global: inout GlobalModel) -> RoundOutcome {
        let n = pending.updates.count
        guard n >= max(1, quorum) else { return .belowQuorum(received: n, required: max(1, quorum)) }
        let weights = sampleWeights(pending.updates.map(\.samples))
        let adapters = pending.updates.map { u -> [Float] in
            var x = global.parameters
            VectorMath.axpy(1, u.delta, &x)
            return x
        }
        do {
            var step = try aggregateLoRA(adapters, weights: weights, layout: global.layout, mode: mode, global: global.parameters)
            VectorMath.axpy(-1, global.parameters, &step)
            lastError = nil
            return .applied(pending.apply(step: step, weights: weights, to: &global))
        } catch {
            lastError = error
            return .combineFailed(reason: error.description)
        }
    }
}
