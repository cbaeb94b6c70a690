import ArgumentParser
import Engine
import Foundation

/// `fi quantize`: a model folder with its frozen matrices in int8 (per output channel) or 4-bit (groups of 32/64).
struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Quantize a model folder's weights: int8 per output channel or 4-bit group-wise (norms and biases stay fp32).")

    @Option(help: "Model folder (config.json + safetensors, fp32/fp16/bf16).") var model: String
    @Option(help: "8 (int8 per output channel) or 4 (4-bit groups).") var bits: Int
    @Option(help: "4-bit group size: 32 or 64.") var group: Int = 32
    @Option(help: "Output folder.") var out: String
    @Option(help: "Largest shard in MiB (a model.safetensors.index.json when there are several).") var shardMiB: Int = 2048

    func run() throws {
        let format: QuantFormat
        switch bits {
        case 8: format = .int8
        case 4:
            guard group == 32 || group == 64 else { throw ValidationError("--group must be 32 or 64, not \(group)") }
            format = .q4(group: group)
        default: throw ValidationError("--bits must be 8 or 4, not \(bits)")
        }
        guard shardMiB > 0 else { throw ValidationError("--shard-mib must be positive") }
        let src = URL(fileURLWithPath: model), dst = URL(fileURLWithPath: out)
        guard src.standardizedFileURL != dst.standardizedFileURL else { throw ValidationError("--out must differ from --model") }
        let fp32 = try LanguageModel.load(directory: src)
        let q = try fp32.quantized(format)
        try q.save(directory: dst, shardBytes: shardMiB << 20)
        for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt"] {
            let f = src.appendingPathComponent(name), g = dst.appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: f.path) {
                try? FileManager.default.removeItem(at: g)
                try FileManager.default.copyItem(at: f, to: g)
            }
        }
        print(String(format: "quantized %@ (%@): weights %.1f MiB → %.1f MiB (%.3f× fp32) in %@", model, "\(format)",
                     Double(fp32.weightBytes) / 1048576, Double(q.weightBytes) / 1048576, Double(q.weightBytes) / Double(fp32.weightBytes), out))
    }
}
