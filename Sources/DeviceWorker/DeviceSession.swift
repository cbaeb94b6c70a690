import Bus
import Federation
import Foundation
import Messages

/// A model a host received, decoded once and shared by every device of the host that was sent it.
final class HeldModel: Sendable {
    let sender: String
    let round: UInt64
    let version: UInt64
    let cluster: UInt32
    let tensorNames: [String]
    let layout: ParameterLayout
    let parameters: [Float]

    init(sender: String, _ m: ModelBroadcast) throws {
        self.sender = sender
        round = m.round; version = m.modelVersion; cluster = m.cluster
        tensorNames = m.tensors.map(\.name)
        layout = try ParameterLayout(m.tensors.map { ParameterLayout.Entry(name: $0.name, shape: $0.shape) })
        var flat: [Float] = []
        flat.reserveCapacity(layout.count)
        for t in m.tensors { flat += try t.floats() }
        parameters = flat
    }

    struct Key: Hashable { var sender: String; var version: UInt64; var cluster: UInt32 }
    var key: Key { Key(sender: sender, version: version, cluster: cluster) }
}

/// One virtual device's conversation with the cluster manager and its aggregator: an ordinary participant with its
/// own sockets and node id. State only touched on the host's loop.
final class DeviceSession: @unchecked Sendable {  // safe: only touched on the host's loop (jobs capture it to post back there)
    let slot: Int
    var device: VirtualDevice
    let manager: Socket
    var aggregator: Socket?
    var aggregatorEndpoint = ""
    var assignment: Assignment?
    /// The newest models, by cluster (an IFCA task or an edge's relayed evaluation sends several of one round).
    var models: [UInt32: HeldModel] = [:]
    var announcement: RoundAnnouncement?
    var trainedRound: UInt64 = 0
    var pendingEval: EvalRequest?
    var evaluatingRound: UInt64?
    /// The last evaluation sent, repeated when the same round is asked again (a restarted aggregator).
    var lastEval: EvalResult?
    /// The upload waiting for its acknowledgement (resent until then; the aggregator counts a retry once).
    var upload: (round: UInt64, envelope: Envelope, sentAt: Double)?
    var lastModelRequest = -Double.infinity
    /// A training or evaluation job of this device is queued or running.
    var busy = false
    /// Holds one of the host's slots for an update in flight (training, or uploaded and not yet acknowledged).
    var holdsSlot = false
    /// Waits for a slot.
    var admitting = false
    var seq: UInt64 = 0
    /// The current task's privacy stage (clip, noise, secure aggregation).
    var privacyStage: DevicePrivacyStage?
    /// Sends nothing more to its aggregator (fault injection, see `DeviceWorkerService.Options.afterSharing`).
    var silent = false

    init(slot: Int, device: VirtualDevice, manager: Socket) {
        self.slot = slot; self.device = device; self.manager = manager
    }

    var nodeId: String { device.id }

    func sendToManager(_ body: Body) {
        seq += 1
        try? manager.send(Envelope(sender: nodeId, seq: seq, body: body), dontWait: true)
    }

    func sendToAggregator(_ body: Body) {
        guard !silent else { return }
        seq += 1
        try? aggregator?.send(Envelope(sender: nodeId, seq: seq, body: body), dontWait: true)
    }

    /// The announced round this device still has to train, if it holds every model the task names.
    enum Next { case train(RoundAnnouncement, [HeldModel]), evaluate(EvalRequest, HeldModel), needModel, nothing }

    func next() -> Next {
        if let r = announcement, r.round > trainedRound, r.participants.isEmpty || r.participants.contains(nodeId) {
            let wanted = r.candidateClusters.isEmpty ? [r.cluster] : r.candidateClusters
            let held = wanted.compactMap { c in models[c].flatMap { $0.version == r.modelVersion ? $0 : nil } }
            return held.count == wanted.count ? .train(r, held) : .needModel
        }
        if let e = pendingEval {
            guard let m = models[e.cluster], m.round >= e.round else { return .needModel }
            return .evaluate(e, m)
        }
        return .nothing
    }

    /// A model arrived: a newer round's models replace every older one.
    func hold(_ m: HeldModel) {
        guard m.version >= (models[m.cluster]?.version ?? 0) else { return }
        if let newest = models.values.map(\.version).max(), m.version > newest { models = [:] }
        models[m.cluster] = m
    }
}
