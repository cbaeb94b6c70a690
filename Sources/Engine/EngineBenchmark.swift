import COpenBLAS
import Foundation

/// `fi bench engine`: LoRA fine-tuning and generation throughput of GPT-2 and Llama shapes, fp32 and with a
/// quantized frozen base, with achieved GFLOP/s as a fraction of the cblas_sgemm peak measured in the same run.
/// Peer baselines (PyTorch, llama.cpp) are measured by the command in the same run.
public enum EngineBenchmark {
    /// A LoRA fine-tuning configuration: shape, batch × sequence, LoRA targets (rank 8, alpha 16).
    public struct TrainCase: Sendable {
        public var name: String
        public var config: ModelConfig
        public var batch: Int, sequence: Int
        public var targets: [LoRATarget]
        public var steps: Int
        /// Also time full fine-tuning (all base weights) on the fp32 base.
        public var full: Bool
        /// Frozen-base formats besides fp32.
        public var quantized: [QuantFormat]
    }

    /// A greedy generation configuration (the shape of the llama.cpp comparison).
    public struct GenerateCase: Sendable {
        public var name: String
        public var config: ModelConfig
        public var prompt: Int, newTokens: Int
        public var formats: [QuantFormat?]
    }

    public static let trainCases: [TrainCase] = [
        TrainCase(name: "tiny", config: ModelConfig(vocabSize: 256, contextLength: 128, layers: 2, heads: 2, width: 32), batch: 4,
                  sequence: 128, targets: [.attnQKV, .attnProj], steps: 30, full: false, quantized: []),
        TrainCase(name: "small", config: .small, batch: 4, sequence: 128, targets: [.attnQKV, .attnProj], steps: 10, full: true,
                  quantized: []),
        TrainCase(name: "llama-small", config: .llamaSmall, batch: 4, sequence: 128, targets: [.q, .k, .v, .o, .gate, .up, .down],
                  steps: 10, full: false, quantized: [.int8, .q4(group: 32)]),
        TrainCase(name: "smollm-135m", config: .smolLM135M, batch: 1, sequence: 256, targets: [.q, .k, .v, .o, .gate, .up, .down],
                  steps: 3, full: false, quantized: [.int8, .q4(group: 32)]),
        TrainCase(name: "gpt2-small", config: .gpt2Small, batch: 4, sequence: 128, targets: [.attnQKV, .attnProj], steps: 3,
                  full: false, quantized: []),
    ]

    public static let generateCases: [GenerateCase] = [
        GenerateCase(name: "gpt2-small", config: .gpt2Small, prompt: 16, newTokens: 32, formats: [nil, .int8, .q4(group: 32)]),
        GenerateCase(name: "smollm-135m", config: .smolLM135M, prompt: 16, newTokens: 32, formats: [nil, .int8, .q4(group: 32)]),
    ]

    public struct TrainResult: Sendable {
        public var name: String
        public var weights: String
        public var parameters: Int
        public var weightBytes: Int
        public var tokensPerSecond: Double
        public var gflops: Double
        public var fullTokensPerSecond: Double?
    }

    public struct GenerateResult: Sendable {
        public var name: String
        public var weights: String
        public var weightBytes: Int
        public var tokensPerSecond: Double
    }

    /// Peak sgemm throughput on a square 1024 problem (the baseline every training row is compared to).
    public static func sgemmPeak() -> Double {
        let n = 1024
        let a = Arena(count: n * n), b = Arena(count: n * n), c = Arena(count: n * n)
        var rng = SplitMix64(seed: 1)
        for i in 0..<(n * n) { a.base[i] = rng.nextFloat(); b.base[i] = rng.nextFloat() }
        func run() {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(n), Int32(n), 1, a.base, Int32(n), b.base, Int32(n), 0, c.base, Int32(n))
        }
        run()
        var best = 0.0
        for _ in 0..<5 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<4 { run() }
            let s = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            best = max(best, 4 * 2 * Double(n * n * n) / s / 1e9)
        }
        return best
    }

    /// FLOPs per token of one LoRA training step: forward and input-gradient backward through every matrix
    /// (2 + 2 per weight) and the attention products (forward 2·2·T·qDim, backward twice that) per layer.
    public static func loraStepFLOPsPerToken(_ c: ModelConfig, T: Int) -> Double {
        let L = Double(c.layers), C = Double(c.width)
        let weights = L * (C * Double(c.qkvDim) + Double(c.qDim) * C + C * Double(c.mlpInDim) + Double(c.mlpWidth) * C)
            + Double(c.vocabSize) * C
        let attention = 2 * 2 * Double(T) * Double(c.qDim) * L
        return 4 * weights + 3 * attention
    }

    /// Times `steps` LoRA steps (after one warm-up) of `c` on `model` (its base fp32 or quantized).
    public static func train(_ c: TrainCase, model: LanguageModel, steps: Int) throws(EngineError) -> TrainResult {
        try model.attachLoRA(LoRAConfig(rank: 8, alpha: 16, targets: c.targets), seed: 1)
        let trainer = try Trainer(model: model, trainable: .adapter, batch: c.batch, sequence: c.sequence, schedule: .constant(1e-4))
        let tokens = (0..<(c.batch * c.sequence * 4)).map { Int32($0 * 7919 % c.config.vocabSize) }
        let rate = try tokensPerSecond(trainer: trainer, tokens: tokens, steps: steps)
        model.detachLoRA()
        return TrainResult(name: c.name, weights: model.quantization.map { "\($0)" } ?? "fp32", parameters: model.parameterCount,
                           weightBytes: model.weightBytes, tokensPerSecond: rate,
                           gflops: loraStepFLOPsPerToken(c.config, T: c.sequence) * rate / 1e9, fullTokensPerSecond: nil)
    }

    /// Full fine-tuning tokens/s (all base weights) on an fp32 model.
    public static func trainFull(_ c: TrainCase, model: LanguageModel, steps: Int) throws(EngineError) -> Double {
        let trainer = try Trainer(model: model, trainable: .base, batch: c.batch, sequence: c.sequence, schedule: .constant(1e-4))
        let tokens = (0..<(c.batch * c.sequence * 4)).map { Int32($0 * 7919 % c.config.vocabSize) }
        let rate = try tokensPerSecond(trainer: trainer, tokens: tokens, steps: steps)
        model.baseGrads = nil
        model.acts = nil
        return rate
    }

    /// Greedy generation tokens/s (prompt processing included, as llama.cpp's generate measures it), best of `repeats`.
    public static func generate(_ c: GenerateCase, model: LanguageModel, repeats: Int = 3) throws(EngineError) -> GenerateResult {
        let prompt = (0..<c.prompt).map { Int32($0 * 7919 % c.config.vocabSize) }
        var best = 0.0
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let out = try model.generate(prompt: prompt, maxNewTokens: c.newTokens, sampling: .greedy)
            best = max(best, Double(out.count) / (Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9))
        }
        return GenerateResult(name: c.name, weights: model.quantization.map { "\($0)" } ?? "fp32", weightBytes: model.weightBytes,
                              tokensPerSecond: best)
    }

    static func tokensPerSecond(trainer: Trainer, tokens: [Int32], steps: Int) throws(EngineError) -> Double {
        var rng = SplitMix64(seed: 1)
        _ = try trainer.step(tokens: tokens, rng: &rng)  // warm-up
        let t0 = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<steps { _ = try trainer.step(tokens: tokens, rng: &rng) }
        let s = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        return Double(steps * trainer.batch * trainer.sequence) / s
    }
}
