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
    let server: Socket
    var upstream: Socket?
    private var telemetry: TelemetryPublisher?
    var worker: ComputeWorker!
    var seq: UInt64 = 0
    private var ticks = 0
    /// DEALERs to other stage nodes by node id, and the endpoint each dials.
    var peers: [String: (socket: Socket, endpoint: String)] = [:]
    var prober = LinkProber()
    var released = RecentSet(capacity: 4096)
    private var lastActivationProbe: [String: UInt64] = [:]
    private var adapterWatcher: AdapterFolderWatcher?
    /// Multi-access passes this node coordinates (it is their requester), by session; share requests in flight by seq.
    var multiAccessPasses: [String: MultiAccessPass] = [:]
    var multiAccessRequests: [UInt64: String] = [:]
    /// Direct activations for this node itself, collected while results are delivered.
    private var local: [StageActivation] = []
    private var delivering = false
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
        let links = DirectLinks(id: options.id, context: context, router: options.router)
        worker.fastPath = { [weak self] job, out in self?.fastPath(job, out, links) ?? false }
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

    let context: BusContext

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

    func sendUpstream(_ body: Body, delay: Double = 0) {
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
        // Echoes that arrived while this timer waited count first (the loop runs timers before it reads sockets);
        // then overdue transfers lower their link's estimate before this heartbeat reports it.
        for (id, p) in peers {
            while let frames = try? p.socket.receive(dontWait: true) { receivePeer(id, frames) }
        }
        let nowUs = Self.nowUs()
        let probes = options.linkProbes ? prober.probes(to: peers.keys.sorted(), nowUs: nowUs, roundUs: UInt64(interval * 1e6)) : []
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
        for out in probes {
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
    func peer(_ id: String, endpoint: String) -> Socket? {
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
        guard let env = try? Envelope.decode(frames: frames) else { return }
        switch env.body {
        case .probe(let p) where p.echo: prober.echo(p, from: id, nowUs: Self.nowUs())
        case .activation, .error: shareReplied(env, from: id)
        default: break
        }
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
                // To the sender's loop (a compute thread's DEALER, id "<node>#w", reads nothing).
                let bytes = frames.dropFirst().reduce(0) { $0 + $1.count }, node = from.hasSuffix("#w") ? String(from.dropLast(2)) : from
                reply(to: Array(node.utf8), from: node, replyTo: 0, .probe(Probe(id: 0, sentUs: a.probeSentUs, size: UInt32(bytes), echo: true)))
            }
            if StageCompute.isRelease(a) {
                released.insert(a.sessionId)
                multiAccessPasses.removeValue(forKey: a.sessionId)
                worker.submit(.release(a.sessionId))
            } else if released.contains(a.sessionId) {
                break
            } else if a.direct, Self.isMultiAccess(a) {
                beginMultiAccess(a)
            } else {
                worker.submit(.activation(.init(activation: a, peer: peer, replyTo: env.seq)))
            }
        default:
            break
        }
    }

    func reply(to peer: [UInt8], from id: String, replyTo: UInt64, _ body: Body) {
        seq += 1
        let env = Envelope(sender: options.id, seq: seq, replyTo: replyTo, body: body)
        later(options.linkLatency[id] ?? 0) { [server] in try? server.send(env, prefix: [peer], dontWait: true) }
    }

    private func deliver(_ results: ComputeWorker.Results) {
        // Next passes that stay on this node go back to the compute thread together, as one batch, before the
        // token reports go out.
        local = []
        delivering = true
        var reports: [(Body, Double)] = []
        for (job, result) in results {
            let a = job.activation
            if job.coordinated {
                multiAccessComputed(a, result)
                continue
            }
            switch result {
            case .failure(let e):
                let error = InferenceError(requestId: a.sessionId, code: e.code, message: "\(options.id): \(e.message)")
                if a.direct { sendUpstream(.error(error)) } else { reply(to: job.peer, from: String(decoding: job.peer, as: UTF8.self), replyTo: job.replyTo, .error(error)) }
            case .success(let out) where !a.direct:
                var r = a
                r.tokens = []
                r.hidden = out.tensor
                reply(to: job.peer, from: String(decoding: job.peer, as: UTF8.self), replyTo: job.replyTo, .activation(r))
            case .success(let out):
                switch a.directStep(out, contextLength: config.contextLength) {
                case .forward(let next): forward(next)
                case .token(let result, let next):
                    reports.append((.token(result), options.linkLatency[a.requester] ?? 0))
                    if let next, !released.contains(a.sessionId) { forward(next) }
                }
            }
        }
        delivering = false
        worker.submit(contentsOf: local.map { .activation(.init(activation: $0, peer: [], replyTo: 0)) })
        local = []
        for (body, delay) in reports { sendUpstream(body, delay: delay) }
    }

    /// On the compute thread: a direct output goes straight on (to the next stage's socket, the router, or this node's
    /// own queue) when no emulated delay applies; anything else is left to `deliver` on the loop.
    private func fastPath(_ job: ComputeWorker.Inbound, _ out: StageCompute.Output, _ links: DirectLinks) -> Bool {
        let probed: (String, UInt64, Int) -> Void = { [weak self] peer, sentUs, bytes in
            self?.loop.post { [weak self] in self?.prober.sentActivation(to: peer, sentUs: sentUs, bytes: bytes) }
        }
        func send(_ next: StageActivation) -> Bool {
            guard let target = next.target else { return true }
            if target.nodeId == options.id { worker.requeue(next); return true }
            return (options.linkLatency[target.nodeId] ?? 0) == 0 && links.forward(next, probed: probed)
        }
        switch job.activation.directStep(out, contextLength: config.contextLength) {
        case .forward(let next):
            return send(next)
        case .token(let result, let next):
            guard (options.linkLatency[job.activation.requester] ?? 0) == 0, links.report(.token(result)) else { return false }
            if let next, !send(next) { loop.post { [weak self] in self?.forward(next) } }
            return true
        }
    }

    /// Sends a direct activation to the stage it names (this node itself without a socket).
    func forward(_ next: StageActivation, attempt: Int = 0) {
        guard Int(next.stageIndex) < next.plan.count else { return }
        let target = next.plan[Int(next.stageIndex)]
        if target.nodeId == options.id {
            if delivering { local.append(next) } else { worker.submit(.activation(.init(activation: next, peer: [], replyTo: 0))) }
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
        if a.probeSentUs != 0 { prober.sentActivation(to: target.nodeId, sentUs: nowUs, bytes: frames.reduce(0) { $0 + $1.count }) }
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
    func later(_ delay: Double, _ work: @escaping () -> Void) {
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
