import EdgeEnvironment
import Experiments
import Wire
import COpenBLAS
import Engine
import Federation
import Foundation
import Tokenizers

/// What every trainer of a device host shares: the frozen base (loaded once, read by every trainer), the tokenizer,
/// the LoRA setup and the adapter layout. A host of K virtual devices holds this once.
public final class SharedBase: @unchecked Sendable {  // safe: immutable after init; trainers only read `model`'s weights
    public let model: LanguageModel
    public let tokenizer: any Tokenizer
    public let layout: Federation.ParameterLayout
    let template: LoRAAdapter
    let lora: LoRAConfig
    let seed: UInt64
    public let batch: Int, sequence: Int

    public init(modelDir: String, experiment: Experiment) throws {
        try requireModel(modelDir)
        tokenizer = try loadTokenizer(modelDir: URL(fileURLWithPath: modelDir))  // the model's own (tokenizer.json, GPT-2 BPE or bytes)
        model = try LanguageModel.load(directory: URL(fileURLWithPath: modelDir))
        lora = try experiment.lora.config()
        seed = experiment.seed
        try model.attachLoRA(lora, seed: seed)
        template = try model.adapter()
        model.detachLoRA()
        layout = try AdapterWire.layout(of: template)
        batch = experiment.federation.batch
        sequence = min(experiment.federation.seq, model.config.contextLength)
    }

    /// A trainer over this base: its own adapter, optimizer state and activations, the base weights shared.
    public func makeTrainer() throws -> ModelTrainer { try ModelTrainer(self) }

    /// Where the base weights live (every trainer of this base reads the same storage).
    public var baseStorage: UnsafeRawPointer { model.baseStorage }
}

/// One trainer of a pool: runs the local work of whichever device it is given. Not thread-safe: one task at a time
/// (Sendable only to be handed to its pool thread).
public protocol LocalTrainer: AnyObject, Sendable {
    /// Local steps from `global` with the task's settings: the delta (same layout), mean loss and FLOPs spent.
    func train(from global: [Float], data: DeviceData, settings: LocalSettings, seed: UInt64) throws -> (delta: [Float], loss: Float, flops: Double)
    /// Validation loss of `global` on the device's validation tokens.
    func evaluate(_ global: [Float], data: DeviceData) throws -> (loss: Float, tokens: Int)
    /// IFCA: a candidate model's loss on seeded windows of the device's training data.
    func trainingLoss(_ global: [Float], data: DeviceData, seed: UInt64) throws -> Float
}

/// The real thing: LoRA training on a view of the shared frozen base.
public final class ModelTrainer: LocalTrainer, @unchecked Sendable {  // safe: a pool gives a trainer to one job at a time
    public let base: SharedBase
    public let model: LanguageModel
    var adapter: LoRAAdapter

    init(_ base: SharedBase) throws {
        self.base = base
        model = base.model.sharingBase()
        try model.attachLoRA(base.lora, seed: base.seed)
        adapter = base.template
    }

    func load(_ global: [Float]) throws {
        guard global.count == base.layout.count else {
            throw EngineError.badInput("global adapter has \(global.count) values, the layout \(base.layout.count)")
        }
        try adapter.load(flat: global)
        try model.setAdapter(adapter)
    }

    public func train(from global: [Float], data: DeviceData, settings: LocalSettings, seed: UInt64) throws -> (delta: [Float], loss: Float, flops: Double) {
        try load(global)
        let loss = try model.trainAdapter(tokens: data.train, steps: settings.steps, batch: base.batch, sequence: base.sequence,
                                          learningRate: settings.learningRate, freezeA: settings.freezeA,
                                          proximalMu: settings.proximalMu, seed: seed)
        var delta = try model.adapter().flatten()
        for i in delta.indices { delta[i] -= global[i] }
        let flops = loraTrainingFLOPs(parameters: model.parameterCount, tokens: settings.steps * base.batch * base.sequence)
        return (delta, loss, flops)
    }

    /// Mean loss of `batch` seeded training windows (the same windows for every candidate).
    public func trainingLoss(_ global: [Float], data: DeviceData, seed: UInt64) throws -> Float {
        try load(global)
        var rng = SplitMix64(seed: seed)
        var total: Float = 0
        for _ in 0..<base.batch {
            let start = rng.below(max(1, data.train.count - base.sequence - 1))
            total += try model.evaluate(tokens: Array(data.train[start..<min(data.train.count, start + base.sequence + 1)])).loss
        }
        return total / Float(base.batch)
    }

    public func evaluate(_ global: [Float], data: DeviceData) throws -> (loss: Float, tokens: Int) {
        try load(global)
        return try model.evaluate(tokens: data.validation)
    }
}

/// `--echo`: no model, no data: answers with a constant tiny delta of the received adapter's size (benchmarks).
public final class EchoTrainer: LocalTrainer, @unchecked Sendable {  // safe: as ModelTrainer
    var cached: [Float] = []
    public init() {}

    public func train(from global: [Float], data: DeviceData, settings: LocalSettings, seed: UInt64) throws -> (delta: [Float], loss: Float, flops: Double) {
        if cached.count != global.count { cached = [Float](repeating: 1e-6, count: global.count) }
        return (cached, 0, 0)
    }

    public func evaluate(_ global: [Float], data: DeviceData) throws -> (loss: Float, tokens: Int) { (0, 0) }
    public func trainingLoss(_ global: [Float], data: DeviceData, seed: UInt64) throws -> Float { 0 }
}

/// One OpenBLAS thread per trainer when several trainers share this process's cores.
public func singleThreadedBLAS() { openblas_set_num_threads(1) }
