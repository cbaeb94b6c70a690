import Bus
import Engine
import Messages

/// Running a chain plan with direct forwarding: the router sends the first activation (the prompt, or the replayed
/// prefix after a failover) and then only listens. Each stage forwards to the next; the last draws the token with
/// the RNG state that travels with the activations, reports it here, and feeds it to the first stage.
extension InferenceRouter {
    func beginDirect(_ s: Session) {
        let stages = s.plan.stages.map { st -> Messages.Stage in
            var st = st
            st.endpoint = nodes[st.nodeId]?.endpoint ?? ""
            return st
        }
        guard let first = stages.first, let entry = nodes[first.nodeId] else { return failover(s) }
        let a = StageActivation(sessionId: s.sessionKey, position: UInt32(s.position), tokens: s.input, plan: stages, stageIndex: 0,
                                cluster: s.cluster, direct: true, sampling: s.wireSampling, rngState: s.rng.state,
                                remaining: UInt32(s.maxTokens - s.generated.count), tokenIndex: UInt32(s.generated.count), requester: s.device)
        s.lastProgress = Self.now()
        seq += 1
        do { try entry.socket.send(Envelope(sender: "router", seq: seq, body: .activation(a)).encodeFrames(), dontWait: true) } catch {
            nodeFailed(first.nodeId)
        }
    }

    /// The open session (and attempt) a stage's session key "<request>#<attempt>" names.
    func session(forKey key: String) -> (Session, Int)? {
        guard let hash = key.lastIndex(of: "#"), let attempt = Int(key[key.index(after: hash)...]),
              let s = sessions[String(key[..<hash])] else { return nil }
        return (s, attempt)
    }

    /// A token from a plan's last stage. Tokens of an earlier attempt, or repeated ones, are ignored.
    func directToken(_ t: TokenResult) {
        guard let (s, attempt) = session(forKey: t.requestId), attempt == s.attempt, s.direct, Int(t.index) == s.generated.count else { return }
        s.rng = SplitMix64(seed: t.rngState)
        s.lastProgress = Self.now()
        emit(s, token: t.token, done: t.done || s.generated.count + 1 >= s.maxTokens)
    }

    /// A stage could not serve a direct activation. An unreachable next stage counts as that node failing.
    func directError(_ e: InferenceError) {
        guard let (s, attempt) = session(forKey: e.requestId), attempt == s.attempt else { return }
        if e.code == .nodeFailed, !e.nodeId.isEmpty {
            if nodes[e.nodeId] != nil { nodeFailed(e.nodeId) } else { failover(s, excluding: [e.nodeId]) }
            return
        }
        finish(s, error: InferenceError(requestId: s.requestId, code: e.code, message: e.message))
    }

    /// A direct plan that made no progress for the step timeout (beyond its expected time) fails over.
    func checkProgress() {
        let now = Self.now(), timeout = Self.seconds(options.stepTimeout)
        for s in sessions.values where s.direct {
            let idle = Double(now - s.lastProgress) / 1e9
            if idle > timeout + s.plan.expectedSeconds {
                event(.warn, "stalled", "\(s.requestId): no token for \(idle) s on \(s.plan.summary)")
                failover(s)
            }
        }
    }
}
