import Bus
import Dispatch
import Engine
import Foundation
import Messages

/// Settings of one stage node (flags of `stage-node`).
public struct StageNodeOptions: Sendable {
    public var id: String
    public var role: NodeRole
    /// ROUTER the node serves activations on.
    public var bind: String
    /// The inference router's ROUTER to register and heartbeat with (nil: serve without registering).
    public var router: String?
    /// FLOP/s this node claims before it has measured itself; with `emulateCompute`, the speed it emulates.
    public var flops: Double
    /// Emulation knob: background load 0...1 (the node computes at flops · (1 − load)). Never reported as such:
    /// the node reports what it measures.
    public var load: Double
    /// Sleep so each call takes FLOPs / (flops · (1 − load)) wall seconds when the real compute is faster.
    public var emulateCompute: Bool
    public var heartbeatInterval: Duration
    /// PUB to the telemetry proxy's XSUB.
    public var telemetry: String?
    /// Endpoint the router and peers should dial (Register.endpoint); nil = the bound endpoint (wrong for 0.0.0.0 binds).
    public var advertise: String?
    /// Most blocks this node holds (reported as Capabilities.layersCapacity); nil = the whole model.
    public var maxLayers: Int?
    /// Admission control: most sessions at once (0 = no limit).
    public var maxSessions = 64
    /// One-way propagation delay added before every send to a peer, by node id (the testbed adds delay in user
    /// space because these kernels have no netem).
    public var linkLatency: [String: Double] = [:]
    /// A device's radio state from the scenario's channel model, reported with each heartbeat.
    public var radio: RadioState?
    /// Folder of `cluster-<k>/` adapters, re-read when they change.
    public var adapterFolder: URL?
    /// Measure the compute speed with a small forward pass after an idle heartbeat interval.
    public var speedProbes = true
    /// Link probes to the other stage nodes on every heartbeat.
    public var linkProbes = true

    public init(id: String, role: NodeRole, bind: String, router: String? = nil, flops: Double = 1e9, load: Double = 0,
                emulateCompute: Bool = false, heartbeatInterval: Duration = .seconds(1), telemetry: String? = nil, advertise: String? = nil) {
        self.id = id; self.role = role; self.bind = bind; self.router = router; self.flops = flops; self.load = load
        self.emulateCompute = emulateCompute; self.heartbeatInterval = heartbeatInterval; self.telemetry = telemetry
        self.advertise = advertise
    }
}

extension NodeRole {
    public var wireRole: Role {
        switch self {
        case .device: .device
        case .edge: .edgeServer
        case .cloud: .cloudServer
        }
    }

    public init?(wire: Role) {
        switch wire {
        case .device: self = .device
        case .edgeServer, .edgeAggregator: self = .edge
        case .cloudServer, .cloudAggregator: self = .cloud
        default: return nil
        }
    }
}

/// A stage node: serves layer ranges, embed/head and multi-access shares of the base model over a ROUTER,
/// registers with the inference router and heartbeats what it measures: its load (busy fraction, queue, sessions),
/// its compute speed, its links to the other stage nodes (probes) and, on a device, its radio state.
///
/// Two ways to be driven. Hub: the router sends each stage its input and gets the output back. Direct: the router
/// sends the first activation of a plan and each stage forwards its output to the next stage's endpoint; the last
/// stage draws the token, reports it to the router and feeds it back to the first stage, so the router is out of
/// the data path. Compute runs on its own thread (`ComputeWorker`), never on the loop thread, so heartbeats and
/// probe echoes keep flowing during a long prefill.
public final class StageServer: @unchecked Sendable {  // safe: loop state is loop-confined; the worker guards its own
    public let loop: ServiceLoop
    public let endpoint: String
    public let options: StageNodeOptions
    let config: ModelConfig
    private let server: Socket
    private var upstream: Socket?
    private var telemetry: TelemetryPublisher?
    private var worker: ComputeWorker!
    private var seq: UInt64 = 0
    private var ticks = 0
    /// DEALERs to other stage nodes by node id, and the endpoint each dials.
    private var peers: [String: (socket: Socket, endpoint: String)] = [:]
    private var prober = LinkProber()
    private var released = RecentSet(capacity: 4096)
    private var lastActivationProbe: [String: UInt64] = [:]
    private var adapterWatcher: AdapterFolderWatcher?
    private let startedAt = ComputeWorker.now()

