import Bus
import Dispatch
import EdgeEnvironment
import Engine
import Foundation
import Messages
import Stage
import Tokenizers

/// Settings of the inference router.
public struct RouterOptions: Sendable {
    /// Stage nodes are dead after `liveness` heartbeat intervals without a message.
    public var heartbeatInterval: Duration = .seconds(1)
    public var liveness = 4
    /// A stage call without a reply after this long (plus its emulated link delay) counts as a node failure.
    public var stepTimeout: Duration = .seconds(5)
    /// Planner's view for links nobody reported.
    public var defaultLink = LinkProfile(rateBps: 100e6, latencySeconds: 0.005)
    /// Bus, thread hand-offs and timer slack per stage visit (measured ~0.8 ms in-process on a loaded 2-core box).
    public var stageOverheadSeconds = 0.0008
    /// Devices allowed to ask besides registered device nodes.
    public var knownDevices: Set<String> = []
    /// New tokens when a request asks for 0.
    public var defaultMaxTokens = 16
    public var maxFailovers = 4
    /// Telemetry proxy XSUB: plan and failover events, a latency metric per request.
    public var telemetry: String?

    public init() {}
}

/// A registered stage node and the DEALER the router sends it work on.
struct NodeEntry {
    var state: NodeState
    var endpoint: String
    var socket: Socket
}

struct PendingCall {
    let requestId: String
    let attempt: Int
    let stage: Int
    let node: String
    let sentAt: UInt64
    let timer: ServiceLoop.TimerID
}

/// The inference router: accepts requests on a ROUTER, keeps a live view of the stage nodes (Register,
/// Heartbeat, load) and channels, plans each request (Planner), runs the plan stage by stage, streams a
/// TokenResult per token, and replays the prefix on a new plan when a node fails mid-generation.
///
/// The router is the hub of every plan: each hop's activation passes through it. With `setLinks(…, emulate:)`
/// it delays each logical hop A → B by the emulated link A → B (bytes/rate + latency), so a plan's measured
/// latency is what the hops would take on those links.
public final class InferenceRouter: @unchecked Sendable {  // safe: all mutable state is confined to `loop`
    public let loop: ServiceLoop
    public let endpoint: String
    public let config: ModelConfig
    let tokenizer: any Tokenizer
    let options: RouterOptions
    let context: BusContext
    let frontend: Socket
    let telemetry: TelemetryPublisher?
    var planner: Planner
    var nodes: [String: NodeEntry] = [:]
    var liveness: PeerLiveness<String>
    var links: [String: LinkProfile] = [:]
    /// Delays each hop by its link (bench); nil = deliver at once.
    var emulator: LinkEmulator?
    var clusters: [String: UInt32] = [:]
    var sessions: [String: Session] = [:]
    var pending: [UInt64: PendingCall] = [:]
    var seq: UInt64 = 0
    var requestCounter = 0
    /// Failovers done so far (all requests).
    var failoverCount = 0

    public init(bind: String, config: ModelConfig, tokenizer: any Tokenizer = ByteTokenizer(), options: RouterOptions = RouterOptions(),
                context: BusContext = .shared) throws {
        self.config = config
        self.tokenizer = tokenizer
        self.options = options
        self.context = context
        planner = Planner(cost: ComputeCost(config: config), stageOverheadSeconds: options.stageOverheadSeconds)
        liveness = PeerLiveness(interval: options.heartbeatInterval, misses: options.liveness)
        loop = ServiceLoop(name: "inference-router")
        telemetry = try options.telemetry.map { try TelemetryPublisher(connect: $0, sender: "inference-router", context: context) }
        (frontend, endpoint) = try Socket.serviceRouter(bind: bind, context: context)
        loop.add(frontend) { [weak self] _, frames in self?.receiveFrontend(frames) }
        loop.every(options.heartbeatInterval) { [weak self] in self?.expireNodes() }
        loop.start()
    }

    public func stop() { loop.stop() }

    // MARK: in-process API

    /// Runs a request without a socket: yields `.token` per token (the last has done = true) or one `.error`.
    /// `kind` forces a plan kind (the bench measures every candidate this way).
    public func generate(_ request: InferenceRequest, kind: PlanKind? = nil) -> AsyncStream<Body> {
        let (stream, cont) = AsyncStream<Body>.makeStream()
        if !loop.post({ [self] in start(request, output: .stream(cont), kind: kind) }) { cont.finish() }
        return stream
    }

