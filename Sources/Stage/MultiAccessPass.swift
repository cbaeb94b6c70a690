import Engine
import Messages

/// One forward pass of a multi-access plan, coordinated by the requesting device's own node (direct mode): it embeds
/// the tokens, sends each block's attention and MLP phase to the edge servers holding head/column shares (over its
/// own links), sums their partial outputs into the residual stream, and runs the head and the draw itself. The
/// router only sent the first activation and receives the tokens.
final class MultiAccessPass {
    let input: StageActivation
    /// 0 embed, 1…2L block phases (odd: attention, even: MLP), 2L+1 head.
    var step = 0
    var hidden: [Float] = []
    var partial: [Float] = []
    /// Share requests of the current phase still unanswered: seq → share node.
    var awaiting: [UInt64: String] = [:]

    init(_ input: StageActivation) { self.input = input }

    var tokens: Int { input.tokens.count }
}

extension StageServer {
    /// A direct activation whose plan is the requester followed by head/column shares.
    static func isMultiAccess(_ a: StageActivation) -> Bool {
        a.plan.count >= 2 && a.plan.dropFirst().allSatisfy { $0.shareEnd > $0.shareBegin }
    }

    /// Starts a pass: the embedding runs on this node's compute thread.
    func beginMultiAccess(_ a: StageActivation) {
        multiAccessPasses[a.sessionId] = MultiAccessPass(a)
        let embed = StageActivation(sessionId: a.sessionId, position: a.position, tokens: a.tokens, plan: [Messages.Stage(nodeId: options.id, embed: true)],
                                    cluster: a.cluster)
        worker.submit(.activation(.init(activation: embed, peer: [], replyTo: 0, coordinated: true)))
    }

    /// The embedding or the head of a pass came back from the compute thread.
    func multiAccessComputed(_ a: StageActivation, _ result: Result<StageCompute.Output, StageError>) {
        guard let pass = multiAccessPasses[a.sessionId] else { return }  // released meanwhile
        let out: StageCompute.Output
        switch result {
        case .success(let o): out = o
        case .failure(let e):
            multiAccessPasses.removeValue(forKey: a.sessionId)
            sendUpstream(.error(InferenceError(requestId: a.sessionId, code: e.code, message: "\(options.id): \(e.message)")))
            return
        }
        if out.token != nil {  // the head drew: report it and start the next pass
            multiAccessPasses.removeValue(forKey: a.sessionId)
            guard case .token(let result, let next) = pass.input.directStep(out, contextLength: config.contextLength) else { return }
            sendUpstream(.token(result))
            if let next, !released.contains(a.sessionId) { beginMultiAccess(next) }
            return
        }
        guard let values = try? out.tensor?.floats() else { return }
        pass.hidden = values
        pass.step = 1
        sendPhase(pass)
    }

    /// Sends the current block phase to every share, or runs the head once all blocks are done.
    func sendPhase(_ pass: MultiAccessPass) {
        let a = pass.input, L = config.layers, C = config.width, T = pass.tokens
        if pass.step > 2 * L {
            let head = StageActivation(sessionId: a.sessionId, position: a.position + UInt32(T - 1),
                                       hidden: Tensor(name: "hidden", shape: [1, C], floats: Array(pass.hidden[(T - 1) * C..<T * C])),
                                       plan: [Messages.Stage(nodeId: options.id, layerBegin: UInt32(L), layerEnd: UInt32(L), head: true)],
                                       cluster: a.cluster, direct: true, sampling: a.sampling, rngState: a.rngState, remaining: a.remaining,
                                       tokenIndex: a.tokenIndex, requester: a.requester)
            worker.submit(.activation(.init(activation: head, peer: [], replyTo: 0, coordinated: true)))
            return
        }
        let layer = (pass.step - 1) / 2, phase = (pass.step - 1) % 2 == 0 ? "attn" : "mlp"
        pass.partial = [Float](repeating: 0, count: pass.hidden.count)
        pass.awaiting = [:]
        let x = Tensor(name: phase, shape: [T, C], floats: pass.hidden)
        for share in a.plan.dropFirst() {
            var st = share
            st.layerBegin = UInt32(layer)
            st.layerEnd = UInt32(layer + 1)
            guard let socket = peer(st.nodeId, endpoint: st.endpoint) else { return shareFailed(pass, st.nodeId) }
            seq += 1
            let id = seq
            pass.awaiting[id] = st.nodeId
            multiAccessRequests[id] = a.sessionId
            let env = Envelope(sender: options.id, seq: id,
                               body: .activation(StageActivation(sessionId: a.sessionId, position: a.position, hidden: x, plan: [st], cluster: a.cluster)))
            let frames = env.encodeFrames()
            later(options.linkLatency[st.nodeId] ?? 0) { [weak self] in
                if (try? socket.send(frames, dontWait: true)) == nil { self?.shareFailed(pass, st.nodeId) }
            }
        }
    }

    /// A share's answer (its partial, or an error), matched to its pass by the request's seq.
    func shareReplied(_ env: Envelope, from node: String) {
        guard let key = multiAccessRequests.removeValue(forKey: env.replyTo), let pass = multiAccessPasses[key],
              pass.awaiting.removeValue(forKey: env.replyTo) != nil else { return }
        switch env.body {
        case .activation(let r):
            guard let values = try? r.hidden?.floats(), values.count == pass.partial.count else { return shareFailed(pass, node) }
            for i in values.indices { pass.partial[i] += values[i] }
            guard pass.awaiting.isEmpty else { return }
            for i in pass.hidden.indices { pass.hidden[i] += pass.partial[i] }  // residual: x + Σ shares
            pass.step += 1
            sendPhase(pass)
        case .error(let e):
            multiAccessPasses.removeValue(forKey: key)
            sendUpstream(.error(InferenceError(requestId: key, code: e.code, message: e.message)))
        default:
            break
        }
    }

    func shareFailed(_ pass: MultiAccessPass, _ node: String) {
        guard multiAccessPasses.removeValue(forKey: pass.input.sessionId) != nil else { return }
        sendUpstream(.error(InferenceError(requestId: pass.input.sessionId, code: .nodeFailed,
                                           message: "\(options.id): share node \(node) is unreachable", nodeId: node)))
    }
}
