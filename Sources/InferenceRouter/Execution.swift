import Bus
import Dispatch
import EdgeEnvironment
import Engine
import Foundation
import Messages

/// Running a plan through the router (hub): one forward pass per token, stage by stage (chain) or phase by phase
/// (multi-access); the router sends every stage its input, gets the output back and draws the token.
extension InferenceRouter {
    func beginToken(_ s: Session) {
        s.step = 0
        s.tokenStarted = Self.now()
        s.stageSeconds = [Double](repeating: 0, count: s.plan.stages.count)
        runStep(s)
    }

    func runStep(_ s: Session) {
        let stages = s.plan.stages
        if s.plan.kind != .multiAccess {
            let i = s.step, st = stages[i]
            let from = i == 0 ? s.device : stages[i - 1].nodeId
            var a = StageActivation(sessionId: s.sessionKey, position: UInt32(s.position), plan: stages, stageIndex: UInt32(i), cluster: s.cluster)
            if st.embed { a.tokens = s.input } else { a.hidden = Tensor(name: "hidden", shape: [s.hidden.count / config.width, config.width], floats: s.hidden) }
            call(s, stage: i, activation: a, from: from)
            return
        }
        let L = config.layers, d = stages[0]
        let T = s.input.count
        if s.step == 0 {
            let embed = Messages.Stage(nodeId: d.nodeId, embed: true)
            call(s, stage: 0, activation: StageActivation(sessionId: s.sessionKey, position: UInt32(s.position), tokens: s.input,
                                                          plan: [embed], cluster: s.cluster), from: s.device)
        } else if s.step <= 2 * L {
            let l = (s.step - 1) / 2, phase = (s.step - 1) % 2 == 0 ? "attn" : "mlp"
            s.partial = [Float](repeating: 0, count: s.hidden.count)
            s.awaiting = Set(1..<stages.count)
            let x = Tensor(name: phase, shape: [T, config.width], floats: s.hidden)
            for k in 1..<stages.count {
                var share = stages[k]
                share.layerBegin = UInt32(l); share.layerEnd = UInt32(l + 1)
                call(s, stage: k, activation: StageActivation(sessionId: s.sessionKey, position: UInt32(s.position), hidden: x,
                                                              plan: [share], cluster: s.cluster), from: s.device)
            }
        } else {
            let head = Messages.Stage(nodeId: d.nodeId, layerBegin: UInt32(L), layerEnd: UInt32(L), head: true)
            let h = Array(s.hidden[(T - 1) * config.width..<T * config.width])
            call(s, stage: 0, activation: StageActivation(sessionId: s.sessionKey, position: UInt32(s.position + T - 1),
                                                          hidden: Tensor(name: "hidden", shape: [1, config.width], floats: h),
                                                          plan: [head], cluster: s.cluster), from: s.device)
        }
    }

    /// Sends one stage call after the emulated link delay from `from`, with a timeout that fails the node over.
    func call(_ s: Session, stage: Int, activation: StageActivation, from: String) {
        let nodeId = s.plan.stages[stage].nodeId
        guard let entry = nodes[nodeId] else { return failover(s) }
        seq += 1
        let id = seq
        let frames = Envelope(sender: "router", seq: id, body: .activation(activation)).encodeFrames()
        let bytes = frames.reduce(0) { $0 + $1.count }
        let timeout = options.stepTimeout + .milliseconds(Int(expectedDelay(from, nodeId, bytes: bytes) * 1000))
        let timer = loop.after(timeout) { [weak self] in
            guard let self, let p = pending.removeValue(forKey: id), let s = sessions[p.requestId], s.attempt == p.attempt else { return }
            nodeFailed(p.node)
        }
        pending[id] = PendingCall(requestId: s.requestId, attempt: s.attempt, stage: stage, node: nodeId, sentAt: Self.now(), timer: timer)
        let socket = entry.socket
        transmit(bytes: bytes, from: from, to: nodeId) { [weak self] in
            guard let self, pending[id] != nil else { return }
            do { try socket.send(frames, dontWait: true) } catch { nodeFailed(nodeId) }
        }
    }

    /// Runs `work` on the loop once `bytes` have crossed the emulated link from → to (at once without emulation).
    func transmit(bytes: Int, from: String, to: String, _ work: @escaping @Sendable () -> Void) {
        guard let emulator, from != to else { return work() }
        emulator.transmit(bytes: bytes, on: LinkID(from: from, to: to)) { [loop] in loop.post(work) }
    }

    func expectedDelay(_ from: String, _ to: String, bytes: Int) -> Double {
        guard emulator != nil, from != to else { return 0 }
        return (live.manualLinks[NetworkView.key(from, to)] ?? options.defaultLink).seconds(bytes: bytes)
    }

    func receiveNode(_ nodeId: String, _ frames: [[UInt8]]) {
        guard let env = try? Envelope.decode(frames: frames) else { return }
        liveness.heard(from: nodeId)
        guard let p = pending.removeValue(forKey: env.replyTo) else { return }  // stale: an earlier attempt
        loop.cancel(p.timer)
        guard let s = sessions[p.requestId], s.attempt == p.attempt else { return }
        switch env.body {
        case .error(let e):
            finish(s, error: InferenceError(requestId: s.requestId, code: e.code, message: e.message))
        case .activation(let a):
            guard let t = a.hidden, let values = try? t.floats() else {
                return finish(s, error: InferenceError(requestId: s.requestId, code: .internal, message: "\(nodeId) replied without a tensor"))
            }
            // Output goes back to the requester after the last stage and after every multi-access call.
            let toRequester = s.plan.kind == .multiAccess || p.stage == s.plan.stages.count - 1
            let (requestId, attempt) = (s.requestId, s.attempt)
            transmit(bytes: frames.reduce(0) { $0 + $1.count }, from: nodeId, to: toRequester ? s.device : nodeId) { [weak self] in
                guard let self, let s = sessions[requestId], s.attempt == attempt else { return }
                s.stageSeconds[p.stage] += Double(Self.now() - p.sentAt) / 1e9
                advance(s, stage: p.stage, name: t.name, values: values)
            }
        default:
            break
        }
    }

    func advance(_ s: Session, stage: Int, name: String, values: [Float]) {
        if name == "logits" { return emitToken(s, logits: values) }
        if s.plan.kind != .multiAccess {
            s.hidden = values
            s.step += 1
            return runStep(s)
        }
        if s.step == 0 {
            s.hidden = values
            s.step = 1
            return runStep(s)
        }
        guard values.count == s.partial.count else {
            return finish(s, error: InferenceError(requestId: s.requestId, code: .internal, message: "share \(stage) returned \(values.count) values"))
        }
        for i in values.indices { s.partial[i] += values[i] }
        s.awaiting.remove(stage)
        guard s.awaiting.isEmpty else { return }
        for i in s.hidden.indices { s.hidden[i] += s.partial[i] }  // residual: x + Σ shares
        s.step += 1
        runStep(s)
    }

    func emitToken(_ s: Session, logits: [Float]) {
        let token = UInt32(LanguageModel.sample(logits, s.sampling, &s.rng))
        s.position += s.input.count
        s.input = [token]
        let done = s.generated.count + 1 >= s.maxTokens || s.position >= config.contextLength
        emit(s, token: token, done: done)
        if !done { beginToken(s) }
    }
}
