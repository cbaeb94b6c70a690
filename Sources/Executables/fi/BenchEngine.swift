import ArgumentParser
import Engine
import Foundation

/// `fi bench engine`: training and generation throughput, each row against a baseline measured in the same run:
/// the cblas_sgemm peak, PyTorch (transformers + PEFT, same shape, batch, sequence, targets, rank and threads) and
/// llama.cpp (llama-cpp-python: F32 / Q8_0 / Q4_0 of the same GPT-2-small shape, same prompt, new tokens, threads).
/// Peers run from the benchmark venv (scripts/bench-venv); without it their columns say so.
struct BenchEngine: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "LoRA fine-tuning and generation tokens/s (GPT-2 and Llama shapes, fp32/int8/4-bit) vs PyTorch, llama.cpp and the sgemm peak.")

    @Option(help: "Timed training steps per config (0 = each config's default).")
    var steps = 0

    @Option(help: "Comma-separated case names (tiny, small, llama-small, smollm-135m, gpt2-small); default all.")
    var only: String?

    @Flag(help: "Skip training rows.") var noTrain = false
    @Flag(help: "Skip generation rows.") var noGenerate = false
    @Flag(help: "Skip the PyTorch and llama.cpp baselines.") var noPeers = false
    @Option(help: "Python of the benchmark venv.") var python = ".venv-bench/bin/python"
    @Option(help: "Write every row as JSON to this file.") var json: String?

    func run() throws {
        BLASThreads.configure()
        let threads = BLASThreads.count
        let names = only.map { Set($0.split(separator: ",").map(String.init)) }
        func wanted(_ n: String) -> Bool { names?.contains(n) ?? true }
        var rows: [[String: Any]] = []
        let peak = EngineBenchmark.sgemmPeak()
        print(String(format: "cblas_sgemm peak: %.1f GFLOP/s (%d threads)", peak, threads))
        let peers = noPeers ? nil : Peers(python: python, threads: threads)
        if let p = peers, !p.available { print("peer baselines unavailable (\(p.python) missing): run scripts/bench-venv") }

        if !noTrain {
            for c in EngineBenchmark.trainCases where wanted(c.name) {
                let n = steps > 0 ? steps : c.steps
                let fp32 = try LanguageModel(config: c.config, seed: 1)
                var results = [try EngineBenchmark.train(c, model: fp32, steps: n)]
                if c.full { results[0].fullTokensPerSecond = try EngineBenchmark.trainFull(c, model: fp32, steps: n) }
                for f in c.quantized { results.append(try EngineBenchmark.train(c, model: try fp32.quantized(f), steps: n)) }
                let torch = peers?.torchLoRA(c, steps: n)
                for r in results {
                    var line = String(format: "train %@ [%@] %.1fM params, weights %.1f MiB (%.3f× fp32): LoRA r=8 B=%d T=%d %.0f tok/s (%.1f GFLOP/s, %.0f%% of sgemm peak)",
                                      r.name, r.weights, Double(r.parameters) / 1e6, Double(r.weightBytes) / 1048576,
                                      Double(r.weightBytes) / Double(4 * r.parameters), c.batch, c.sequence, r.tokensPerSecond, r.gflops,
                                      100 * r.gflops / peak)
                    if let f = r.fullTokensPerSecond { line += String(format: ", full fine-tuning %.0f tok/s", f) }
                    if let t = torch { line += String(format: "; PyTorch %.0f tok/s → %.2f×", t, r.tokensPerSecond / t) }
                    print(line)
                    rows.append(["kind": "train", "case": r.name, "weights": r.weights, "tokens_per_second": r.tokensPerSecond,
                                 "weight_bytes": r.weightBytes, "fp32_weight_bytes": 4 * r.parameters, "batch": c.batch, "sequence": c.sequence,
                                 "torch_tokens_per_second": torch ?? NSNull(), "full_tokens_per_second": r.fullTokensPerSecond ?? NSNull()])
                }
            }
        }
        if !noGenerate {
            for c in EngineBenchmark.generateCases where wanted(c.name) {
                let fp32 = try LanguageModel(config: c.config, seed: 1)
                for f in c.formats {
                    let model = try f.map { try fp32.quantized($0) } ?? fp32
                    let r = try EngineBenchmark.generate(c, model: model)
                    let peerQuant: String? = c.name == "gpt2-small" ? ["fp32": "f32", "int8": "q8_0", "q4": "q4_0"][f.map { $0 == .int8 ? "int8" : "q4" } ?? "fp32"] : nil
                    let peer = peerQuant.flatMap { peers?.llamaCpp(quant: $0, prompt: c.prompt, newTokens: c.newTokens) }
                    var line = String(format: "generate %@ [%@] weights %.1f MiB: prompt %d + %d new, greedy, %d threads: %.1f tok/s",
                                      r.name, r.weights, Double(r.weightBytes) / 1048576, c.prompt, c.newTokens, threads, r.tokensPerSecond)
                    if let p = peer, let q = peerQuant { line += String(format: "; llama.cpp %@ %.1f tok/s → %.2f×", q.uppercased(), p, r.tokensPerSecond / p) }
                    print(line)
                    rows.append(["kind": "generate", "case": r.name, "weights": r.weights, "tokens_per_second": r.tokensPerSecond,
                                 "weight_bytes": r.weightBytes, "llamacpp_quant": peerQuant ?? NSNull(), "llamacpp_tokens_per_second": peer ?? NSNull()])
                }
            }
        }
        let peak2 = max(peak, EngineBenchmark.sgemmPeak())  // the machine is shared: keep the better peak
        print(String(format: "cblas_sgemm peak after the run: %.1f GFLOP/s", peak2))
        if let json {
            let data = try JSONSerialization.data(withJSONObject: ["sgemm_peak_gflops": peak2, "threads": threads, "rows": rows],
                                                  options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: json))
        }
    }
}

