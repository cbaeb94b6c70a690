/// How one model's round combines: the rule, the weight cap, the LoRA mode and the server optimizer.
public struct CombineRule: Sendable {
    public var strategy: any AggregationStrategy
    /// No participant's weight exceeds this share of the round's total (1: no cap).
    public var maxWeight: Double
    public var loraMode: LoRAAggregationMode
    public var serverOptimizer: ServerOptimizerConfig

    public init(strategy: any AggregationStrategy = FedAvg(), maxWeight: Double = 1, loraMode: LoRAAggregationMode = .naive,
                serverOptimizer: ServerOptimizerConfig = ServerOptimizerConfig()) {
        self.strategy = strategy; self.maxWeight = maxWeight; self.loraMode = loraMode; self.serverOptimizer = serverOptimizer
    }

    /// Rules that only need the weighted sum stream it (flat memory); the others hold every update.
    var streams: Bool { strategy.isWeightedMean && loraMode != .productSVD }
}

/// What closing one model's round did.
public struct Combined: Sendable, Equatable {
    /// The step applied to the model (after the LoRA mode and the server optimizer).
    public var step: [Float]
    public var result: AggregationResult
    /// Exact LoRA modes: ‖mean(B)·mean(A) − mean(B·A)‖ / ‖mean(B·A)‖ of this round (held updates only).
    public var naiveProductGap: Double?
    /// The exact combine failed and the naive step was applied instead.
    public var combineError: String?
    /// Under DP: what the round released.
    public var privacy: PrivateRoundReport?
}

/// The accepted updates of one round of one model. A weighted-mean rule streams them into a running sum and holds
/// only the few largest sample counts the weight cap could bind (⌊1/cap⌋ + 1), so memory does not grow with the
/// participants; every other rule holds all of them. Under DP (`privacy`) every update is clipped (central), summed
/// with unit weight, and the noised sum divided by the planned participants (DifferentialPrivacy.swift).
public struct RoundAggregate: Sendable {
    public let rule: CombineRule
    public let privacy: PrivateCombine?
    public private(set) var count = 0
    private var unclipped = 0.0
    private var held: [ModelUpdate] = []
    private var sum: [Double] = []
    private var streamedSamples: [Int] = []
    private var streamedDevices: [String] = []
    private var contributors: [String] = []
    private var samples: [Int] = []
    private var losses: [Float] = []
    private var taus: [UInt64] = []

    public init(rule: CombineRule, privacy: PrivateCombine? = nil) { self.rule = rule; self.privacy = privacy }

    var holdLimit: Int {
        if privacy != nil { return 0 }
        guard rule.streams else { return Int.max }
        return rule.maxWeight < 1 && rule.maxWeight > 0 ? Int(1 / rule.maxWeight) + 1 : 0
    }

    /// Takes one validated update (τ: its staleness).
    public mutating func add(_ update: ModelUpdate, staleness tau: UInt64 = 0) {
        var u = update
        rule.strategy.prepare(&u.delta)
        if let p = privacy {
            if p.clipsHere {
                unclipped += GaussianMechanism.clip(&u.delta, to: p.clip) <= p.clip ? 1 : 0
            } else {
                unclipped += Double(u.clipReport ?? 0)
            }
        }
        contributors.append(u.device); samples.append(max(0, u.samples)); losses.append(u.loss); taus.append(tau)
        count += 1
        if held.count < holdLimit {
            held.append(u)
            return
        }
        // Stream the lightest of the held ones and this one (the cap can only bind the heaviest).
        if let i = held.indices.min(by: { (held[$0].samples, held[$0].device) < (held[$1].samples, held[$1].device) }),
           held[i].samples < u.samples {
            swap(&held[i], &u)
        }
        stream(u)
    }

    /// A secure-aggregation group's unmasked sum of `devices`' clipped (and, distributed, noised) updates; `unclipped`:
    /// their clip reports summed (adaptive clipping). Only under a privacy stage, which weighs every update 1.
    public mutating func addSum(_ s: [Double], devices: [String], samples: [Int], losses: [Float], unclipped u: Double = 0) {
        if sum.isEmpty { sum = [Double](repeating: 0, count: s.count) }
        for i in 0..<min(sum.count, s.count) { sum[i] += s[i] }
        contributors += devices; self.samples += samples.map { max(0, $0) }; self.losses += losses; taus += devices.map { _ in 0 }
        count += devices.count
        unclipped += u
    }

    private mutating func stream(_ u: ModelUpdate) {
        // Double: the sum hardly depends on arrival order, so a resumed run (uploads replayed in another order)
        // ends on the uninterrupted run's model.
        if sum.isEmpty { sum = [Double](repeating: 0, count: u.delta.count) }
        let w = privacy != nil ? 1 : Double(max(0, u.samples))
        u.delta.withUnsafeBufferPointer { d in
            sum.withUnsafeMutableBufferPointer { s in
                for i in 0..<min(s.count, d.count) { s[i] += w * Double(d[i]) }
            }
        }
        streamedSamples.append(max(0, u.samples))
        streamedDevices.append(u.device)
    }

