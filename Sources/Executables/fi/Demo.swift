import ArgumentParser
import Bus
import Engine
import FederatedRun
import Foundation
import InferenceRouter
import Messages

/// `fi demo llama-7b`: a LLaMA-7B-shaped model at the edge. Makes the checkpoint once (32 layers, d = 4096, 32 heads,
/// MLP 11,008, vocabulary 32,000; seeded random weights written straight to 4-bit), starts three stage nodes
/// (device, edge, cloud: each may hold about a third of the blocks) and the inference router as processes on loopback,
/// streams a greedy generation through the router, and reports tokens/s, time per stage and each node's peak
/// resident memory (VmHWM).
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "End-to-end demonstrations.", subcommands: [Llama7B.self])
}

struct Llama7B: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "llama-7b",
        abstract: "A LLaMA-7B-shaped 4-bit checkpoint split over device, edge and cloud stage nodes, generation streamed through the router.")

    @Option(help: "Working folder (the checkpoint goes to <out>/model and is reused).") var out: String
    @Option(help: "Model shape preset (llama-7b; a smaller one such as llama-small checks the wiring quickly).") var preset: String = "llama-7b"
    @Option(help: "Override the preset's number of blocks (quick checks of the three-node wiring).") var layers: Int?
    @Option(help: "Weight bits: 4 (group-wise) or 8 (per channel).") var bits: Int = 4
    @Option(help: "4-bit group size: 32 or 64.") var group: Int = 32
    @Option(help: "Seed of the random weights.") var seed: UInt64 = 7
    @Option(help: "Prompt text (byte tokens).") var prompt: String = "Federated intelligence at the edge"
    @Option(help: "New tokens.") var maxTokens: Int = 16
    @Option(help: "Blocks each stage node may hold.") var maxLayers: Int = 11
    @Option(help: "OpenBLAS threads per stage node.") var threads: Int = 2
    @Option(help: "Seconds to wait for each token.") var timeout: Int = 300
    @Option(name: .customLong("bin-dir"), help: "Where stage-node and inference-router are (default: next to fi).") var binDir: String?

    func run() throws {
        let format: QuantFormat
        switch bits {
        case 8: format = .int8
        case 4:
            guard group == 32 || group == 64 else { throw ValidationError("--group must be 32 or 64, not \(group)") }
            format = .q4(group: group)
        default: throw ValidationError("--bits must be 8 or 4, not \(bits)")
        }
        guard maxTokens > 0, maxLayers > 0, threads > 0 else { throw ValidationError("--max-tokens, --max-layers and --threads must be positive") }
        guard var shape = ModelConfig.preset(named: preset), shape.architecture == .llama else {
            throw ValidationError("--preset must name a Llama-family preset (llama-7b, smollm-135m, llama-small), not '\(preset)'")
        }
        if let layers {
            guard layers > 0 else { throw ValidationError("--layers must be positive") }
            shape.layers = layers
        }
        guard 3 * maxLayers >= shape.layers else {
            throw ValidationError("three nodes of --max-layers \(maxLayers) cannot hold \(shape.layers) blocks")
        }
        let model = URL(fileURLWithPath: out).appendingPathComponent("model")
        let existing = try? LanguageModel.loadConfig(model)
        if existing != shape || (try? LanguageModel.quantizationFormat(model)) != format {
            print("writing a \(preset)-shaped \(format) checkpoint with seeded random weights to \(model.path) …")
            let t0 = Date()
            try LanguageModel.writeRandomQuantized(config: shape, format: format, seed: seed, directory: model) { name in
                FileHandle.standardOutput.write(Data("  \(name)\r".utf8))
            }
            print(String(format: "\nwrote %.2f GiB in %.0f s", Double(Self.folderBytes(model)) / 1073741824, Date().timeIntervalSince(t0)))
        }
        let bin = binDir.map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let ports = try FederatedRun.freePorts(4)
        let router = "tcp://127.0.0.1:\(ports[0])"
        // CURVE on every tcp socket, as in every deployment: fresh keys for the router, the nodes and this client.
        let keys = try CurveDeployment.create(in: URL(fileURLWithPath: out).appendingPathComponent("keys"), clients: ["fi-demo"])
        try BusContext.shared.secure(keys.security(as: "fi-demo"))
        var children = ChildProcesses()
        defer { children.killAll() }
        try children.spawn("inference-router", bin, ["--bind", router, "--model", model.path, "--heartbeat-ms", "500",
                                                     "--liveness", "20", "--step-timeout-ms", "\(timeout * 1000)"] + keys.serviceArguments)
        var nodes: [(String, Process)] = []
        for (i, (id, role, flops)) in [("device", "device", 2e10), ("edge", "edge", 5e10), ("cloud", "cloud", 1e11)].enumerated() {
            let p = try children.spawn("stage-node", bin, ["--id", id, "--role", role, "--bind", "tcp://127.0.0.1:\(ports[i + 1])",
                                                           "--router", router, "--model", model.path, "--flops", "\(flops)",
                                                           "--max-layers", "\(maxLayers)", "--heartbeat-ms", "500"] + keys.serviceArguments,
                                           threads: threads)
            nodes.append((id, p))
        }
        let client = try InferenceClient(router: router, id: "fi-demo-\(ProcessInfo.processInfo.processIdentifier)")
        defer { client.close() }
        Thread.sleep(forTimeInterval: 3)  // registrations and first heartbeats
        let request = InferenceRequest(requestId: UUID().uuidString, deviceId: "device", promptText: prompt, maxTokens: UInt32(maxTokens),
                                       sampling: Sampling(temperature: 0, topK: 0, seed: seed))
        let result = try Self.stream(client, request, timeout: timeout)
        print(String(format: "\nplan %@: %d tokens in %.1f s (first token %.1f s, then %.2f tokens/s)", result.plan, result.tokens,
                     result.total, result.first, Double(result.tokens - 1) / max(result.total - result.first, 1e-9)))
        for (i, s) in result.stageSeconds.enumerated() { print(String(format: "  stage %d: %.1f s", i, s)) }
        for (id, p) in nodes {
            let mem = ProcessMemory.resident(pid: p.processIdentifier)
            print(String(format: "  %@: peak resident %.2f GiB (now %.2f GiB)", id, Double(mem?.peak ?? 0) / 1073741824,
                         Double(mem?.current ?? 0) / 1073741824))
        }
    }

    struct Streamed { var plan = ""; var tokens = 0; var first = 0.0; var total = 0.0; var stageSeconds: [Double] = [] }

    /// Blocks until the generation ends, printing tokens as they come.
    static func stream(_ client: InferenceClient, _ request: InferenceRequest, timeout: Int) throws -> Streamed {
        let box = ResultBox()
        let done = DispatchSemaphore(value: 0)
        Task {
            let start = Date()
            var s = Streamed()
            do {
                for try await t in client.generate(request, timeout: .seconds(timeout)) {
                    if s.tokens == 0 { s.first = Date().timeIntervalSince(start) }
                    s.tokens += 1
                    s.plan = t.plan
                    FileHandle.standardOutput.write(Data("token \(s.tokens): \(t.token)\(s.tokens % 8 == 0 ? "\n" : "  ")".utf8))
                    if s.stageSeconds.count < t.stageSeconds.count { s.stageSeconds += [Double](repeating: 0, count: t.stageSeconds.count - s.stageSeconds.count) }
                    for (i, x) in t.stageSeconds.enumerated() { s.stageSeconds[i] += x }
                }
                s.total = Date().timeIntervalSince(start)
                box.set(.success(s))
            } catch { box.set(.failure(error)) }
            done.signal()
        }
        done.wait()
        return try box.get()
    }

    static func folderBytes(_ url: URL) -> Int {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        return names.reduce(0) { $0 + ((try? FileManager.default.attributesOfItem(atPath: url.appendingPathComponent($1).path)[.size] as? Int) ?? 0) }
    }
}

/// The streamed result handed from the async task to the waiting command.
private final class ResultBox: @unchecked Sendable {  // set once before the semaphore signals, read after it
    private var value: Result<Llama7B.Streamed, Error>?
    private let lock = NSLock()
    func set(_ v: Result<Llama7B.Streamed, Error>) { lock.lock(); value = v; lock.unlock() }
    func get() throws -> Llama7B.Streamed { lock.lock(); defer { lock.unlock() }; return try value!.get() }
}
