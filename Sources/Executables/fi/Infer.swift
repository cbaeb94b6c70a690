import ArgumentParser
import Config
import Foundation
import InferenceRouter
import Messages

/// `fi infer`: one prompt through the inference router; tokens stream out, then the plan and stage times.
struct Infer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate through the inference router (split inference).")

    @Option(help: "Inference router endpoint.") var router: String
    @Option(help: "Requesting device id (a registered device node, or a known device).") var device: String
    @Option(help: "Prompt text.") var prompt: String
    @Option(help: "New tokens.") var maxTokens: Int = 32
    @Option(help: "Sampling temperature (0 = greedy).") var temperature: Float = 0
    @Option(help: "Top-k (0 = all).") var topK: Int = 0
    @Option(help: "Sampling seed.") var seed: UInt64 = 0
    @Option(help: "Seconds to wait for the first token.") var timeout: Int = 30
    @OptionGroup var curve: CurveOptions

    func run() async throws {
        guard maxTokens > 0 else { throw ValidationError("--max-tokens must be positive") }
        guard topK >= 0, temperature >= 0 else { throw ValidationError("--top-k and --temperature must not be negative") }
        try curve.apply()
        let client = try InferenceClient(router: router, id: "fi-infer-\(ProcessInfo.processInfo.processIdentifier)")
        defer { client.close() }
        let request = InferenceRequest(requestId: UUID().uuidString, deviceId: device, promptText: prompt, maxTokens: UInt32(maxTokens),
                                       sampling: Sampling(temperature: temperature, topK: UInt32(topK), seed: seed))
        let start = Date()
        var firstToken: Double?
        var stageTotals: [Double] = []
        var plan = "", summary = "", expected = 0.0, count = 0
        for try await t in client.generate(request, timeout: .seconds(timeout)) {
            if firstToken == nil { firstToken = Date().timeIntervalSince(start) }
            FileHandle.standardOutput.write(Data(t.text.utf8))
            plan = t.plan
            summary = t.planSummary
            expected = t.expectedS
            count += 1
            if stageTotals.count < t.stageSeconds.count { stageTotals += [Double](repeating: 0, count: t.stageSeconds.count - stageTotals.count) }
            for (i, s) in t.stageSeconds.enumerated() { stageTotals[i] += s }
        }
        let total = Date().timeIntervalSince(start)
        print("\n---")
        print(String(format: "plan %@, %d tokens in %.3f s (first token %.3f s, %.1f tokens/s)", plan, count, total, firstToken ?? 0,
                     Double(count) / max(total, 1e-9)))
        print(String(format: "  %@, planner's estimate %.3f s", summary, expected))
        // Per-stage times exist only when the router saw every hop (hub forwarding).
        for (i, s) in stageTotals.enumerated() { print(String(format: "  stage %d: %.3f s", i, s)) }
    }
}
