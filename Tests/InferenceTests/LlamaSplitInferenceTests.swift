import Engine
import InferenceRouter
import Messages
import Stage
import XCTest

/// Split inference of a Llama-family model (GQA with more query heads than key/value heads, RoPE, SwiGLU) through
/// the router and stage nodes: every plan kind, including multi-access head/column shares, gives the tokens of one
/// node's generate.
final class LlamaSplitInferenceTests: XCTestCase {
    static let config = ModelConfig.llama(vocabSize: 256, contextLength: 32, layers: 4, heads: 4, kvHeads: 2, width: 32,
                                          mlpWidth: 48, rope: RoPEConfig(theta: 10000))

    func testEveryPlanKindGivesTheSingleNodeTokensForALlama() async throws {
        let d = try Deployment(nodes: [("d0", .device, 1e6), ("d1", .device, 4e7), ("d2", .device, 1e6), ("e0", .edge, 2e6),
                                       ("e1", .edge, 2e6), ("c0", .cloud, 1e9)], config: Self.config)
        defer { d.stop() }
        try await d.waitForNodes(6)
        let prompt = Array("the quick brown".utf8).map { UInt32($0) }
        let model = try LanguageModel(config: Self.config, seed: Deployment.seed)
        let expected = try model.generate(prompt: prompt.map { Int32($0) }, maxNewTokens: 6, sampling: .greedy).map { UInt32($0) }
        for kind in Deployment.planOrder {
            let req = InferenceRequest(requestId: "llama-\(kind.rawValue)", deviceId: "d0", prompt: prompt, maxTokens: 6,
                                       sampling: Messages.Sampling(temperature: 0, topK: 0, seed: 1))
            let (tokens, results) = await d.run(req, kind: kind)
            XCTAssertEqual(tokens, expected, "plan \(kind.rawValue)")
            XCTAssertEqual(results.first?.plan, kind.rawValue)
        }
    }
}
