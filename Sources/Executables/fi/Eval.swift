import ArgumentParser
import Engine
import Foundation

/// `fi eval`: mean next-token cross-entropy of a model (and adapter) over a text file, as JSON.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mean next-token cross-entropy over a text file in non-overlapping context windows (JSON on stdout).")

    @Option(help: "Model folder (config.json + model.safetensors).") var model: String
    @Option(help: "PEFT LoRA adapter folder to apply.") var adapter: String?
    @Option(help: "Text file to score.") var text: String

    func run() throws {
        let dir = URL(fileURLWithPath: model)
        let tokenizer = try ModelFolder.tokenizer(for: dir)
        let gpt = try LanguageModel.load(directory: dir)
        if let adapter {
            try gpt.setAdapter(try LoRAAdapter.load(directory: URL(fileURLWithPath: adapter), model: gpt.config),
                               source: adapter)
        }
        let tokens = tokenizer.encode(try ModelFolder.readText([text]))
        let result = try gpt.evaluate(tokens: tokens)
        let mem = ProcessMemory.resident()
        // weight_bytes: the base as held (fp32, or quantized codes + scales); fp32_weight_bytes: the same model in fp32.
        print(String(format: #"{"loss": %.6f, "perplexity": %.4f, "tokens": %d, "context": %d, "weights": "%@", "weight_bytes": %d, "fp32_weight_bytes": %d, "resident_bytes": %d, "peak_resident_bytes": %d}"#,
                     result.loss, exp(Double(result.loss)), result.tokens, gpt.config.contextLength,
                     gpt.quantization.map { "\($0)" } ?? "fp32", gpt.weightBytes, 4 * gpt.parameterCount, mem?.current ?? 0, mem?.peak ?? 0))
    }
}