/// Runs scripts/bench_engine_peers.py in the benchmark venv; a failed baseline prints why and gives nil.
struct Peers {
    let python: String
    let threads: Int
    var available: Bool { FileManager.default.isExecutableFile(atPath: python) }

    func torchLoRA(_ c: EngineBenchmark.TrainCase, steps: Int) -> Double? {
        let m = c.config
        let shape: [String: Any] = ["architecture": m.architecture.rawValue, "vocab": m.vocabSize, "context": m.contextLength,
                                    "width": m.width, "layers": m.layers, "heads": m.heads, "kv_heads": m.kvHeads,
                                    "mlp": m.mlpWidth, "tied": m.tiedEmbeddings]
        let targets = c.targets.map { t -> String in
            switch t {
            case .attnQKV: return "c_attn"
            case .attnProj, .mlpFC, .mlpProj: return t.rawValue
            default: return String(t.rawValue.split(separator: ".").last!)
            }
        }
        guard let data = try? JSONSerialization.data(withJSONObject: shape) else { return nil }
        return run(["torch-lora", "--shape", String(decoding: data, as: UTF8.self), "--batch", "\(c.batch)", "--seq", "\(c.sequence)",
                    "--steps", "\(steps)", "--rank", "8", "--targets", targets.joined(separator: ","), "--threads", "\(threads)"])
    }

    func llamaCpp(quant: String, prompt: Int, newTokens: Int) -> Double? {
        run(["llamacpp-generate", "--quant", quant, "--prompt", "\(prompt)", "--new", "\(newTokens)", "--threads", "\(threads)"])
    }

    private func run(_ args: [String]) -> Double? {
        guard available else { return nil }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = ["scripts/bench_engine_peers.py"] + args
        // OpenMP threads that spin while they wait collapse on a shared host (PyTorch: 213 tok/s on 2 threads vs 1,433
        // on 1, back to back), which would flatter our ratios; passive waiting measures their compute.
        var env = ProcessInfo.processInfo.environment
        env["OMP_WAIT_POLICY"] = "PASSIVE"
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        do { try p.run() } catch { print("peer \(args[0]) failed to start: \(error)"); return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0,
              let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let rate = obj["tokens_per_second"] as? Double else {
            print("peer \(args[0]) failed (status \(p.terminationStatus)): \(String(decoding: errData.suffix(400), as: UTF8.self))")
            return nil
        }
        return rate
    }
}