    /// The planner's view of links (reported channel state); with `emulate`, each hop is also really delayed
    /// by its link through an EdgeEnvironment LinkEmulator (links not listed use the default link).
    public func setLinks(_ links: [String: LinkProfile], emulate: Bool) async throws {
        var table: [LinkID: EmulatedLink] = [:]
        for (key, l) in links {
            let ends = key.components(separatedBy: "->")
            guard ends.count == 2 else { continue }
            table[LinkID(from: ends[0], to: ends[1])] = EmulatedLink(rateBitsPerSecond: l.rateBps, latencySeconds: l.latencySeconds)
        }
        let d = options.defaultLink
        let emulator = emulate ? LinkEmulator(links: table, defaultLink: EmulatedLink(rateBitsPerSecond: d.rateBps, latencySeconds: d.latencySeconds)) : nil
        try await loop.perform { [self] in
            self.links = links
            self.emulator = emulator
        }
    }

    public func setCluster(device: String, cluster: UInt32) async throws {
        try await loop.perform { [self] in clusters[device] = cluster }
    }

    /// Alive stage nodes by id.
    public func nodeIds() async throws -> [String] { try await loop.perform { [self] in nodes.keys.sorted() } }

    public func view() async throws -> NetworkView { try await loop.perform { [self] in currentView() } }

    public func candidates(device: String, promptTokens: Int, newTokens: Int) async throws -> [InferencePlan] {
        try await loop.perform { [self] in
            planner.candidates(currentView(), PlanRequest(device: device, promptTokens: promptTokens, newTokens: newTokens))
        }
    }

    public func failovers() async throws -> Int { try await loop.perform { [self] in failoverCount } }

    func currentView() -> NetworkView {
        NetworkView(nodes: nodes.values.map(\.state).sorted { $0.id < $1.id }, links: links, defaultLink: options.defaultLink)
    }

    // MARK: frontend (clients and node registration)

    func receiveFrontend(_ frames: [[UInt8]]) {
        guard frames.count >= 2 else { return }
        let peer = frames[0]
        guard let env = try? Envelope.decode(received: frames, prefixCount: 1) else { return }  // counted by the decoder
        switch env.body {
        case .register(let r): register(r, sender: env.sender)
        case .heartbeat(let h):
            let id = env.sender
            guard nodes[id] != nil else { return }
            liveness.heard(from: id)
            nodes[id]?.state.load = min(max(h.load, 0), 1)
        case .leave:
            if nodes[env.sender] != nil { nodeFailed(env.sender) }
        case .telemetry(.channel(let c)):
            links[c.link] = LinkProfile(rateBps: c.rateBps, latencySeconds: c.rttS / 2)
        case .telemetry(.load(let l)):
            nodes[env.sender]?.state.load = min(max(l.load, 0), 1)
        case .inferRequest(let req):
            start(req, output: .socket(peer: peer, seq: env.seq), kind: nil)
        default:
            break
        }
    }

    func register(_ r: Register, sender: String) {
        let id = r.nodeId.isEmpty ? sender : r.nodeId
        guard let role = NodeRole(wire: r.role), !id.isEmpty, !r.endpoint.isEmpty else { return }
        liveness.heard(from: id)
        if let old = nodes[id] {
            if old.endpoint == r.endpoint {
                nodes[id]?.state.flops = r.caps?.flops ?? old.state.flops
                nodes[id]?.state.maxLayers = Int(r.caps?.layersCapacity ?? 0)
                return
            }
            loop.remove(old.socket)
        }
        do {
            let s = try Socket(.dealer, context: context)
            try s.set(.routingId(Array("router-\(id)".utf8)))
            try s.connect(r.endpoint)
            loop.add(s) { [weak self] _, frames in self?.receiveNode(id, frames) }
            let state = NodeState(id: id, role: role, flops: r.caps?.flops ?? 1e9, maxLayers: Int(r.caps?.layersCapacity ?? 0))
            nodes[id] = NodeEntry(state: state, endpoint: r.endpoint, socket: s)
        } catch {
            loop.onError(error)
        }
    }

    func expireNodes() {
        for id in liveness.expire() { nodeFailed(id) }
    }

    func nodeFailed(_ id: String) {
        if let e = nodes.removeValue(forKey: id) { loop.remove(e.socket) }
        liveness.forget(id)
        for s in sessions.values where s.plan.nodeIds.contains(id) { failover(s) }
    }

    // MARK: requests

