import Bus
import Foundation
import Messages

/// Registration, heartbeats/liveness and the clone-style cluster map (PUB "map" + snapshot over ROUTER).
/// The loop translates messages into `Directory` calls; nothing else happens here.
public final class ClusterManagerService: @unchecked Sendable {  // safe: state only touched on `loop`
    public struct Options: Sendable {
        public var router: String
        public var pub: String
        public var telemetry: String?
        public var heartbeatMs: Int
        public var liveness: Int
        public var partitions: Int
        public var id: String
        /// Hierarchical: edge ordinal per device ordinal (HierarchyPlan.deviceEdges); empty = flat.
        public var deviceEdges: [Int] = []
        public init(router: String, pub: String, telemetry: String? = nil, heartbeatMs: Int = 1000, liveness: Int = 4,
                    partitions: Int, id: String = "cluster-manager") {
            self.router = router; self.pub = pub; self.telemetry = telemetry; self.heartbeatMs = heartbeatMs
            self.liveness = liveness; self.partitions = partitions; self.id = id
        }
    }

    public let loop: ServiceLoop
    public let routerEndpoint: String
    public let pubEndpoint: String
    let options: Options
    let router: Socket
    let pub: Socket
    let telemetry: TelemetryOut
    var directory: Directory
    var liveness: PeerLiveness<String>
    var seq: UInt64 = 0
    var badMessages = 0
    /// Routing id of a connection → the node id it was assigned.
    var assignedByPeer: [[UInt8]: String] = [:]

    public init(_ options: Options, context: BusContext = .shared) throws {
        self.options = options
        loop = ServiceLoop(name: options.id)
        (router, routerEndpoint) = try Socket.serviceRouter(bind: options.router, context: context)
        pub = try Socket(.pub, context: context)
        pubEndpoint = try pub.bind(options.pub)
        telemetry = try TelemetryOut(endpoint: options.telemetry, sender: options.id, context: context)
        directory = Directory(partitions: options.partitions, deviceEdges: options.deviceEdges)
        liveness = PeerLiveness(interval: .milliseconds(max(1, options.heartbeatMs)), misses: options.liveness)
        loop.add(router) { [unowned self] socket, frames in handle(frames) }
        loop.add(pub) { _, _ in }
        loop.every(.milliseconds(max(1, options.heartbeatMs))) { [unowned self] in expire() }
    }

    public func start() { loop.start() }

    public func stop() {
        loop.post { [self] in telemetry.close() }
        loop.stop()
    }

    /// The current map (for tests and tools).
    public func snapshot() async throws -> ClusterMap { try await loop.perform { self.directory.map(snapshot: true) } }

    func handle(_ frames: [[UInt8]]) {
        let env: Envelope
        do { env = try Envelope.decode(received: frames, prefixCount: 1, limits: serviceDecodeLimits) } catch {
            badMessages += 1
            telemetry.event(.warn, "bad_message", "undecodable message dropped: \(error)")
            return
        }
        let peer = frames[0]
        switch env.body {
        case .register(var r):
            // A node that asks again before its assignment arrived (a slow reply, a heartbeat first) keeps the id it
            // was given: its connection (routing id) names it. Otherwise one process would hold two ids and partitions.
            if r.nodeId.isEmpty, let known = assignedByPeer[peer] { r.nodeId = known }
            let before = directory.mapSeq
            let a = directory.register(r)
            assignedByPeer[peer] = a.nodeId
            liveness.heard(from: a.nodeId)
            reply(.assignment(a), to: env, peer: peer)
            if r.role != .device {
                // A new aggregator: devices waiting without one re-register and pick it up.
                telemetry.event(.info, "register", "\(a.nodeId) (\(r.role)) at \(r.endpoint)")
            }
            if directory.mapSeq != before { publishMap() }
        case .heartbeat(let h):
            if directory.heartbeat(env.sender, load: h.load, round: h.round) {
                liveness.heard(from: env.sender)
                if !liveness.isAlive(env.sender) { publishMap() }
            }
        case .leave:
            liveness.forget(env.sender)
            if directory.markDead([env.sender]) { publishMap() }
        case .snapshotRequest:
            reply(.clusterMap(directory.map(snapshot: true)), to: env, peer: peer)
        case .clusterMap(let m):
            // An aggregator's new cluster assignment (clustered federation): publish it as the next map.
            if directory.setClusters(by: env.sender, Dictionary(m.members.map { ($0.nodeId, $0.cluster) }, uniquingKeysWith: { $1 })) { publishMap() }
        default:
            badMessages += 1
            telemetry.event(.warn, "unexpected", "\(env.body.name) from \(env.sender) ignored")
        }
    }

    func expire() {
        // A liveness signal on the telemetry bus every heartbeat: a tap that joined late still sees the manager.
        telemetry.publish(.metric(Metric(name: "live_nodes", value: Double(directory.liveCount))), kind: "metric")
        let dead = liveness.expire()
        guard !dead.isEmpty else { return }
        if directory.markDead(dead) {
            telemetry.event(.info, "dead", dead.sorted().joined(separator: ", "))
            publishMap()
        }
    }

    func reply(_ body: Body, to env: Envelope, peer: [UInt8]) {
        seq += 1
        do {
            try router.send(Envelope(sender: options.id, seq: seq, replyTo: env.seq, body: body), prefix: [peer], dontWait: true)
        } catch {
            telemetry.event(.warn, "unroutable", "reply to \(env.sender) failed: \(error)")
        }
    }

    func publishMap() {
        seq += 1
        try? pub.send(Envelope(sender: options.id, seq: seq, body: .clusterMap(directory.map())), prefix: [Array("map".utf8)], dontWait: true)
    }
}
