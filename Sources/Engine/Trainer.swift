/// Trains a LanguageModel on token streams: sample windows, forward, backward, clip, AdamW, schedule.
/// All buffers are made at init; `step` allocates nothing.
public final class Trainer {
    public let model: LanguageModel
    public let trainable: TrainableSet
    public let batch: Int, sequence: Int
    public var schedule: LRSchedule
    let optimizer: AdamW
    public private(set) var stepCount = 0
    /// Adapter training only: keep every lora_A fixed (FFA-LoRA), so averaging B alone is exact.
    public var freezeLoRAA = false
    /// Gradient norm (before clipping) of the last step.
    public private(set) var lastGradNorm: Float = 0
    /// FedProx: adds μ/2·‖w − anchor‖² to the loss (its gradient μ·(w − anchor)), anchor = the received global.
    public var proximal: (mu: Float, anchor: [Float])?

    public init(model: LanguageModel, trainable: TrainableSet, batch: Int, sequence: Int,
                schedule: LRSchedule, optimizer: AdamWConfig = AdamWConfig()) throws(EngineError) {
        try model.prepareTraining(batch: batch, sequence: sequence, trainable: trainable)
        self.model = model; self.trainable = trainable; self.batch = batch; self.sequence = sequence
        self.schedule = schedule
        let count = trainable == .base ? model.layout.count : model.lora!.params.count
        self.optimizer = AdamW(config: optimizer, count: count)
    }

    /// One optimisation step on a batch of windows cut from `tokens` at random offsets. Returns the loss.
    public func step(tokens: [Int32], rng: inout SplitMix64) throws(EngineError) -> Float {
        let T = sequence, n = tokens.count
        guard n > T else { throw .badInput("need more than \(T) tokens to cut a training window, got \(n)") }
        let a = model.acts!
        let V = Int32(model.config.vocabSize)
        for b in 0..<batch {
            let start = rng.below(n - T)
            for t in 0..<T {
                let x = tokens[start + t], y = tokens[start + t + 1]
                guard x >= 0, x < V, y >= 0, y < V else { throw .badInput("token id \(x < 0 || x >= V ? x : y) outside vocabulary 0..<\(V)") }
                a.tokens[b * T + t] = x; a.targets[b * T + t] = y
            }
        }
        return stepOnLoadedBatch()
    }

    /// Step on the windows already in the model's token/target buffers (benchmarks, tests).
    func stepOnLoadedBatch() -> Float {
        let (params, grads) = buffers()
        grads.zero()
        let loss = model.forward(B: batch, T: sequence)
        model.backward(B: batch, T: sequence, trainable: trainable)
        if let (mu, anchor) = proximal, mu > 0, anchor.count == grads.count {
            for i in 0..<anchor.count { grads.base[i] += mu * (params[i] - anchor[i]) }
        }
        if freezeLoRAA, trainable == .adapter, let lora = model.lora {
            for slot in lora.slots { (grads.base + slot.a).update(repeating: 0, count: lora.config.rank * slot.inp) }
        }
        lastGradNorm = optimizer.step(params: params, grads: grads.base, lr: schedule.rate(at: stepCount))
        stepCount += 1
        return loss
    }

    func buffers() -> (UnsafeMutablePointer<Float>, Arena) {
        switch trainable {
        case .base: return (model.params.base, model.baseGrads!)
        case .adapter: return (model.lora!.params.base, model.lora!.grads)
        }
    }

    /// Runs `steps` steps and returns their mean loss.
    public func train(tokens: [Int32], steps: Int, rng: inout SplitMix64) throws(EngineError) -> Float {
        var sum: Double = 0
        for _ in 0..<steps { sum += Double(try step(tokens: tokens, rng: &rng)) }
        return steps > 0 ? Float(sum / Double(steps)) : 0
    }
}

