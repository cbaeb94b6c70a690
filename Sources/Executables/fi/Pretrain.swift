import ArgumentParser
import Engine
import Foundation
import Data
import Reports

/// `fi pretrain`: trains a byte-level base model from scratch (all weights) and saves it in HF layout.
struct Pretrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pretrain a small byte-level GPT-2 on text files and save config.json + model.safetensors.")

    @Option(help: "Comma-separated text files (default: the built-in general corpus, held apart from every domain's device and test text).") var text: String?
    @Option(help: "Comma-separated built-in domains whose general and device (never test) text is the corpus, plus the license texts. A base that has never seen the domains it is fine-tuned on (default: the general slice of every domain).") var domains: String?
    @Option(help: "Output model folder.") var out: String
    @Option(help: "Model preset: tiny, small (4L×256, ctx 128), medium (6L×384, ctx 256), gpt2.") var preset = "small"
    @Option(help: "Optimisation steps.") var steps = 1500
    @Option(help: "Sequences per batch.") var batch = 8
    @Option(help: "Sequence length (default: the preset's context).") var seq: Int?
    @Option(help: "Peak learning rate (warmup then cosine decay to 10%).") var lr: Float = 3e-3
    @Option(help: "Random seed for init and batch sampling.") var seed: UInt64 = 1

    func run() throws {
        guard let config = ModelConfig.preset(named: preset) else {
            throw ValidationError("unknown preset '\(preset)'; use tiny, small, medium or gpt2")
        }
        guard steps > 0, batch > 0 else { throw ValidationError("--steps and --batch must be positive") }
        if self.text != nil, domains != nil { throw ValidationError("--text and --domains are exclusive") }
        let text = try self.text.map { try ModelFolder.readText($0.split(separator: ",").map(String.init)) }
            ?? Self.generalCorpus(seed: seed, domains: domains.map { $0.split(separator: ",").map(String.init) })
        let all = text.utf8.map { Int32($0) }
        let T = seq ?? config.contextLength
        let split = all.count - max(all.count / 20, T + 1)  // last 5% held out
        guard split > T + 1 else { throw ValidationError("text is too short: \(all.count) bytes for sequence \(T)") }
        let train = Array(all[..<split]), heldOut = Array(all[split...])
        let model = try LanguageModel(config: config, seed: seed)
        let trainer = try Trainer(model: model, trainable: .base, batch: batch, sequence: T,
                                  schedule: LRSchedule(maxLR: lr, warmupSteps: max(steps / 20, 1), totalSteps: steps),
                                  optimizer: AdamWConfig(weightDecay: 0.1))
        var rng = SplitMix64(seed: seed &+ 1)
        let start = Date()
        var recent: Float = 0
        // A redrawn bar with ETA on a terminal; a line every 10% in logs.
        let bar = ProgressBar(total: steps, label: "pretrain")
        for s in 1...steps {
            recent = try trainer.step(tokens: train, rng: &rng)
            let rate = Double(s * batch * T) / max(Date().timeIntervalSince(start), 1e-9)
            bar.set(completed: s, status: String(format: "loss %.4f lr %.2e %.0f tok/s", recent, trainer.schedule.rate(at: s - 1), rate))
        }
        bar.finish()
        let elapsed = Date().timeIntervalSince(start)
        let val = try model.evaluate(tokens: heldOut)
        try model.save(directory: URL(fileURLWithPath: out))
        print(String(format: #"{"preset": "%@", "parameters": %d, "steps": %d, "train_loss": %.4f, "heldout_loss": %.4f, "heldout_tokens": %d, "tokens_per_second": %.0f, "seconds": %.1f}"#,
                     preset, config.parameterCount, steps, recent, val.loss, val.tokens, Double(steps * batch * T) / elapsed, elapsed))
    }

    /// The general (pretraining) slice of the built-in corpus, chunks shuffled so the held-out tail is a mix.
    /// With `domains`, every non-test chunk of just those domains: test chunks never reach a base model.
    static func generalCorpus(seed: UInt64, domains: [String]? = nil) throws -> String {
        var corpus = try Corpus.builtin()
        if let domains { corpus = try corpus.selecting(domains: domains) }
        let chunked = try ChunkedCorpus(corpus: corpus)
        var ids = chunked.generalExtra + chunked.domains.flatMap { domains == nil ? $0.general : $0.general + $0.pool }
        var rng = SplitMix64(seed: seed)
        ids.shuffle(using: &rng)
        let text = ids.map { chunked.chunks[$0].text }.joined(separator: "\n\n")
        FileHandle.standardError.write(Data("pretrain: built-in general corpus, \(ids.count) chunks, \(text.utf8.count / 1024) KB\n".utf8))
        return text
    }
}
