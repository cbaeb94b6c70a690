import Bus
import Messages

/// The cluster manager's device → cluster map, followed Clone style (pure): updates from the PUB apply in
/// sequence order, a snapshot (the manager's reply to SnapshotRequest) replaces everything. A manager that
/// restarted numbers its maps from 1 again; its snapshot is taken even though its sequence number went back.
public struct ClusterMapReplica: Sendable, Equatable {
    public private(set) var mapSeq: UInt64 = 0
    public private(set) var members: [String: ClusterMember] = [:]
    public private(set) var haveSnapshot = false

    public init() {}

    /// Applies a map; returns false for an update older than what we have.
    @discardableResult
    public mutating func apply(_ map: ClusterMap) -> Bool {
        guard map.snapshot || map.mapSeq > mapSeq else { return false }
        if map.snapshot { haveSnapshot = true }
        mapSeq = map.mapSeq
        members = Dictionary(map.members.map { ($0.nodeId, $0) }, uniquingKeysWith: { $1 })
        return true
    }

    /// The cluster of an alive device, nil when the map does not list it as one.
    public func cluster(of device: String) -> UInt32? {
        guard let m = members[device], m.alive, m.role == .device else { return nil }
        return m.cluster
    }
}

/// The router's link to the cluster manager: a SUB on the map PUB ("map" topic) and a DEALER to its ROUTER for
/// snapshots (one at start, then one every `resyncEvery` ticks, so a missed update or a restarted manager heals).
final class ClusterFollower: @unchecked Sendable {  // safe: used only on the router's loop
    let sub: Socket
    let dealer: Socket
    var replica = ClusterMapReplica()
    private var seq: UInt64 = 0
    private var ticks = 0
    let resyncEvery = 10

    init(manager: String, managerPub: String, id: String, context: BusContext) throws {
        sub = try Socket(.sub, context: context)
        try sub.subscribe("map")
        try sub.connect(managerPub)
        dealer = try Socket(.dealer, context: context)
        try dealer.set(.routingId(Array(id.utf8)))
        try dealer.connect(manager)
    }

    func attach(to loop: ServiceLoop, onChange: @escaping () -> Void) {
        loop.add(sub) { [unowned self] _, frames in
            if let env = try? Envelope.decode(received: frames, prefixCount: 1), case .clusterMap(let m) = env.body, replica.apply(m) { onChange() }
        }
        loop.add(dealer) { [unowned self] _, frames in
            if let env = try? Envelope.decode(frames: frames), case .clusterMap(let m) = env.body, replica.apply(m) { onChange() }
        }
        loop.post { [self] in requestSnapshot() }
    }

    /// Called every heartbeat.
    func tick() {
        ticks += 1
        if ticks % resyncEvery == 0 || !replica.haveSnapshot { requestSnapshot() }
    }

    private func requestSnapshot() {
        seq += 1
        try? dealer.send(Envelope(sender: "inference-router", seq: seq, body: .snapshotRequest(SnapshotRequest(topic: "map"))), dontWait: true)
    }
}