    func start(_ req: InferenceRequest, output: Output, kind: PlanKind?) {
        func reject(_ code: ErrorCode, _ message: String) {
            deliver(.error(InferenceError(requestId: req.requestId, code: code, message: message)), to: output, finish: true)
        }
        let known = options.knownDevices.contains(req.deviceId) || nodes[req.deviceId]?.state.role == .device
        guard known else { return reject(.unknownDevice, "device '\(req.deviceId)' is not registered; start its stage node or add it to the known devices") }
        let prompt = req.prompt.isEmpty ? tokenizer.encode(req.promptText).map { UInt32(bitPattern: $0) } : req.prompt
        guard !prompt.isEmpty else { return reject(.badRequest, "empty prompt; give prompt tokens or prompt text") }
        if let bad = prompt.first(where: { Int($0) >= config.vocabSize }) {
            return reject(.badRequest, "token id \(bad) outside the vocabulary 0..<\(config.vocabSize)")
        }
        guard prompt.count <= config.contextLength else {
            return reject(.promptTooLong, "prompt of \(prompt.count) tokens exceeds the context of \(config.contextLength); shorten it")
        }
        guard sessions[req.requestId] == nil else { return reject(.badRequest, "request id '\(req.requestId)' is already running") }
        let asked = req.maxTokens == 0 ? options.defaultMaxTokens : Int(req.maxTokens)
        let maxTokens = min(asked, config.contextLength - prompt.count + 1)
        guard let plan = choosePlan(device: req.deviceId, promptTokens: prompt.count, newTokens: maxTokens, kind: kind) else {
            return reject(.noRoute, "no plan can serve device '\(req.deviceId)'" + (kind.map { " as \($0.rawValue)" } ?? "") + ": no suitable stage nodes are alive")
        }
        let sampling = req.sampling ?? Messages.Sampling()
        let s = Session(requestId: req.requestId, device: req.deviceId, cluster: clusters[req.deviceId] ?? 0, prompt: prompt,
                        maxTokens: maxTokens, sampling: sampling.engine, seed: sampling.seed, forcedKind: kind, output: output, plan: plan)
        sessions[req.requestId] = s
        s.started = Self.now()
        event(.info, "plan", "\(req.requestId) device \(req.deviceId): \(plan.summary), expected \(plan.expectedSeconds) s")
        beginToken(s)
    }

    func choosePlan(device: String, promptTokens: Int, newTokens: Int, kind: PlanKind?) -> InferencePlan? {
        let all = planner.candidates(currentView(), PlanRequest(device: device, promptTokens: promptTokens, newTokens: newTokens))
        if let kind { return all.first { $0.kind == kind } }
        return all.first
    }

    func failover(_ s: Session) {
        pending = pending.filter { $0.value.requestId != s.requestId || $0.value.attempt != s.attempt }
        release(s)
        failoverCount += 1
        let remaining = s.maxTokens - s.generated.count
        guard s.failovers < options.maxFailovers,
              let plan = choosePlan(device: s.device, promptTokens: s.prompt.count + s.generated.count, newTokens: remaining, kind: s.forcedKind)
                ?? choosePlan(device: s.device, promptTokens: s.prompt.count + s.generated.count, newTokens: remaining, kind: nil) else {
            return finish(s, error: InferenceError(requestId: s.requestId, code: .noRoute, message: "a stage node failed and no other plan is possible"))
        }
        event(.warn, "failover", "\(s.requestId) after \(s.generated.count) tokens: replaying on \(plan.summary)")
        s.replay(on: plan)
        beginToken(s)
    }

    func finish(_ s: Session, error: InferenceError) {
        pending = pending.filter { $0.value.requestId != s.requestId }
        release(s)
        sessions.removeValue(forKey: s.requestId)
        deliver(.error(error), to: s.output, finish: true)
    }

    /// Tells the plan's nodes to drop this attempt's KV caches.
    func release(_ s: Session) {
        let msg = StageActivation(sessionId: s.sessionKey)
        for id in Set(s.plan.nodeIds) {
            guard let n = nodes[id] else { continue }
            seq += 1
            try? n.socket.send(Envelope(sender: "router", seq: seq, body: .activation(msg)), dontWait: true)
        }
    }

    func deliver(_ body: Body, to output: Output, finish: Bool) {
        switch output {
        case .socket(let peer, let replyTo):
            seq += 1
            try? frontend.send(Envelope(sender: "router", seq: seq, replyTo: replyTo, body: body), prefix: [peer], dontWait: true)
        case .stream(let c):
            c.yield(body)
            if finish { c.finish() }
        }
    }

    func event(_ severity: Severity, _ kind: String, _ text: String) {
        _ = try? telemetry?.publish(.event(Event(severity: severity, kind: kind, text: text)))
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
}
