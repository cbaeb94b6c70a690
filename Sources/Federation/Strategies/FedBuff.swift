/// FedBuff (Nguyen et al. 2022): buffer K deltas; when full, x ← x + η·(1/K)·Σ s(τᵢ)·Δᵢ and the version advances.
public struct FedBuff: AggregationStrategy {
    public let name = "fedbuff"
    public let timing = AggregationTiming.asynchronous
    public var bufferSize: Int
    public var serverLearningRate: Double
    public var staleness: StalenessFunction
    public var validator: UpdateValidator
    /// Running Σ s(τᵢ)·Δᵢ, so memory stays one vector whatever K is.
    private var sum: [Float] = []
    private var contributors: [String] = []
    private var scales: [Double] = []
    private var taus: [UInt64] = []
    private var samples: [Int] = []
    private var losses: [Float] = []
    private var rounds: [UInt64] = []

    public init(bufferSize: Int = 10, serverLearningRate: Double = 1, staleness: StalenessFunction = .polynomial(a: 0.5),
                validator: UpdateValidator = UpdateValidator()) {
        self.bufferSize = max(1, bufferSize); self.serverLearningRate = serverLearningRate
        self.staleness = staleness; self.validator = validator
    }

    public var buffered: Int { contributors.count }

    public mutating func submit(_ update: ModelUpdate, to global: inout GlobalModel) throws(UpdateRejection) -> AggregationResult? {
        for (d, r) in zip(contributors, rounds) where d == update.device && r == update.round {
            throw .duplicate(device: update.device, round: update.round)
        }
        let tau = try validator.validate(update, against: global)
        let s = staleness.weight(staleness: tau)
        if sum.count != update.delta.count { sum = [Float](repeating: 0, count: update.delta.count) }
        VectorMath.axpy(Float(s), update.delta, &sum)
        contributors.append(update.device); scales.append(s); taus.append(tau)
        samples.append(update.samples); losses.append(update.loss); rounds.append(update.round)
        return buffered >= bufferSize ? release(&global) : nil
    }

    /// Applies the buffer now even if it holds fewer than K (e.g. at the end of training).
    public mutating func flush(_ global: inout GlobalModel) -> AggregationResult? {
        buffered == 0 ? nil : release(&global)
    }

    public mutating func closeRound(_ global: inout GlobalModel) -> RoundOutcome {
        buffered == 0 ? .nothingPending : .belowQuorum(received: buffered, required: bufferSize)
    }

    private mutating func release(_ global: inout GlobalModel) -> AggregationResult {
        let k = Double(buffered)
        let step = Float(serverLearningRate / k)
        let before = global.parameters
        VectorMath.axpy(step, sum, &global.parameters)
        global.version += 1
        let lw = sampleWeights(samples)
        var meanLoss = 0.0
        for (l, w) in zip(losses, lw) { meanLoss += w * Double(l) }
        let result = AggregationResult(version: global.version, contributors: contributors,
                                       weights: scales.map { serverLearningRate * $0 / k }, stalenesses: taus,
                                       stepNorm: VectorMath.distance(global.parameters, before),
                                       meanLoss: meanLoss, totalSamples: samples.reduce(0, +))
        sum = []; contributors = []; scales = []; taus = []; samples = []; losses = []; rounds = []
        return result
    }
}
