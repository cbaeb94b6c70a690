// Like Flower's Strategy: one small type says which devices to ask and how to combine what comes back.

public enum AggregationTiming: Sendable, Equatable {
    /// Updates are collected and combined when the round closes (FedAvg, robust rules).
    case synchronous
    /// Updates change the global as they arrive (FedAsync) or in buffers (FedBuff).
    case asynchronous
}

/// What one aggregation did to the global.
public struct AggregationResult: Sendable, Equatable {
    /// Global version after the step.
    public var version: UInt64
    public var contributors: [String]
    /// Effective weight of each contributor's update in the step (same order as contributors).
    public var weights: [Double]
    /// τ of each contribution when it arrived.
    public var stalenesses: [UInt64]
    /// ||x_after − x_before||₂
    public var stepNorm: Double
    /// Sample-weighted mean of the reported losses.
    public var meanLoss: Double
    public var totalSamples: Int
}

public enum RoundOutcome: Sendable, Equatable {
    case applied(AggregationResult)
    /// Too few updates; the global is unchanged and pending updates are kept.
    case belowQuorum(received: Int, required: Int)
    /// The strategy has nothing to apply on close (async rules apply on arrival).
    case nothingPending
    /// The combine itself failed (e.g. LAPACK missing); the global is unchanged and pending updates are kept.
    case combineFailed(reason: String)
}

public protocol AggregationStrategy: Sendable {
    var name: String { get }
    var timing: AggregationTiming { get }
    /// Devices to ask in `round`, chosen from `available` (deterministic for a given seed and round).
    func selectDevices(from available: [String], round: UInt64) -> [String]
    /// Takes one update. Async rules may change `global` and return what they did; sync rules buffer and return nil.
    /// A rejected update leaves `global` and the strategy's state unchanged.
    mutating func submit(_ update: ModelUpdate, to global: inout GlobalModel) throws(UpdateRejection) -> AggregationResult?
    /// Ends the round: sync rules combine what they collected.
    mutating func closeRound(_ global: inout GlobalModel) -> RoundOutcome
}

extension AggregationStrategy {
    public func selectDevices(from available: [String], round: UInt64) -> [String] { available.sorted() }
}

/// Seeded choice of ⌈fraction·n⌉ devices (at least `minimum`) per round.
public func sampleDevices(_ available: [String], fraction: Double, minimum: Int, seed: UInt64, round: UInt64) -> [String] {
    var pool = Array(Set(available)).sorted()
    let f = fraction.isFinite ? min(1, max(0, fraction)) : 1
    let want = min(pool.count, max(minimum, Int((f * Double(pool.count)).rounded(.up))))
    var rng = SeededRandom(seed: seed, stream: round)
    // Partial Fisher–Yates: the first `want` slots are a uniform sample.
    for i in 0..<want {
        let j = i + Int(rng.next() % UInt64(pool.count - i))
        pool.swapAt(i, j)
    }
    return Array(pool[0..<want]).sorted()
}

/// Updates collected during one synchronous round; one per device.
struct PendingRound: Sendable, Equatable {
    var updates: [ModelUpdate] = []
    var stalenesses: [UInt64] = []

    mutating func add(_ update: ModelUpdate, validator: UpdateValidator, global: GlobalModel) throws(UpdateRejection) {
        if updates.contains(where: { $0.device == update.device }) {
            throw .duplicate(device: update.device, round: update.round)
        }
        let tau = try validator.validate(update, against: global)
        updates.append(update)
        stalenesses.append(tau)
    }

    /// Adds `step` to the global, bumps the version, and clears the round.
    mutating func apply(step: [Float], weights: [Double], to global: inout GlobalModel) -> AggregationResult {
        VectorMath.axpy(1, step, &global.parameters)
        global.version += 1
        let samples = updates.map(\.samples)
        let lossWeights = sampleWeights(samples)
        var meanLoss = 0.0
        for (u, w) in zip(updates, lossWeights) { meanLoss += w * Double(u.loss) }
        let result = AggregationResult(version: global.version, contributors: updates.map(\.device), weights: weights,
                                       stalenesses: stalenesses, stepNorm: VectorMath.norm(step),
                                       meanLoss: meanLoss, totalSamples: samples.reduce(0, +))
        self = PendingRound()
        return result
    }
}