    public init(model: LanguageModel, adapters: [UInt32: LoRAAdapter] = [:], options: StageNodeOptions, context: BusContext = .shared) throws {
        self.options = options
        self.context = context
        config = model.config
        loop = ServiceLoop(name: "stage-\(options.id)")
        (server, endpoint) = try Socket.serviceRouter(bind: options.bind, context: context)
        var initial = adapters
        if let dir = options.adapterFolder {
            var watcher = AdapterFolderWatcher(directory: dir, config: model.config)
            for (k, a) in watcher.changes() { initial[k] = a }
            adapterWatcher = watcher
        }
        let compute = StageCompute(model: model, adapters: initial, maxSessions: options.maxSessions)
        let window = max(Double(options.heartbeatInterval.components.seconds) + Double(options.heartbeatInterval.components.attoseconds) / 1e18, 0.05)
        worker = ComputeWorker(compute: compute, window: window, emulation: options.emulateCompute ? (options.flops, options.load) : nil) { [loop] results in
            loop.post { [weak self] in self?.deliver(results) }
        }
        loop.add(server) { [weak self] _, frames in self?.receive(frames) }
        if let router = options.router {
            let dealer = try Socket(.dealer, context: context)
            try dealer.set(.routingId(Array(options.id.utf8)))
            try dealer.connect(router)
            upstream = dealer
            loop.add(dealer) { [weak self] _, frames in self?.receiveUpstream(frames) }
        }
        if let t = options.telemetry { telemetry = try TelemetryPublisher(connect: t, sender: options.id, context: context) }
        loop.every(options.heartbeatInterval) { [weak self] in self?.heartbeat() }
        loop.start()
        loop.post { [self] in register() }
    }

    private let context: BusContext

    /// Stops serving: closes the sockets (the router sees missed heartbeats and plans around this node).
    public func stop() {
        worker.stop()
        loop.stop()
    }

    /// Tells the router this node is going (it replans at once instead of waiting for missed heartbeats), then stops.
    public func leave(reason: String = "shutdown") {
        loop.post { [self] in sendUpstream(.leave(Leave(reason: reason))) }
        stop()
    }

    /// Changes the emulated background load (emulation knob; the node reports what it then measures).
    public func setLoad(_ load: Double) { worker.setLoad(load) }

    // MARK: registration, heartbeats, probes

    private func register() {
        let caps = Capabilities(flops: options.flops, layersCapacity: UInt32(max(1, options.maxLayers ?? config.layers)))
        sendUpstream(.register(Register(role: options.role.wireRole, nodeId: options.id, caps: caps, endpoint: options.advertise ?? endpoint)))
    }

    private func sendUpstream(_ body: Body, delay: Double = 0) {
        guard let upstream else { return }
        seq += 1
        let env = Envelope(sender: options.id, seq: seq, body: body)
        later(delay) { try? upstream.send(env, dontWait: true) }
    }

    private func heartbeat() {
        ticks += 1
        if ticks % 10 == 0 { register() }  // a restarted router learns the endpoint again
        let now = ComputeWorker.now()
        if var w = adapterWatcher {
            for (k, a) in w.changes() { worker.submit(.adapter(k, a)) }
            adapterWatcher = w
        }
        let s = worker.snapshot(now: now)
        let interval = worker.window
        if options.speedProbes, s.queue == 0, now - max(s.lastWork, startedAt) >= interval || s.flops == nil { worker.submit(.speedProbe) }
        var links = prober.reports()
        if let radio = options.radio, let r = try? radio.report(at: now - startedAt) { links.append(r) }
        let live = NodeLoad(busy: s.busy, queue: UInt32(s.queue), flopsMeasured: s.flops ?? 0, sessions: UInt32(s.sessions),
                            maxSessions: UInt32(max(0, options.maxSessions)), windowS: interval)
        sendUpstream(.heartbeat(Heartbeat(load: s.busy, live: live, links: links)))
        _ = try? telemetry?.publish(.load(LoadReport(load: s.busy, flops: s.flops ?? 0, queue: UInt32(s.queue))))
        if let mem = ProcessMemory.resident() {  // resident memory of this node (weights are memory-mapped: what it touched)
            _ = try? telemetry?.publish(.metric(Metric(name: "resident_bytes", value: Double(mem.current), labels: ["node": options.id])))
            _ = try? telemetry?.publish(.metric(Metric(name: "peak_resident_bytes", value: Double(mem.peak), labels: ["node": options.id])))
        }
        for l in links {
            _ = try? telemetry?.publish(.channel(ChannelState(link: "\(options.id)->\(l.peer)", rateBps: l.rateBps, snrDb: l.snrDb, rttS: l.rttS)))
        }
        guard options.linkProbes else { return }
        let nowUs = Self.nowUs()
        for out in prober.probes(to: peers.keys.sorted(), nowUs: nowUs, roundUs: UInt64(interval * 1e6)) {
            guard let p = peers[out.peer] else { continue }
            seq += 1
            let frames = Envelope(sender: options.id, seq: seq, body: .probe(out.probe)).encodeFrames()
            later(options.linkLatency[out.peer] ?? 0) { try? p.socket.send(frames, dontWait: true) }
        }
    }

