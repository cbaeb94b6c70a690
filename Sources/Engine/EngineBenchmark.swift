import COpenBLAS
import Foundation

/// `fi bench engine`: LoRA fine-tuning and generation throughput at three sizes, with achieved GFLOP/s
/// as a fraction of the cblas_sgemm peak measured in the same run.
public enum EngineBenchmark {
    public struct Row: Sendable {
        public var name: String
        public var parameters: Int
        public var trainTokensPerSecond: Double
        public var trainGFLOPs: Double
        public var fullTrainTokensPerSecond: Double?
        public var generateTokensPerSecond: Double
    }

    public struct Report: Sendable {
        public var sgemmPeakGFLOPs: Double
        public var rows: [Row]
    }

    /// Peak sgemm throughput on a square 1024 problem (the baseline every row is compared to).
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

    /// FLOPs of one LoRA training step (forward + input-gradient backward, no base weight gradients).
    public static func loraStepFLOPs(_ c: ModelConfig, B: Int, T: Int) -> Double {
        let N = Double(B * T), C = Double(c.width), L = Double(c.layers), V = Double(c.vocabSize)
        let matmul = 2 * N * (L * 12 * C * C + V * C)
        let attention = 2 * 2 * N * Double(T) * C * L  // QKᵀ and AV over full T×T tiles
        return matmul * 2 + attention * 3
    }

    /// Runs the benchmark; `log` receives progress lines.
    public static func run(steps: Int = 0, only: Set<String>? = nil, log: (String) -> Void = { _ in }) throws(EngineError) -> Report {
        BLASThreads.configure()
        let peak = sgemmPeak()
        log(String(format: "cblas_sgemm peak: %.1f GFLOP/s (%d OpenBLAS threads)", peak, BLASThreads.count))
        var rows: [Row] = []
        let configs: [(String, ModelConfig, Int, Bool)] = [
            ("tiny", ModelConfig(vocabSize: 256, contextLength: 128, layers: 2, heads: 2, width: 32), 30, false),
            ("small (4L×256, byte)", .small, 10, true),
            ("gpt2-small (124M)", .gpt2Small, 3, false),
        ]
        for (name, config, defaultSteps, full) in configs where only?.contains(where: { name.hasPrefix($0) }) ?? true {
            let n = steps > 0 ? steps : defaultSteps
            let B = 4, T = min(128, config.contextLength)
            let model = try LanguageModel(config: config, seed: 1)
            let tokens = (0..<(B * T * 4)).map { Int32($0 * 7919 % config.vocabSize) }
            var fullRate: Double?
            if full {
                let trainer = try Trainer(model: model, trainable: .base, batch: B, sequence: T, schedule: .constant(1e-4))
                fullRate = try tokensPerSecond(trainer: trainer, tokens: tokens, steps: n)
                model.baseGrads = nil
            }
            try model.attachLoRA(LoRAConfig(rank: 8, alpha: 16, targets: [.attnQKV, .attnProj]), seed: 1)
            let trainer = try Trainer(model: model, trainable: .adapter, batch: B, sequence: T, schedule: .constant(1e-4))
            let rate = try tokensPerSecond(trainer: trainer, tokens: tokens, steps: n)
            let gflops = loraStepFLOPs(config, B: B, T: T) / Double(B * T) * rate / 1e9
            model.acts = nil
            let genTokens = config.layers > 6 ? 32 : 64
            let t0 = DispatchTime.now().uptimeNanoseconds
            let out = try model.generate(prompt: Array(tokens.prefix(16)), maxNewTokens: genTokens, sampling: .greedy)
            let genRate = Double(out.count) / (Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            let row = Row(name: name, parameters: config.parameterCount, trainTokensPerSecond: rate, trainGFLOPs: gflops,
                          fullTrainTokensPerSecond: fullRate, generateTokensPerSecond: genRate)
            log(format(row, peak: peak))
            rows.append(row)
        }
        // The machine is shared: measure the peak again and keep the better one, so ratios are not flattered.
        let peak2 = max(peak, sgemmPeak())
        log(String(format: "cblas_sgemm peak after the run: %.1f GFLOP/s; fractions against max %.1f:", peak2, peak2))
        for r in rows { log(String(format: "  %@: %.0f%% of sgemm peak", r.name, 100 * r.trainGFLOPs / peak2)) }
        return Report(sgemmPeakGFLOPs: peak2, rows: rows)
    }

    static func tokensPerSecond(trainer: Trainer, tokens: [Int32], steps: Int) throws(EngineError) -> Double {
        var rng = SplitMix64(seed: 1)
        _ = try trainer.step(tokens: tokens, rng: &rng)  // warm-up
        let t0 = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<steps { _ = try trainer.step(tokens: tokens, rng: &rng) }
        let s = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        return Double(steps * trainer.batch * trainer.sequence) / s
    }

    public static func format(_ r: Row, peak: Double) -> String {
        var s = String(format: "%@ [%.2fM params]: LoRA r=8 train %.0f tok/s (%.1f GFLOP/s, %.0f%% of sgemm peak)",
                       r.name, Double(r.parameters) / 1e6, r.trainTokensPerSecond, r.trainGFLOPs, 100 * r.trainGFLOPs / peak)
        if let f = r.fullTrainTokensPerSecond { s += String(format: ", full train %.0f tok/s", f) }
        s += String(format: ", generate %.1f tok/s", r.generateTokensPerSecond)
        return s
    }
}
