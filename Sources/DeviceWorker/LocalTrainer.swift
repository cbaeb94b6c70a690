import EdgeEnvironment
import Experiments
import Wire
import COpenBLAS
import Data
import Engine
import Federation
import Foundation
import Messages
import Tokenizers

/// Bounds concurrent training/evaluation in one process (many embedded devices share 2 cores).
public final class TrainingGate: @unchecked Sendable {  // safe: DispatchSemaphore is thread-safe
    public static let shared = TrainingGate(slots: max(1, ProcessInfo.processInfo.activeProcessorCount))
    let semaphore: DispatchSemaphore
    public init(slots: Int) { semaphore = DispatchSemaphore(value: max(1, slots)) }
    public func run<T>(_ body: () throws -> T) rethrows -> T {
        semaphore.wait()
        defer { semaphore.signal() }
        return try body()
    }

    /// One OpenBLAS thread per trainer when several devices share this process.
    public static func singleThreadedBLAS() { openblas_set_num_threads(1) }
}

/// What a device does with a global adapter: local steps, or evaluation. Runs on the device's worker queue only.
public protocol LocalTrainer: AnyObject {
    var domain: String { get }
    var samples: Int { get }
    /// E local steps from `global` with the task's settings; returns the delta (same layout), mean loss and FLOPs spent.
    func train(global: [Messages.Tensor], settings: LocalSettings, seed: UInt64) throws -> (delta: [Messages.Tensor], loss: Float, flops: Double)
    func evaluate(global: [Messages.Tensor]) throws -> (loss: Float, tokens: Int)
    /// IFCA: each candidate model's loss on a sample of the local training data.
    func trainingLoss(global: [Messages.Tensor], seed: UInt64) throws -> Float
}

/// The real thing: the frozen base model with a LoRA adapter, trained on this device's partition.
public final class ModelTrainer: LocalTrainer {
    public let domain: String
    public var samples: Int { train.count }
    let model: LanguageModel
    var template: LoRAAdapter
    let layout: Federation.ParameterLayout
    let train: [Int32]
    let validation: [Int32]
    let batch: Int, sequence: Int
    var encoder: DeltaEncoder

    public init(modelDir: String, dataDir: String, partition: Int, experiment: Experiment) throws {
        try requireModel(modelDir)
        let manifest = try PartitionManifest.load(URL(fileURLWithPath: dataDir))
        guard manifest.deviceCount > 0 else { throw DataError.invalidPartition("manifest in \(dataDir) has no devices") }
        let id = partition % manifest.deviceCount
        let tokenizer = try loadTokenizer(modelDir: URL(fileURLWithPath: modelDir))  // the model's own (tokenizer.json, GPT-2 BPE or bytes)
        train = tokenizer.encode(try manifest.trainText(device: id))
        var val = tokenizer.encode(try manifest.validationText(device: id))
        if val.count > experiment.federation.evalTokens { val = Array(val[..<experiment.federation.evalTokens]) }
        validation = val
        domain = manifest.devices[id].dominantDomain
        model = try LanguageModel.load(directory: URL(fileURLWithPath: modelDir))
        try model.attachLoRA(try experiment.lora.config(), seed: experiment.seed)
        template = try model.adapter()
        layout = try AdapterWire.layout(of: template)
        batch = experiment.federation.batch
        sequence = min(experiment.federation.seq, model.config.contextLength)
        encoder = DeltaEncoder(codec: experiment.compression.codec, topkFraction: experiment.compression.topkFraction)
    }

    func load(_ tensors: [Messages.Tensor]) throws -> [Float] {
        if let problem = AdapterWire.mismatch(tensors, layout: layout) { throw EngineError.badInput("global adapter: \(problem)") }
        let flat = try AdapterWire.flat(tensors)
        try template.load(flat: flat)
        try model.setAdapter(template)
        return flat
    }

    public func train(global: [Messages.Tensor], settings: LocalSettings, seed: UInt64) throws -> (delta: [Messages.Tensor], loss: Float, flops: Double) {
        let before = try load(global)
        let loss = try model.trainAdapter(tokens: train, steps: settings.steps, batch: batch, sequence: sequence, learningRate: settings.learningRate,
                                        freezeA: settings.freezeA, proximalMu: settings.proximalMu, seed: seed)
        var delta = try model.adapter().flatten()
        for i in delta.indices { delta[i] -= before[i] }
        let flops = loraTrainingFLOPs(parameters: model.parameterCount, tokens: settings.steps * batch * sequence)
        return (encoder.encode(delta, layout: layout), loss, flops)
    }

    /// Mean loss of `batch` seeded training windows (the same windows for every candidate).
    public func trainingLoss(global: [Messages.Tensor], seed: UInt64) throws -> Float {
        _ = try load(global)
        var rng = SplitMix64(seed: seed)
        var total: Float = 0
        for _ in 0..<batch {
            let start = rng.below(max(1, train.count - sequence - 1))
            total += try model.evaluate(tokens: Array(train[start..<min(train.count, start + sequence + 1)])).loss
        }
        return total / Float(batch)
    }

    public func evaluate(global: [Messages.Tensor]) throws -> (loss: Float, tokens: Int) {
        _ = try load(global)
        return try model.evaluate(tokens: validation)
    }
}

/// `--echo`: no model, no data: answers with a constant tiny delta of the received adapter's shapes (benchmarks).
public final class EchoTrainer: LocalTrainer {
    public let domain = "echo"
    public let samples = 1
    var cached: (names: [String], delta: [Messages.Tensor])?
    public init() {}

    public func train(global: [Messages.Tensor], settings: LocalSettings, seed: UInt64) throws -> (delta: [Messages.Tensor], loss: Float, flops: Double) {
        let names = global.map(\.name)
        if cached?.names != names {
            cached = (names, global.map { Messages.Tensor(name: $0.name, shape: $0.shape, floats: [Float](repeating: 1e-6, count: $0.elementCount ?? 0)) })
        }
        return (cached?.delta ?? [], 0, 0)
    }

    public func evaluate(global: [Messages.Tensor]) throws -> (loss: Float, tokens: Int) { (0, 0) }
    public func trainingLoss(global: [Messages.Tensor], seed: UInt64) throws -> Float { 0 }
}
