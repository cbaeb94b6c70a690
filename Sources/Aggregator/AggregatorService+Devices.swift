import ClusterManager
import Federation
import Foundation
import Messages

// The device side of the aggregator: uploads (validated, idempotent), model requests, eval results.
extension AggregatorService {
    // MARK: devices (ROUTER)

    func handleRouter(_ frames: [[UInt8]]) {
        let peer = frames[0]
        let size = frames.dropFirst().reduce(0) { $0 + $1.count }
        let env: Envelope
        do { env = try Envelope.decode(received: frames, prefixCount: 1, limits: serviceDecodeLimits) } catch {
            roundBytesUp += size
            let d = coordinator.reject(kind: "undecodable", reason: "\(error)")
            telemetry.event(.warn, "rejected", "undecodable upload: \(error)")
            reply(.ack(UpdateAck(round: 0, accepted: false, reason: "\(d)")), replyTo: 0, peer: peer)
            return
        }
        if let driver {
            switch env.body {
            case .update(let u):
                let decision = driver.upload(u, from: env.sender, bytes: size)
                acknowledge(decision, round: u.round, from: env.sender, replyTo: env.seq, peer: peer)
                return
            case .modelRequest: driver.modelRequest(from: env.sender); return
            case .evalResult(let r): driver.evalResult(r, from: env.sender); return
            default: break
            }
        }
        switch env.body {
        case .update(let u):
            roundBytesUp += size
            let decision = submit(u, from: env.sender, bytes: size)
            switch decision {
            case .accepted: reply(.ack(UpdateAck(round: u.round, accepted: true)), replyTo: env.seq, peer: peer)
            case .duplicate: reply(.ack(UpdateAck(round: u.round, accepted: true, duplicate: true)), replyTo: env.seq, peer: peer)
            case .rejected(let kind, let reason):
                telemetry.event(.warn, "rejected", "update from \(env.sender) round \(u.round): \(kind): \(reason)")
                reply(.ack(UpdateAck(round: u.round, accepted: false, reason: "\(kind): \(reason)")), replyTo: env.seq, peer: peer)
            }
            if case .training = phase, coordinator.shouldClose(now: Self.now()) { closeRound(now: Self.now()) }
        case .modelRequest:
            if let r = coordinator.current { reply(.round(announcement(r)), replyTo: env.seq, peer: peer) }
            var round = coordinator.current?.round ?? coordinator.completedRound
            if case .evaluating(let r, _) = phase { round = r }
            var m = modelEnvelope(round: round)
            seq += 1
            m.seq = seq; m.replyTo = env.seq
            roundBytesDown += m.encodeFrames().reduce(0) { $0 + $1.count }
            try? router.send(m, prefix: [peer], dontWait: true)
        case .evalResult(let r):
            if relayEvalResult(r, from: env.sender) { return }
            if case .evaluating(let round, _) = phase, r.round == round { evalResults[env.sender] = r }
        default:
            telemetry.event(.warn, "unexpected", "\(env.body.name) from \(env.sender) ignored")
        }
    }

    func submit(_ u: UpdateUpload, from device: String, bytes: Int) -> RoundCoordinator.Decision {
        if let problem = AdapterWire.mismatch(u.delta, layout: coordinator.global.layout) {
            let total = u.delta.reduce(0) { $0 + ($1.elementCount ?? 0) }
            if total > coordinator.global.layout.count {
                return coordinator.reject(kind: "too_large", reason: "update has \(total) parameters, the adapter \(coordinator.global.layout.count)")
            }
            return coordinator.reject(kind: "wrong_shape", reason: problem)
        }
        let delta: [Float]
        do { delta = try AdapterWire.flat(u.delta) } catch {
            return coordinator.reject(kind: "undecodable", reason: "\(error)")
        }
        let update = ModelUpdate(device: device, round: u.round, samples: Int(clamping: u.samples), baseVersion: u.baseVersion,
                                 delta: delta, loss: u.trainLoss)
        return coordinator.submit(update, computeS: u.computeS, bytes: bytes)
    }

    func acknowledge(_ decision: RoundCoordinator.Decision, round: UInt64, from sender: String, replyTo: UInt64, peer: [UInt8]) {
        switch decision {
        case .accepted: reply(.ack(UpdateAck(round: round, accepted: true)), replyTo: replyTo, peer: peer)
        case .duplicate: reply(.ack(UpdateAck(round: round, accepted: true, duplicate: true)), replyTo: replyTo, peer: peer)
        case .rejected(let kind, let reason):
            telemetry.event(.warn, "rejected", "update from \(sender) round \(round): \(kind): \(reason)")
            reply(.ack(UpdateAck(round: round, accepted: false, reason: "\(kind): \(reason)")), replyTo: replyTo, peer: peer)
        }
    }

    func reply(_ body: Body, replyTo: UInt64, peer: [UInt8]) {
        seq += 1
        try? router.send(Envelope(sender: options.id, seq: seq, replyTo: replyTo, body: body), prefix: [peer], dontWait: true)
    }
}
