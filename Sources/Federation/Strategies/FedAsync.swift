/// An asynchronous rule: updates change the model as they arrive (FedAsync) or in buffers of K (FedBuff).
/// `base` is the model the update was trained from (the algorithm keeps the bases of tasks in flight).
public protocol AsynchronousRule: Sendable {
    var name: String { get }
    /// Takes one validated update τ versions old; returns what changed the model (nil: buffered).
    mutating func submit(_ update: ModelUpdate, base: [Float], staleness tau: UInt64, to global: inout GlobalModel) throws(UpdateRejection) -> AggregationResult?
    /// Applies whatever is buffered (end of the run).
    mutating func flush(_ global: inout GlobalModel) -> AggregationResult?
    /// The last exact-LoRA combine error (that step fell back to the naive one).
    var lastError: LoRAAggregationError? { get }
}

/// FedAsync (Xie et al. 2019): on each arrival x ← (1 − α·s(τ))·x + α·s(τ)·x_new, with x_new = x_base + Δ.
/// With an exact `loraMode` the mix is done on each adapter's product B·A (`aggregateLoRA` of x and x_new).
public struct FedAsync: AsynchronousRule {
    public let name = "fedasync"
    public var alpha: Double
    public var staleness: StalenessFunction
    public var loraMode: LoRAAggregationMode
    public private(set) var lastError: LoRAAggregationError?

    public init(alpha: Double = 0.6, staleness: StalenessFunction = .polynomial(a: 0.5), loraMode: LoRAAggregationMode = .naive) {
        self.alpha = alpha; self.staleness = staleness; self.loraMode = loraMode
    }

    /// Mixing weight α·s(τ) used for an update τ versions old.
    public func mixingWeight(staleness tau: UInt64) -> Double { alpha * staleness.weight(staleness: tau) }

    public mutating func submit(_ update: ModelUpdate, base: [Float], staleness tau: UInt64, to global: inout GlobalModel) throws(UpdateRejection) -> AggregationResult? {
        guard base.count == update.delta.count else { throw .wrongLength(expected: base.count, actual: update.delta.count) }
        var xNew = base
        VectorMath.axpy(1, update.delta, &xNew)
        let beta = mixingWeight(staleness: tau)
        let before = global.parameters
        lastError = nil
        if loraMode != .naive {
            do {
                global.parameters = try aggregateLoRA([global.parameters, xNew], weights: [1 - beta, beta], layout: global.layout,
                                                      mode: loraMode, global: global.parameters)
            } catch { throw .combineFailed(reason: error.description) }
        } else {
            // x ← (1−β)x + β·x_new, one pass.
            let b = Float(beta), keep = Float(1 - beta)
            global.parameters.withUnsafeMutableBufferPointer { x in
                xNew.withUnsafeBufferPointer { n in
                    for i in 0..<x.count { x[i] = keep * x[i] + b * n[i] }
                }
            }
        }
        global.version += 1
        return AggregationResult(version: global.version, contributors: [update.device], weights: [beta],
                                 stalenesses: [tau], stepNorm: VectorMath.distance(global.parameters, before),
                                 meanLoss: Double(update.loss), totalSamples: update.samples)
    }

    public mutating func flush(_ global: inout GlobalModel) -> AggregationResult? { nil }
}
