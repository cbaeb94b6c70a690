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
    /// A plan that makes no progress for this long (plus its expected time) counts as a node failure.
    public var stepTimeout: Duration = .seconds(5)
    /// Planner's view for links nobody reported.
    public var defaultLink = LinkProfile(rateBps: 100e6, latencySeconds: 0.005)
    /// How plans run: stage to stage (direct; a multi-access pass coordinated by the requester's node) or through the
    /// router (hub, for comparison; also multi-access for a requester without a stage node).
    public var forwarding: Forwarding = .direct
    /// Bus, thread hand-offs and timer slack per stage visit; nil = the measured default of the forwarding mode.
    public var stageOverheadSeconds: Double?
    /// Devices allowed to ask besides registered device nodes and devices in the cluster map.
    public var knownDevices: Set<String> = []
    /// New tokens when a request asks for 0.
    public var defaultMaxTokens = 16
    public var maxFailovers = 4
    /// Telemetry proxy XSUB: plan and failover events, a latency metric per request.
    public var telemetry: String?
    /// The cluster manager's ROUTER (snapshots) and PUB (map updates): devices' clusters come from its map.
    public var manager: String?
    public var managerPub: String?

    public init() {}

    /// Per stage visit: the hub adds a second message and the router's own hand-off (measured ~0.8 ms in-process
    /// on a loaded 2-core box); a direct hop is one message between two nodes.
    var overhead: Double { stageOverheadSeconds ?? (forwarding == .hub ? 0.0008 : 0.0004) }
}

/// A registered stage node and the DEALER the router sends it work on.
struct NodeEntry {
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

/// The inference router: accepts requests on a ROUTER, keeps a live view of the stage nodes from what they report
/// (registration, heartbeats with measured load, compute speed, links and radio state), follows the cluster
/// manager's map for each device's cluster, plans each request (Planner) and streams a TokenResult per token.
///
/// Direct forwarding (default): the router sends the plan's first activation and the stages forward to each other;
/// the last stage draws each token, reports it here and feeds it to the first stage. The router watches progress
/// and liveness, and on a failure replays the prefix on a new plan (same RNG state, so the output is identical).
/// Hub forwarding and multi-access plans pass every activation through the router.
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
    var live: LiveView
    var nodes: [String: NodeEntry] = [:]
    var liveness: PeerLiveness<String>
    /// Delays each hub hop by its link (bench); nil = deliver at once.
    var emulator: LinkEmulator?
    var clusters: [String: UInt32] = [:]
    var follower: ClusterFollower?
    var sessions: [String: Session] = [:]
    var pending: [UInt64: PendingCall] = [:]
    var seq: UInt64 = 0
    var ticks = 0
    var directoryVersion: UInt64 = 0
    /// Failovers done so far (all requests).
    var failoverCount = 0

    public init(bind: String, config: ModelConfig, tokenizer: any Tokenizer = ByteTokenizer(), options: RouterOptions = RouterOptions(),
                context: BusContext = .shared) throws {
        self.config = config
        self.tokenizer = tokenizer
        self.options = options
        self.context = context
        planner = Planner(cost: ComputeCost(config: config), stageOverheadSeconds: options.overhead, forwarding: options.forwarding)
        let interval = Self.seconds(options.heartbeatInterval)
        live = LiveView(defaultLink: options.defaultLink, staleAfter: interval * Double(max(2, options.liveness)))
        liveness = PeerLiveness(interval: options.heartbeatInterval, misses: options.liveness)
        loop = ServiceLoop(name: "inference-router")
        telemetry = try options.telemetry.map { try TelemetryPublisher(connect: $0, sender: "inference-router", context: context) }
        (frontend, endpoint) = try Socket.serviceRouter(bind: bind, context: context)
        loop.add(frontend) { [weak self] _, frames in self?.receiveFrontend(frames) }
        if let m = options.manager {
            guard let pub = options.managerPub else { throw RouterSetupError.managerPubMissing }
            let f = try ClusterFollower(manager: m, managerPub: pub, id: "inference-router", context: context)
            follower = f
            f.attach(to: loop) { [weak self] in self?.clustersChanged() }
        }
        loop.every(options.heartbeatInterval) { [weak self] in self?.tick() }
        loop.start()
    }