    /// The router's list of stage nodes: dial every other live node (forwarding and probes), forget the rest.
    private func receiveUpstream(_ frames: [[UInt8]]) {
        guard let env = try? Envelope.decode(frames: frames), case .clusterMap(let map) = env.body else { return }
        var listed = Set<String>()
        for m in map.members where m.alive && m.nodeId != options.id && !m.endpoint.isEmpty {
            listed.insert(m.nodeId)
            _ = peer(m.nodeId, endpoint: m.endpoint)
        }
        for id in peers.keys where !listed.contains(id) {
            if let p = peers.removeValue(forKey: id) { loop.remove(p.socket) }
            prober.forget(id)
        }
    }

    /// The DEALER to peer `id` (re-dialled when its endpoint changes); nil when it cannot be made.
    private func peer(_ id: String, endpoint: String) -> Socket? {
        if let p = peers[id], p.endpoint == endpoint || endpoint.isEmpty { return p.socket }
        guard !endpoint.isEmpty else { return nil }
        if let old = peers.removeValue(forKey: id) { loop.remove(old.socket) }
        do {
            let s = try Socket(.dealer, context: context)
            try s.set(.routingId(Array(options.id.utf8)))
            try s.set(.immediate(true))  // a send to a dead peer fails at once instead of queueing
            try s.connect(endpoint)
            loop.add(s) { [weak self] _, frames in self?.receivePeer(id, frames) }
            peers[id] = (s, endpoint)
            return s
        } catch {
            loop.onError(error)
            return nil
        }
    }

    private func receivePeer(_ id: String, _ frames: [[UInt8]]) {
        guard let env = try? Envelope.decode(frames: frames), case .probe(let p) = env.body, p.echo else { return }
        prober.echo(p, from: id, nowUs: Self.nowUs())
    }

    // MARK: activations

    private func receive(_ frames: [[UInt8]]) {
        guard frames.count >= 2 else { return }
        let peer = frames[0]
        let env: Envelope
        do { env = try Envelope.decode(received: frames, prefixCount: 1) } catch { return }  // counted by the decoder
        let from = String(decoding: peer, as: UTF8.self)
        switch env.body {
        case .probe(let p) where !p.echo:
            reply(to: peer, from: from, replyTo: 0, .probe(Probe(id: p.id, sentUs: p.sentUs, size: p.size, echo: true)))
        case .activation(let a):
            if a.probeSentUs != 0 {
                let bytes = frames.dropFirst().reduce(0) { $0 + $1.count }
                reply(to: peer, from: from, replyTo: 0, .probe(Probe(id: 0, sentUs: a.probeSentUs, size: UInt32(bytes), echo: true)))
            }
            if StageCompute.isRelease(a) {
                released.insert(a.sessionId)
                worker.submit(.release(a.sessionId))
            } else if !released.contains(a.sessionId) {
                worker.submit(.activation(.init(activation: a, peer: peer, replyTo: env.seq)))
            }
        default:
            break
        }
    }

    private func reply(to peer: [UInt8], from id: String, replyTo: UInt64, _ body: Body) {
        seq += 1
        let env = Envelope(sender: options.id, seq: seq, replyTo: replyTo, body: body)
        later(options.linkLatency[id] ?? 0) { [server] in try? server.send(env, prefix: [peer], dontWait: true) }
    }

