/// FedAsync (Xie et al. 2019): on each arrival x ← (1 − α·s(τ))·x + α·s(τ)·x_new, with x_new = x_base + Δ.
/// Keeps the last `historyDepth` globals so x_base is exact; older bases are rejected as stale.
/// With an exact `loraMode` the mix is done on each adapter's product B·A (`aggregateLoRA` of x and x_new).
public struct FedAsync: AggregationStrategy {
    public let name = "fedasync"
    public let timing = AggregationTiming.asynchronous
    public var alpha: Double
    public var staleness: StalenessFunction
    public var validator: UpdateValidator
    public var loraMode: LoRAAggregationMode
    public let historyDepth: Int
    /// Past globals, oldest first: (version, parameters).
    private var history: [(UInt64, [Float])] = []
    private var seen = RecentKeys(capacity: 4096)

    public init(alpha: Double = 0.6, staleness: StalenessFunction = .polynomial(a: 0.5),
                historyDepth: Int = 16, validator: UpdateValidator = UpdateValidator(), loraMode: LoRAAggregationMode = .naive) {
        self.alpha = alpha; self.staleness = staleness
        self.historyDepth = max(0, historyDepth); self.validator = validator; self.loraMode = loraMode
    }

    /// A past global by version (nil once it left the history): what a device dispatched at that version trains from.
    public func parameters(atVersion v: UInt64) -> [Float]? { history.last(where: { $0.0 == v })?.1 }

    /// Mixing weight α·s(τ) used for an update τ versions old.
    public func mixingWeight(staleness tau: UInt64) -> Double { alpha * staleness.weight(staleness: tau) }

    public mutating func submit(_ update: ModelUpdate, to global: inout GlobalModel) throws(UpdateRejection) -> AggregationResult? {
        if seen.contains(update.device, update.round) { throw .duplicate(device: update.device, round: update.round) }
        let tau = try validator.validate(update, against: global)
        var xNew: [Float]
        if tau == 0 {
            xNew = global.parameters
        } else if let base = history.last(where: { $0.0 == update.baseVersion }) {
            xNew = base.1
        } else {
            throw .staleBeyond(staleness: tau, limit: UInt64(history.count))
        }
        VectorMath.axpy(1, update.delta, &xNew)
        let beta = mixingWeight(staleness: tau)
        var mixed: [Float]? = nil
        if loraMode != .naive {
            do {
                mixed = try aggregateLoRA([global.parameters, xNew], weights: [1 - beta, beta], layout: global.layout,
                                          mode: loraMode, global: global.parameters)
            } catch { throw .combineFailed(reason: error.description) }
        }

        if historyDepth > 0 {
            history.append((global.version, global.parameters))
            if history.count > historyDepth { history.removeFirst(history.count - historyDepth) }
        }
        let before = global.parameters
        if let mixed {
            global.parameters = mixed
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
        seen.insert(update.device, update.round)
        return AggregationResult(version: global.version, contributors: [update.device], weights: [beta],
                                 stalenesses: [tau], stepNorm: VectorMath.distance(global.parameters, before),
                                 meanLoss: Double(update.loss), totalSamples: update.samples)
    }

    public mutating func closeRound(_ global: inout GlobalModel) -> RoundOutcome { .nothingPending }
}

/// Bounded memory of accepted (device, round) keys, so retries are recognised.
struct RecentKeys: Sendable, Equatable {
    struct Key: Hashable, Sendable { var device: String; var round: UInt64 }
    let capacity: Int
    private var order: [Key] = []
    private var set: Set<Key> = []
    init(capacity: Int) { self.capacity = capacity }
    func contains(_ device: String, _ round: UInt64) -> Bool { set.contains(Key(device: device, round: round)) }
    mutating func insert(_ device: String, _ round: UInt64) {
        let k = Key(device: device, round: round)
        guard set.insert(k).inserted else { return }
        order.append(k)
        if order.count > capacity { set.remove(order.removeFirst()) }
    }
}
