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
    /// Sustained FLOP/s this node stands for (reported, and used to emulate compute time).
    public var flops: Double
    /// Background load 0...1 this node reports (its usable share is 1 − load).
    public var load: Double
    /// Sleep so each call takes FLOPs / (flops · (1 − load)) wall seconds when the real compute is faster.
    public var emulateCompute: Bool
    public var heartbeatInterval: Duration
    /// PUB to the telemetry proxy's XSUB.
    public var telemetry: String?
    /// Endpoint the router should dial (Register.endpoint); nil = the bound endpoint (wrong for 0.0.0.0 binds).
    public var advertise: String?
    /// Most blocks this node holds (reported as Capabilities.layersCapacity); nil = the whole model.
    public var maxLayers: Int?

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
/// registers with the inference router and heartbeats its load. Compute runs on a serial queue (one model,
/// one thread), never on the loop thread, so heartbeats keep flowing during a long prefill.
///
/// Compute emulation (bench): after the real compute the queue sleeps max(0, modeled − real), modeled =
/// FLOPs / (flops · (1 − load)). The queue is serial, so a busy node also delays the calls queued behind.
public final class StageServer: @unchecked Sendable {  // safe: loop state is loop-confined; `compute` only on `queue`
    public let loop: ServiceLoop
    public let endpoint: String
    public let options: StageNodeOptions
    private let compute: StageCompute
    private let queue: DispatchQueue
    private let server: Socket
    private var upstream: Socket?
    private var telemetry: TelemetryPublisher?
    private var seq: UInt64 = 0
    private var ticks = 0
    private let stateLock = NSLock()
    private var currentLoad: Double
    private var queued = 0

    public init(model: LanguageModel, adapters: [UInt32: LoRAAdapter] = [:], options: StageNodeOptions, context: BusContext = .shared) throws {
        self.options = options
        compute = StageCompute(model: model, adapters: adapters)
        currentLoad = options.load
        queue = DispatchQueue(label: "stage-\(options.id)")
        loop = ServiceLoop(name: "stage-\(options.id)")
        (server, endpoint) = try Socket.serviceRouter(bind: options.bind, context: context)
        loop.add(server) { [weak self] socket, frames in self?.receive(frames) }
        if let router = options.router {
            let dealer = try Socket(.dealer, context: context)
            try dealer.set(.routingId(Array(options.id.utf8)))
            try dealer.connect(router)
            upstream = dealer
            loop.add(dealer) { _, _ in }  // the router sends nothing back on this socket today
        }
        if let t = options.telemetry { telemetry = try TelemetryPublisher(connect: t, sender: options.id, context: context) }
        loop.every(options.heartbeatInterval) { [weak self] in self?.heartbeat() }
        loop.start()
        loop.post { [self] in register() }
    }

    /// Stops serving: closes the sockets (the router sees missed heartbeats and plans around this node).
    public func stop() { loop.stop() }

    /// Tells the router this node is going (it replans at once instead of waiting for missed heartbeats), then stops.
    public func leave(reason: String = "shutdown") {
        loop.post { [self] in
            seq += 1
            try? upstream?.send(Envelope(sender: options.id, seq: seq, body: .leave(Leave(reason: reason))), dontWait: true)
        }
        loop.stop()
    }

    /// Changes the background load this node reports and emulates.
    public func setLoad(_ load: Double) {
        stateLock.lock(); currentLoad = min(max(load, 0), 0.99); stateLock.unlock()
    }

    private var load: Double { stateLock.lock(); defer { stateLock.unlock() }; return currentLoad }

    private func register() {
        guard let upstream else { return }
        seq += 1
        let caps = Capabilities(flops: options.flops, layersCapacity: UInt32(max(1, options.maxLayers ?? compute.model.config.layers)))
        let reg = Register(role: options.role.wireRole, nodeId: options.id, caps: caps, endpoint: options.advertise ?? endpoint)
        try? upstream.send(Envelope(sender: options.id, seq: seq, body: .register(reg)), dontWait: true)
    }

    private func heartbeat() {
        ticks += 1
        if ticks % 10 == 0 { register() }  // a restarted router learns the endpoint again
        let l = load
        if let upstream {
            seq += 1
            try? upstream.send(Envelope(sender: options.id, seq: seq, body: .heartbeat(Heartbeat(load: l))), dontWait: true)
        }
        _ = try? telemetry?.publish(.load(LoadReport(load: l, flops: options.flops, queue: UInt32(queued))))
    }

    private func receive(_ frames: [[UInt8]]) {
        guard frames.count >= 2 else { return }
        let peer = frames[0]
        let env: Envelope
        do { env = try Envelope.decode(received: frames, prefixCount: 1) } catch { return }  // counted by the decoder
        guard case .activation(let act) = env.body else { return }
        if StageCompute.isRelease(act) {
            queue.async { [self] in compute.release(session: act.sessionId) }
            return
        }
        queued += 1
        let replyTo = env.seq, emulate = options.emulateCompute, flops = options.flops, l = load
        queue.async { [self] in
            let start = DispatchTime.now().uptimeNanoseconds
            let body: Body
            do {
                let out = try compute.run(act)
                if emulate {
                    let modeled = out.flops / (flops * max(0.01, 1 - l))
                    let real = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                    if modeled > real { usleep(UInt32(min((modeled - real) * 1e6, 60e6))) }
                }
                var reply = act
                reply.tokens = []
                reply.hidden = out.tensor
                body = .activation(reply)
            } catch let e as StageError {
                body = .error(InferenceError(requestId: act.sessionId, code: e.code, message: "\(options.id): \(e.message)"))
            } catch {
                body = .error(InferenceError(requestId: act.sessionId, code: .internal, message: "\(options.id): \(error)"))
            }
            loop.post { [self] in
                queued -= 1
                seq += 1
                try? server.send(Envelope(sender: options.id, seq: seq, replyTo: replyTo, body: body), prefix: [peer], dontWait: true)
            }
        }
    }
}