extension LanguageModel {
    /// Federated local training: E adapter steps on `tokens` with a fresh AdamW, constant LR. Returns the mean loss.
    /// freezeA keeps lora_A fixed (FFA-LoRA exact aggregation); proximalMu > 0 is FedProx (anchored at the adapter
    /// the training starts from).
    public func trainAdapter(tokens: [Int32], steps: Int, batch: Int = 4, sequence: Int? = nil,
                             learningRate: Float = 1e-3, freezeA: Bool = false, proximalMu: Float = 0, seed: UInt64) throws(EngineError) -> Float {
        let T = min(sequence ?? config.contextLength, config.contextLength, max(tokens.count - 1, 1))
        let trainer = try Trainer(model: self, trainable: .adapter, batch: batch, sequence: T,
                                  schedule: .constant(learningRate), optimizer: AdamWConfig(weightDecay: 0))
        trainer.freezeLoRAA = freezeA
        if proximalMu > 0, let p = adapterParameters { trainer.proximal = (proximalMu, Array(p)) }
        var rng = SplitMix64(seed: seed)
        return try trainer.train(tokens: tokens, steps: steps, rng: &rng)
    }

    /// Mean next-token cross-entropy over non-overlapping windows of the context (adapter applied if attached).
    /// Returns (loss, number of predicted tokens).
    public func evaluate(tokens: [Int32]) throws(EngineError) -> (loss: Float, tokens: Int) {
        guard tokens.count >= 2 else { throw .badInput("evaluation needs at least 2 tokens, got \(tokens.count)") }
        let V = Int32(config.vocabSize)
        if let bad = tokens.first(where: { $0 < 0 || $0 >= V }) { throw .badInput("token id \(bad) outside vocabulary 0..<\(V)") }
        let ctx = config.contextLength
        var total: Double = 0, count = 0
        var start = 0
        let saved = acts
        defer { acts = saved }
        while start < tokens.count - 1 {
            let T = min(ctx, tokens.count - 1 - start)
            let a = ensureActivations(B: 1, T: T)
            for t in 0..<T { a.tokens[t] = tokens[start + t]; a.targets[t] = tokens[start + t + 1] }
            total += Double(forward(B: 1, T: T)) * Double(T)
            count += T
            start += T
        }
        return (Float(total / Double(count)), count)
    }
}

extension LanguageModel {
    /// The attached adapter's parameters as one flat vector (adapter order), nil without an adapter.
    public var adapterParameters: UnsafeMutableBufferPointer<Float>? { lora?.params.buffer }

    /// Mean cross-entropy of inputs/targets [batch, T] (one training-mode forward).
    public func loss(inputs: [Int32], targets: [Int32], batch: Int) throws(EngineError) -> Float {
        let T = try load(inputs: inputs, targets: targets, batch: batch)
        return forward(B: batch, T: T)
    }

    /// Loss and gradient of the mean cross-entropy w.r.t. the base parameters (.base, layout order) or the
    /// adapter (.adapter, adapter order). Allocates its result: for checks and tools, not the training loop.
    public func gradients(inputs: [Int32], targets: [Int32], batch: Int, trainable: TrainableSet) throws(EngineError) -> (loss: Float, gradients: [Float]) {
        let T = inputs.count / max(batch, 1)
        try prepareTraining(batch: batch, sequence: T, trainable: trainable)
        _ = try load(inputs: inputs, targets: targets, batch: batch)
        let grads = trainable == .base ? baseGrads! : lora!.grads
        grads.zero()
        lora?.grads.zero()
        let loss = forward(B: batch, T: T)
        backward(B: batch, T: T, trainable: trainable)
        return (loss, Array(grads.buffer))
    }

    func load(inputs: [Int32], targets: [Int32], batch: Int) throws(EngineError) -> Int {
        guard batch > 0, inputs.count == targets.count, inputs.count % batch == 0, !inputs.isEmpty else {
            throw .badInput("inputs (\(inputs.count)) and targets (\(targets.count)) must be equal, non-empty multiples of batch \(batch)")
        }
        let T = inputs.count / batch
        guard T <= config.contextLength else { throw .badInput("sequence \(T) exceeds the context \(config.contextLength)") }
        let V = Int32(config.vocabSize)
        if let bad = (inputs + targets).first(where: { $0 < 0 || $0 >= V }) { throw .badInput("token id \(bad) outside vocabulary 0..<\(V)") }
        let a = ensureActivations(B: batch, T: T)
        for i in 0..<inputs.count { a.tokens[i] = inputs[i]; a.targets[i] = targets[i] }
        return T
    }
}
