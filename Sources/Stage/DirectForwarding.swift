import Bus
import Foundation
import Messages

/// What the output of a direct-mode activation leads to (pure).
enum DirectStep {
    /// Hand the output to the next stage of the plan.
    case forward(StageActivation)
    /// The last stage drew a token: report it; `next` starts the following pass at the first stage (nil when done).
    case token(TokenResult, next: StageActivation?)
}

extension StageActivation {
    func directStep(_ out: StageCompute.Output, contextLength: Int) -> DirectStep {
        guard let token = out.token else {
            var next = self
            next.stageIndex += 1
            next.tokens = []
            next.hidden = out.tensor
            next.probeSentUs = 0
            return .forward(next)
        }
        let st = plan[Int(stageIndex)]
        let position = Int(self.position) + (st.embed ? tokens.count : Int(hidden?.shape.first ?? 1))
        let done = remaining <= 1 || position >= contextLength
        let result = TokenResult(requestId: sessionId, token: token, index: tokenIndex, done: done, rngState: out.rngState)
        let next = done ? nil : StageActivation(sessionId: sessionId, position: UInt32(position), tokens: [token], plan: plan, stageIndex: 0,
                                                cluster: cluster, direct: true, sampling: sampling, rngState: out.rngState,
                                                remaining: remaining - 1, tokenIndex: tokenIndex + 1, requester: requester)
        return .token(result, next: next)
    }

    /// The stage this activation is for.
    var target: Messages.Stage? { Int(stageIndex) < plan.count ? plan[Int(stageIndex)] : nil }
}

/// The compute thread's own sockets for direct forwarding: a DEALER to each next stage and one to the router, so an
/// output goes to the next stage (or its token to the router) without a trip through the service loop. Used only on
/// the compute thread. Their routing ids end in "#w" (the loop's DEALERs carry the bare node id); a peer echoes
/// activation probes to the bare id, so they reach the loop's prober.
final class DirectLinks {
    let id: String
    let context: BusContext
    let router: String?
    private var upstream: Socket?
    private var peers: [String: (socket: Socket, endpoint: String)] = [:]
    private var seq: UInt64 = 0
    private var lastProbe: [String: UInt64] = [:]

    init(id: String, context: BusContext, router: String?) { self.id = id; self.context = context; self.router = router }

    deinit {
        upstream?.close()
        for p in peers.values { p.socket.close() }
    }

    private func dealer(_ endpoint: String) throws -> Socket {
        let s = try Socket(.dealer, context: context)
        try s.set(.routingId(Array("\(id)#w".utf8)))
        try s.set(.immediate(true))
        try s.connect(endpoint)
        return s
    }

    /// Sends `a` to the stage it names; false when there is no connected socket for it (the loop retries and reports).
    /// `probed` learns of a probe stamp riding on it (at most one per peer every 50 ms).
    func forward(_ a: StageActivation, probed: (String, UInt64, Int) -> Void) -> Bool {
        guard let target = a.target, !target.endpoint.isEmpty else { return false }
        if peers[target.nodeId]?.endpoint != target.endpoint {
            peers[target.nodeId]?.socket.close()
            guard let s = try? dealer(target.endpoint) else { return false }
            peers[target.nodeId] = (s, target.endpoint)
        }
        var out = a
        let nowUs = StageServer.nowUs()
        if nowUs &- (lastProbe[target.nodeId] ?? 0) > 50_000 {
            out.probeSentUs = nowUs
            lastProbe[target.nodeId] = nowUs
        }
        seq += 1
        let frames = Envelope(sender: id, seq: seq, body: .activation(out)).encodeFrames()
        guard (try? peers[target.nodeId]!.socket.send(frames, dontWait: true)) != nil else { return false }
        if out.probeSentUs != 0 { probed(target.nodeId, nowUs, frames.reduce(0) { $0 + $1.count }) }
        return true
    }

    /// Sends a body to the router; false when it cannot.
    func report(_ body: Body) -> Bool {
        guard let router else { return false }
        if upstream == nil { upstream = try? dealer(router) }
        seq += 1
        return (try? upstream?.send(Envelope(sender: id, seq: seq, body: body), dontWait: true)) != nil
    }
}
