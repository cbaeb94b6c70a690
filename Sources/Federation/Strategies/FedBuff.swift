/// FedBuff (Nguyen et al. 2022): buffer K deltas; when full, x ← x + η·(1/K)·Σ s(τᵢ)·Δᵢ and the version advances.
/// Exact LoRA modes: `.frozenA` keeps the global's A; `.productSVD` applies the same step to each adapter's product,
/// B·A ← B·A + η/K·Σ s(τᵢ)·(Bᵢ·Aᵢ − B_baseᵢ·A_baseᵢ), re-factorised to rank r.
public struct FedBuff: AsynchronousRule, Codable {
    public var name: String { "fedbuff" }
    public var bufferSize: Int
    public var serverLearningRate: Double
    public var staleness: StalenessFunction
    public var loraMode: LoRAAggregationMode
    /// The last combine error of an exact mode; that release fell back to the naive step.
    public private(set) var lastError: LoRAAggregationError?
    /// DP per buffer (clip, noise at release, per-device accounting); nil without a privacy stage.
    public var privacy: BufferPrivacy?
    /// Each buffered update's base and base + Δ (`.productSVD` only).
    private var bases: [[Float]] = []
    private var adapters: [[Float]] = []
    /// Running Σ s(τᵢ)·Δᵢ, so memory stays one vector whatever K is (naive and frozen-A).
    private var sum: [Float] = []
    private var contributors: [String] = []
    private var scales: [Double] = []
    private var taus: [UInt64] = []
    private var samples: [Int] = []
    private var losses: [Float] = []

    enum CodingKeys: String, CodingKey {
        case bufferSize, serverLearningRate, staleness, loraMode, bases, adapters, sum, contributors, scales, taus, samples, losses, privacy
    }

    public init(bufferSize: Int = 10, serverLearningRate: Double = 1, staleness: StalenessFunction = .polynomial(a: 0.5),
                loraMode: LoRAAggregationMode = .naive) {
        self.bufferSize = max(1, bufferSize); self.serverLearningRate = serverLearningRate
        self.staleness = staleness; self.loraMode = loraMode
    }

    public var buffered: Int { contributors.count }

    public mutating func submit(_ update: ModelUpdate, base: [Float], staleness tau: UInt64, to global: inout GlobalModel) throws(UpdateRejection) -> AggregationResult? {
        guard base.count == update.delta.count else { throw .wrongLength(expected: base.count, actual: update.delta.count) }
        var update = update
        privacy?.admit(&update.delta)
        if loraMode == .productSVD {
            var x = base
            VectorMath.axpy(1, update.delta, &x)
            bases.append(base); adapters.append(x)
        }
        let s = staleness.weight(staleness: tau)
        if sum.count != update.delta.count { sum = [Float](repeating: 0, count: update.delta.count) }
        VectorMath.axpy(Float(s), update.delta, &sum)
        contributors.append(update.device); scales.append(s); taus.append(tau)
        samples.append(update.samples); losses.append(update.loss)
        return buffered >= bufferSize ? release(&global) : nil
    }

    /// Applies the buffer now even if it holds fewer than K (e.g. at the end of training).
    public mutating func flush(_ global: inout GlobalModel) -> AggregationResult? {
        buffered == 0 ? nil : release(&global)
    }

    private mutating func release(_ global: inout GlobalModel) -> AggregationResult {
        let k = Double(buffered)
        let step = Float(serverLearningRate / k)
        let before = global.parameters
        privacy?.release(&sum, devices: contributors, bufferSize: bufferSize)
        VectorMath.axpy(step, sum, &global.parameters)
        lastError = nil
        do {
            switch loraMode {
            case .naive: break
            case .frozenA:
                global.parameters = try aggregateLoRA([global.parameters], weights: [1], layout: global.layout, mode: .frozenA, global: before)
            case .productSVD:
                let c = scales.map { serverLearningRate * $0 / k }
                global.parameters = try aggregateLoRA([before] + adapters + bases, weights: [1] + c + c.map { -$0 },
                                                      layout: global.layout, mode: .productSVD, global: before)
            }
        } catch {
            lastError = error  // the naive step above stands
        }
        global.version += 1
        let lw = sampleWeights(samples)
        var meanLoss = 0.0
        for (l, w) in zip(losses, lw) { meanLoss += w * Double(l) }
        let result = AggregationResult(version: global.version, contributors: contributors,
                                       weights: scales.map { serverLearningRate * $0 / k }, stalenesses: taus,
                                       stepNorm: VectorMath.distance(global.parameters, before),
                                       meanLoss: meanLoss, totalSamples: samples.reduce(0, +))
        sum = []; contributors = []; scales = []; taus = []; samples = []; losses = []; bases = []; adapters = []
        return result
    }
}