    public func stop() { loop.stop() }

    static func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
    static func nowSeconds() -> Double { Double(now()) / 1e9 }

    // MARK: in-process API

    /// Runs a request without a socket: yields `.token` per token (the last has done = true) or one `.error`.
    /// `kind` forces a plan kind (the bench measures every candidate this way).
    public func generate(_ request: InferenceRequest, kind: PlanKind? = nil) -> AsyncStream<Body> {
        let (stream, cont) = AsyncStream<Body>.makeStream()
        if !loop.post({ [self] in start(request, output: .stream(cont), kind: kind) }) { cont.finish() }
        return stream
    }

    /// Runs a request on a plan given by hand (benchmarks: hops without compute); its nodes must be registered.
    public func generate(_ request: InferenceRequest, plan: InferencePlan) -> AsyncStream<Body> {
        let (stream, cont) = AsyncStream<Body>.makeStream()
        if !loop.post({ [self] in start(request, output: .stream(cont), kind: plan.kind, given: plan) }) { cont.finish() }
        return stream
    }

    /// Sets links by hand, overriding what nodes report (benchmarks); with `emulate`, each hub hop is also really
    /// delayed by its link through an EdgeEnvironment LinkEmulator (links not listed use the default link).
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
            live.manualLinks = links
            self.emulator = emulator
        }
    }

    /// Sets a device's cluster by hand (in-process deployments without a cluster manager).
    public func setCluster(device: String, cluster: UInt32) async throws {
        try await loop.perform { [self] in clusters[device] = cluster }
    }

    /// The cluster a device is served with: the manager's map, else what was set by hand, else 0.
    func cluster(of device: String) -> UInt32 { follower?.replica.cluster(of: device) ?? clusters[device] ?? 0 }

    /// Alive stage nodes by id.
    public func nodeIds() async throws -> [String] { try await loop.perform { [self] in nodes.keys.sorted() } }

    public func view() async throws -> NetworkView { try await loop.perform { [self] in currentView() } }

    /// The planner's best plan of each kind on the current view, optionally as if some nodes were not there.
    public func candidates(device: String, promptTokens: Int, newTokens: Int, excluding: Set<String> = []) async throws -> [InferencePlan] {
        try await loop.perform { [self] in
            var view = currentView()
            view.nodes.removeAll { excluding.contains($0.id) }
            return planner.candidates(view, PlanRequest(device: device, promptTokens: promptTokens, newTokens: newTokens))
        }
    }

    public func failovers() async throws -> Int { try await loop.perform { [self] in failoverCount } }

    /// The device → cluster map the router follows (mapSeq 0 without a manager).
    public func clusterMap() async throws -> ClusterMapReplica { try await loop.perform { [self] in follower?.replica ?? ClusterMapReplica() } }

    func currentView() -> NetworkView {
        var active: [String: Int] = [:]
        for s in sessions.values { for id in Set(s.plan.nodeIds) { active[id, default: 0] += 1 } }
        return live.view(now: Self.nowSeconds(), active: active)
    }

    // MARK: frontend (clients, node registration and reports, direct-mode tokens)

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
            live.heartbeat(from: id, h, now: Self.nowSeconds())
        case .leave:
            if nodes[env.sender] != nil { nodeFailed(env.sender) }
        case .token(let t):
            liveness.heard(from: env.sender)
            directToken(t)
        case .error(let e):
            liveness.heard(from: env.sender)
            directError(e)
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
        live.register(id, role: role, flops: r.caps?.flops ?? 1e9, maxLayers: Int(r.caps?.layersCapacity ?? 0))
        if let old = nodes[id] {
            if old.endpoint == r.endpoint { return }
            loop.remove(old.socket)
        }
        do {
            let s = try Socket(.dealer, context: context)
            try s.set(.routingId(Array("router-\(id)".utf8)))
            try s.connect(r.endpoint)
            loop.add(s) { [weak self] _, frames in self?.receiveNode(id, frames) }
            nodes[id] = NodeEntry(endpoint: r.endpoint, socket: s)
            publishDirectory()
        } catch {
            loop.onError(error)
        }
    }

    func tick() {
        ticks += 1
        for id in liveness.expire() { nodeFailed(id) }
        if ticks % 10 == 0 { publishDirectory() }
        follower?.tick()
        checkProgress()
    }

    /// Tells every stage node who the others are and where they serve (they dial each other to forward and probe).
    func publishDirectory() {
        directoryVersion += 1
        let members = nodes.keys.sorted().map { id in
            ClusterMember(nodeId: id, role: live.nodes[id]?.state.role.wireRole ?? .unspecified, endpoint: nodes[id]!.endpoint)
        }
        let map = ClusterMap(mapSeq: directoryVersion, members: members)
        for id in nodes.keys {
            seq += 1
            try? frontend.send(Envelope(sender: "router", seq: seq, body: .clusterMap(map)), prefix: [Array(id.utf8)], dontWait: true)
        }
    }

    func clustersChanged() {
        guard let f = follower else { return }
        event(.info, "cluster_map", "map \(f.replica.mapSeq): \(f.replica.members.values.filter { $0.role == .device }.count) devices")
    }

    func nodeFailed(_ id: String) {
        if let e = nodes.removeValue(forKey: id) { loop.remove(e.socket) }
        liveness.forget(id)
        live.remove(id)
        publishDirectory()
        for s in sessions.values where s.plan.nodeIds.contains(id) { failover(s) }
    }

    // MARK: requests

    func isKnown(_ device: String) -> Bool {
        options.knownDevices.contains(device) || live.nodes[device]?.state.role == .device || follower?.replica.cluster(of: device) != nil
    }

    func start(_ req: InferenceRequest, output: Output, kind: PlanKind?, given: InferencePlan? = nil) {
        func reject(_ code: ErrorCode, _ message: String) {
            deliver(.error(InferenceError(requestId: req.requestId, code: code, message: message)), to: output, finish: true)
        }
        guard isKnown(req.deviceId) else {
            return reject(.unknownDevice, "device '\(req.deviceId)' is not registered; start its stage node, register it with the cluster manager or add it to the known devices")
        }
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
        guard let plan = given ?? choosePlan(device: req.deviceId, promptTokens: prompt.count, newTokens: maxTokens, kind: kind) else {
            if let full = fullNodes(device: req.deviceId, promptTokens: prompt.count, newTokens: maxTokens, kind: kind) {
                return reject(.overloaded, "every plan for device '\(req.deviceId)' needs a node at its session limit (\(full)); retry when a session ends")
            }
            return reject(.noRoute, "no plan can serve device '\(req.deviceId)'" + (kind.map { " as \($0.rawValue)" } ?? "") + ": no suitable stage nodes are alive")
        }
        let s = Session(requestId: req.requestId, device: req.deviceId, cluster: cluster(of: req.deviceId), prompt: prompt,
                        maxTokens: maxTokens, sampling: req.sampling ?? Messages.Sampling(), forcedKind: kind, output: output, plan: plan,
                        direct: runsDirect(plan))
        sessions[req.requestId] = s
        s.started = Self.now()
        event(.info, "plan", "\(req.requestId) device \(req.deviceId): \(plan.summary), expected \(plan.expectedSeconds) s")
        begin(s)
    }

    /// Direct forwarding runs chains stage to stage; a multi-access plan is coordinated by the requester's own stage
    /// node when it has one (else the router stands in for the requester, as in hub mode).
    func runsDirect(_ plan: InferencePlan) -> Bool {
        options.forwarding == .direct && (plan.kind != .multiAccess || nodes[plan.requester] != nil)
    }

    /// Starts (or restarts after a failover) a session's generation.
    func begin(_ s: Session) {
        if s.direct { beginDirect(s) } else { beginToken(s) }
    }

    func choosePlan(device: String, promptTokens: Int, newTokens: Int, kind: PlanKind?, excluding: Set<String> = []) -> InferencePlan? {
        var view = currentView()
        view.nodes.removeAll { excluding.contains($0.id) }
        let all = planner.candidates(view, PlanRequest(device: device, promptTokens: promptTokens, newTokens: newTokens))
        if let kind { return all.first { $0.kind == kind } }
        return all.first
    }

    /// When no plan admits the request but one would without the session limits: the nodes that are full.
    func fullNodes(device: String, promptTokens: Int, newTokens: Int, kind: PlanKind?) -> String? {
        let view = currentView()
        let all = planner.candidatesIgnoringAdmission(view, PlanRequest(device: device, promptTokens: promptTokens, newTokens: newTokens))
        guard all.contains(where: { kind == nil || $0.kind == kind }) else { return nil }
        return view.nodes.filter { !$0.admits }.map { "\($0.id) \($0.activeSessions)/\($0.maxSessions)" }.joined(separator: ", ")
    }

    func failover(_ s: Session, excluding: Set<String> = []) {
        pending = pending.filter { $0.value.requestId != s.requestId || $0.value.attempt != s.attempt }
        release(s)
        failoverCount += 1
        let remaining = s.maxTokens - s.generated.count
        let promptTokens = s.prompt.count + s.generated.count
        guard s.failovers < options.maxFailovers,
              let plan = choosePlan(device: s.device, promptTokens: promptTokens, newTokens: remaining, kind: s.forcedKind, excluding: excluding)
                ?? choosePlan(device: s.device, promptTokens: promptTokens, newTokens: remaining, kind: nil, excluding: excluding) else {
            return finish(s, error: InferenceError(requestId: s.requestId, code: .noRoute, message: "a stage node failed and no other plan is possible"))
        }
        event(.warn, "failover", "\(s.requestId) after \(s.generated.count) tokens: replaying on \(plan.summary)")
        s.replay(on: plan, direct: runsDirect(plan))
        begin(s)
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
        let now = Self.nowSeconds()
        for id in Set(s.plan.nodeIds) {
            live.released(on: id, now: now)
            guard let n = nodes[id] else { continue }
            seq += 1
            try? n.socket.send(Envelope(sender: "router", seq: seq, body: .activation(msg)), dontWait: true)
        }
    }

    /// Streams one token to the requester; the last one closes the session.
    func emit(_ s: Session, token: UInt32, done: Bool) {
        s.generated.append(token)
        let result = TokenResult(requestId: s.requestId, token: token, index: UInt32(s.generated.count - 1), done: done,
                                 text: tokenizer.decode([Int32(bitPattern: token)]), plan: s.plan.kind.rawValue, stageSeconds: s.stageSeconds,
                                 rngState: s.rng.state, expectedS: s.plan.expectedSeconds, planSummary: s.plan.summary)
        deliver(.token(result), to: s.output, finish: done)
        guard done else { return }
        let seconds = Double(Self.now() - s.started) / 1e9
        _ = try? telemetry?.publish(.metric(Metric(name: "inference_latency_s", value: seconds,
                                                   labels: ["plan": s.plan.kind.rawValue, "device": s.device, "tokens": "\(s.generated.count)",
                                                            "expected_s": String(s.plan.expectedSeconds)])))
        release(s)
        sessions.removeValue(forKey: s.requestId)
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
}

/// A router configuration that cannot work.
public enum RouterSetupError: Error, CustomStringConvertible {
    case managerPubMissing
    public var description: String {
        switch self {
        case .managerPubMissing: "--manager needs --manager-pub (the cluster manager's map PUB, e.g. tcp://cluster-manager:5551)"
        }
    }
}
