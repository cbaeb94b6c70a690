import Engine
import InferenceRouter
import Messages
import Stage
import XCTest

/// Hand-computed scenarios: one forward pass (prompt 1 token, 1 new token), no header bytes, no overhead.
final class PlannerTests: XCTestCase {
    // C = 4, heads 2, 2 blocks, V = 2: block(1,1) = 24·16 + 4·4 = 400, head = 2·4·2 = 16, embed = 4.
    let config = ModelConfig(vocabSize: 2, contextLength: 16, layers: 2, heads: 2, width: 4)
    var planner: Planner { Planner(cost: ComputeCost(config: config, headerBytes: 0), stageOverheadSeconds: 0) }
    let request = PlanRequest(device: "d", promptTokens: 1, newTokens: 1)

    func testSlowDevicePicksCloudAcrossSlowLink() {
        let view = NetworkView(nodes: [NodeState(id: "d", role: .device, flops: 100), NodeState(id: "c", role: .cloud, flops: 1e6)],
                               links: ["d->c": LinkProfile(rateBps: .infinity, latencySeconds: 1), "c->d": LinkProfile(rateBps: .infinity, latencySeconds: 1)])
        let plans = planner.candidates(view, request)
        // local: (4 + 800 + 16) / 100 = 8.2 s; cloud: 1 + 820/1e6 + 1 s.
        XCTAssertEqual(plans.first { $0.kind == .local }?.expectedSeconds ?? 0, 8.2, accuracy: 1e-9)
        XCTAssertEqual(plans.first?.kind, .cloud)
        XCTAssertEqual(plans.first?.expectedSeconds ?? 0, 2.00082, accuracy: 1e-9)
    }

    func testLoadedCloudLosesToDevice() {
        let view = NetworkView(nodes: [NodeState(id: "d", role: .device, flops: 1000), NodeState(id: "c", role: .cloud, flops: 1e5, load: 0.99)],
                               links: ["d->c": LinkProfile(rateBps: .infinity, latencySeconds: 0.01), "c->d": LinkProfile(rateBps: .infinity, latencySeconds: 0.01)])
        // local 820 / 1000 = 0.82 s; cloud at 1% of 1e5: 0.01 + 820 / 1000 + 0.01 = 0.84 s.
        let plans = planner.candidates(view, request)
        XCTAssertEqual(Array(plans.map(\.kind).prefix(2)), [.local, .cloud])
        XCTAssertEqual(plans[0].expectedSeconds, 0.82, accuracy: 1e-9)
        XCTAssertEqual(plans[1].expectedSeconds, 0.84, accuracy: 1e-9)
    }

    func testHorizontalChainUsesTheFastPeer() {
        let inf = LinkProfile(rateBps: .infinity, latencySeconds: 0)
        let view = NetworkView(nodes: [NodeState(id: "d", role: .device, flops: 10), NodeState(id: "p", role: .device, flops: 1000),
                                       NodeState(id: "q", role: .device, flops: 500)],
                               links: ["d->p": LinkProfile(rateBps: .infinity, latencySeconds: 0.1), "p->d": LinkProfile(rateBps: .infinity, latencySeconds: 0.1),
                                       "d->q": inf, "q->d": inf, "p->q": inf, "q->p": inf])
        let h = planner.candidates(view, request).first { $0.kind == .horizontal }
        // p alone: 0.1 + 820/1000 + 0.1 = 1.02 s; q alone: 820/500 = 1.64 s; d→p with q: worse.
        XCTAssertEqual(h?.stages.map(\.nodeId), ["p"])
        XCTAssertEqual(h?.expectedSeconds ?? 0, 1.02, accuracy: 1e-9)
        XCTAssertEqual(planner.best(view, request)?.kind, .horizontal)
    }

    func testMultiAccessSplitsHeadsEvenlyOverEqualEdges() {
        let view = NetworkView(nodes: [NodeState(id: "d", role: .device, flops: 50), NodeState(id: "e0", role: .edge, flops: 100),
                                       NodeState(id: "e1", role: .edge, flops: 100)], defaultLink: .local)
        let plans = planner.candidates(view, request)
        // multi-access: (4 + 16)/50 + 2 blocks · (attn 0.5·(128 + 16)/100 + mlp 0.5·256/100) = 0.4 + 2·2 = 4.4 s;
        // edge only (vertical): 820 / 100 = 8.2 s; local 820 / 50 = 16.4 s.
        XCTAssertEqual(plans.first?.kind, .multiAccess)
        XCTAssertEqual(plans.first?.expectedSeconds ?? 0, 4.4, accuracy: 1e-9)
        XCTAssertEqual(plans.first?.stages.dropFirst().map { [$0.shareBegin, $0.shareEnd] }, [[0, 1], [1, 2]])
        XCTAssertEqual(plans.first { $0.kind == .vertical }?.expectedSeconds ?? 0, 8.2, accuracy: 1e-9)
        XCTAssertEqual(plans.first { $0.kind == .local }?.expectedSeconds ?? 0, 16.4, accuracy: 1e-9)
    }

    func testVerticalSplitRespectsTheCostOfEachTier() {
        // The cloud is fast but only reachable cheaply through the edge; vertical needs the edge to hold a block.
        let view = NetworkView(nodes: [NodeState(id: "d", role: .device, flops: 400), NodeState(id: "e", role: .edge, flops: 800),
                                       NodeState(id: "c", role: .cloud, flops: 8000)],
                               links: ["d->e": LinkProfile(rateBps: .infinity, latencySeconds: 0.05), "e->c": LinkProfile(rateBps: .infinity, latencySeconds: 0.05),
                                       "c->d": LinkProfile(rateBps: .infinity, latencySeconds: 0.05), "e->d": LinkProfile(rateBps: .infinity, latencySeconds: 0.05),
                                       "d->c": LinkProfile(rateBps: .infinity, latencySeconds: 1)])
        let v = planner.candidates(view, request).first { $0.kind == .vertical }
        // e[0,1) + c[1,2): 0.05 + 404/800 + 0.05 + 416/8000 + 0.05 = 0.707 s; e alone 0.05 + 820/800 + 0.05 = 1.125 s;
        // anything starting on d costs 404/400 > 1 s, and c alone pays the 1 s direct link.
        XCTAssertEqual(v?.stages.map(\.nodeId), ["e", "c"])
        XCTAssertEqual(v?.stages.map { [$0.layerBegin, $0.layerEnd] }, [[0, 1], [1, 2]])
        XCTAssertEqual(v?.expectedSeconds ?? 0, 0.707, accuracy: 1e-9)
    }

    func testMemoryCapacityForcesAHorizontalSplit() {
        // Two peers that hold one block each: neither runs the model alone.
        let view = NetworkView(nodes: [NodeState(id: "d", role: .device, flops: 100, maxLayers: 1),
                                       NodeState(id: "p", role: .device, flops: 1000, maxLayers: 1)], defaultLink: .local)
        let plans = planner.candidates(view, request)
        // d[0,1) → p[1,2): 404/100 + 416/1000 = 4.456 s; p[0,1) → d[1,2): 404/1000 + 416/100 = 4.564 s.
        XCTAssertEqual(plans.map(\.kind), [.horizontal])
        XCTAssertEqual(plans.first?.nodeIds, ["d", "p"])
        XCTAssertEqual(plans.first?.expectedSeconds ?? 0, 4.456, accuracy: 1e-9)
    }
}