    /// Combines the round into a step from `base` (the model the participants trained from), running the server
    /// optimizer; nil when nothing was accepted.
    public func combine(base: [Float], layout: ParameterLayout, optimizer: inout ServerOptimizer, version: UInt64) -> Combined? {
        guard count > 0 else { return nil }
        if let p = privacy { return combinePrivately(p, base: base, layout: layout, optimizer: &optimizer, version: version) }
        // Combined in participant order, not arrival order: the same round gives the same model however it arrived.
        let held = self.held.sorted { $0.device < $1.device }
        let weights = cappedWeights(held.map { Double($0.samples) } + streamedSamples.map(Double.init), maxShare: rule.maxWeight)
        let heldWeights = Array(weights[0..<held.count])
        var step = [Float](repeating: 0, count: base.count)
        var gap: Double?, failure: String?
        var effective = heldWeights
        switch rule.strategy.combine(held.map(\.delta), weights: heldWeights) {
        case .step(let s) where streamedSamples.isEmpty:
            step = s
        case .step:
            // Cannot happen: only weighted means stream. Keep the model rather than apply half a step.
            failure = "internal: a coordinate-wise rule saw streamed updates"
        case .weights(let w):
            effective = w
            for (u, wi) in zip(held, w) where wi != 0 { VectorMath.axpy(Float(wi), u.delta, &step) }
            if !streamedSamples.isEmpty, let j = streamedSamples.firstIndex(where: { $0 > 0 }) {
                // Streamed updates are never capped: each weighs samples × (its weight / its samples).
                let perSample = weights[held.count + j] / Double(streamedSamples[j])
                step.withUnsafeMutableBufferPointer { st in
                    sum.withUnsafeBufferPointer { sm in for i in 0..<min(st.count, sm.count) { st[i] += Float(perSample * sm[i]) } }
                }
            }
        }
        if rule.loraMode != .naive, failure == nil {
            (step, gap, failure) = exact(step: step, held: held, weights: effective, base: base, layout: layout)
        }
        let applied = optimizer.step(step)
        let lw = sampleWeights(samples)
        let meanLoss = zip(losses, lw).reduce(0.0) { $0 + $1.1 * Double($1.0) }
        var byDevice: [String: Double] = [:]
        for (u, w) in zip(held, effective) { byDevice[u.device] = w }
        if let j = streamedSamples.firstIndex(where: { $0 > 0 }) {
            let perSample = weights[held.count + j] / Double(streamedSamples[j])
            for (d, n) in zip(streamedDevices, streamedSamples) { byDevice[d] = perSample * Double(n) }
        }
        let result = AggregationResult(version: version, contributors: contributors, weights: contributors.map { byDevice[$0] ?? 0 },
                                       stalenesses: taus, stepNorm: VectorMath.norm(applied),
                                       meanLoss: meanLoss, totalSamples: samples.reduce(0, +))
        return Combined(step: applied, result: result, naiveProductGap: gap, combineError: failure)
    }

    /// DP-FedAvg: (Σ clipped Δᵢ + N(0, σ_Δ²C²)) / planned, then the LoRA mode (frozen A) and the server optimizer, which
    /// only post-process the noised sum.
    private func combinePrivately(_ p: PrivateCombine, base: [Float], layout: ParameterLayout, optimizer: inout ServerOptimizer,
                                  version: UInt64) -> Combined {
        let m = max(1, p.planned ?? count)
        var rng = ChaChaRandom(key: p.key, nonce: p.nonce)
        var noised = sum
        GaussianMechanism.addNoise(&noised, std: p.noiseStd, using: &rng)
        var step = noised.map { Float($0 / Double(m)) }
        var failure: String?
        if rule.loraMode != .naive { (step, _, failure) = exact(step: step, held: [], weights: [], base: base, layout: layout) }
        let applied = optimizer.step(step)
        let lw = sampleWeights(samples)
        let meanLoss = zip(losses, lw).reduce(0.0) { $0 + $1.1 * Double($1.0) }
        let result = AggregationResult(version: version, contributors: contributors, weights: contributors.map { _ in 1 / Double(m) },
                                       stalenesses: taus, stepNorm: VectorMath.norm(applied), meanLoss: meanLoss,
                                       totalSamples: samples.reduce(0, +))
        let counted = unclipped + (p.countNoiseStd > 0 ? rng.nextGaussian() * p.countNoiseStd : 0)
        return Combined(step: applied, result: result, naiveProductGap: nil, combineError: failure,
                        privacy: PrivateRoundReport(delivered: count, planned: m, unclipped: counted))
    }

    /// The exact LoRA modes: frozen A keeps the base's A; product-SVD re-factorises Σ wᵢ·Bᵢ·Aᵢ of the held adapters.
    private func exact(step: [Float], held: [ModelUpdate], weights: [Double], base: [Float], layout: ParameterLayout) -> ([Float], Double?, String?) {
        var x = base
        VectorMath.axpy(1, step, &x)
        do {
            switch rule.loraMode {
            case .naive: return (step, nil, nil)
            case .frozenA:
                var out = try aggregateLoRA([x], weights: [1], layout: layout, mode: .frozenA, global: base)
                VectorMath.axpy(-1, base, &out)
                return (out, nil, nil)
            case .productSVD:
                let adapters = held.map { u -> [Float] in var a = base; VectorMath.axpy(1, u.delta, &a); return a }
                let gap = try naiveProductGap(adapters, weights: weights, layout: layout)
                var out = try aggregateLoRA(adapters, weights: weights, layout: layout, mode: .productSVD, global: base)
                VectorMath.axpy(-1, base, &out)
                return (out, gap, nil)
            }
        } catch {
            return (step, nil, error.description)
        }
    }
}