    private func deliver(_ results: ComputeWorker.Results) {
        for (job, result) in results {
            let a = job.activation
            switch result {
            case .failure(let e):
                let error = InferenceError(requestId: a.sessionId, code: e.code, message: "\(options.id): \(e.message)")
                if a.direct { sendUpstream(.error(error)) } else { reply(to: job.peer, from: String(decoding: job.peer, as: UTF8.self), replyTo: job.replyTo, .error(error)) }
            case .success(let out):
                if !a.direct {
                    var r = a
                    r.tokens = []
                    r.hidden = out.tensor
                    reply(to: job.peer, from: String(decoding: job.peer, as: UTF8.self), replyTo: job.replyTo, .activation(r))
                } else if let token = out.token {
                    drew(token, rngState: out.rngState, for: a)
                } else {
                    var next = a
                    next.stageIndex += 1
                    next.tokens = []
                    next.hidden = out.tensor
                    forward(next)
                }
            }
        }
    }

    /// Direct mode, last stage: report the token to the router and start the next pass at the first stage.
    private func drew(_ token: UInt32, rngState: UInt64, for a: StageActivation) {
        let st = a.plan[Int(a.stageIndex)]
        let T = st.embed ? a.tokens.count : Int(a.hidden?.shape.first ?? 1)
        let position = Int(a.position) + T
        let done = a.remaining <= 1 || position >= config.contextLength
        let result = TokenResult(requestId: a.sessionId, token: token, index: a.tokenIndex, done: done, rngState: rngState)
        sendUpstream(.token(result), delay: options.linkLatency[a.requester] ?? 0)
        guard !done, !released.contains(a.sessionId) else { return }
        forward(StageActivation(sessionId: a.sessionId, position: UInt32(position), tokens: [token], plan: a.plan, stageIndex: 0,
                                cluster: a.cluster, direct: true, sampling: a.sampling, rngState: rngState, remaining: a.remaining - 1,
                                tokenIndex: a.tokenIndex + 1, requester: a.requester))
    }

    /// Sends a direct activation to the stage it names (this node itself without a socket).
    private func forward(_ next: StageActivation, attempt: Int = 0) {
        guard Int(next.stageIndex) < next.plan.count else { return }
        let target = next.plan[Int(next.stageIndex)]
        if target.nodeId == options.id {
            worker.submit(.activation(.init(activation: next, peer: [], replyTo: 0)))
            return
        }
        guard let socket = peer(target.nodeId, endpoint: target.endpoint) else { return unreachable(target.nodeId, next) }
        var a = next
        let nowUs = Self.nowUs()
        if nowUs &- (lastActivationProbe[target.nodeId] ?? 0) > 50_000 {  // a link sample riding on real traffic
            a.probeSentUs = nowUs
            lastActivationProbe[target.nodeId] = nowUs
        }
        seq += 1
        let frames = Envelope(sender: options.id, seq: seq, body: .activation(a)).encodeFrames()
        later(options.linkLatency[target.nodeId] ?? 0) { [weak self] in
            do { try socket.send(frames, dontWait: true) } catch {
                // Not connected (just dialled, or the peer died): retry for half a second, then tell the router.
                guard let self, !released.contains(next.sessionId) else { return }
                if attempt < 25 { loop.after(.milliseconds(20)) { self.forward(next, attempt: attempt + 1) } } else { unreachable(target.nodeId, next) }
            }
        }
    }

    private func unreachable(_ node: String, _ a: StageActivation) {
        sendUpstream(.error(InferenceError(requestId: a.sessionId, code: .nodeFailed, message: "\(options.id): next stage \(node) is unreachable",
                                           nodeId: node)))
    }

    /// Runs `work` on the loop after the emulated propagation delay (at once without one).
    private func later(_ delay: Double, _ work: @escaping () -> Void) {
        if delay > 0 { loop.after(.microseconds(Int64(delay * 1e6)), work) } else { work() }
    }

    static func nowUs() -> UInt64 { DispatchTime.now().uptimeNanoseconds / 1000 }
}

/// A set that remembers only its newest `capacity` members.
struct RecentSet {
    let capacity: Int
    private var members = Set<String>()
    private var order: [String] = []

    init(capacity: Int) { self.capacity = capacity }

    func contains(_ s: String) -> Bool { members.contains(s) }

    mutating func insert(_ s: String) {
        guard members.insert(s).inserted else { return }
        order.append(s)
        if order.count > capacity { members.remove(order.removeFirst()) }
    }
}
