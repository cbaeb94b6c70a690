import Bus
import Federation
import Foundation
import Messages
import Reports
import Wire

// Frames ↔ engine: every message from a participant or the cloud becomes one event (RoundWire decodes), every
// effect becomes frames, a file write or telemetry. Nothing here decides anything about the federation.
extension AggregatorService {
    func handleRouter(_ frames: [[UInt8]]) {
        let peer = frames[0]
        let size = frames.dropFirst().reduce(0) { $0 + $1.count }
        let env: Envelope
        do { env = try Envelope.decode(received: frames, prefixCount: 1, limits: serviceDecodeLimits) } catch {
            run(.upload(from: String(decoding: peer, as: UTF8.self), RoundWire.undecodable(error, bytes: size)), reply: (peer, 0))
            return
        }
        guard let event = wire.event(env, bytes: size) else {
            telemetry.event(.warn, "unexpected", "\(env.body.name) from \(env.sender) ignored")
            return
        }
        run(event, reply: (peer, env.seq))
    }

    func handleUpstream(_ frames: [[UInt8]]) {
        guard let env = try? Envelope.decode(frames: frames, limits: serviceDecodeLimits), let event = wire.upstreamEvent(env) else {
            telemetry.event(.warn, "bad_message", "a message from the cloud aggregator is undecodable or not for this edge")
            return
        }
        run(event)
    }

    func perform(_ effect: EngineEffect, reply: (peer: [UInt8], seq: UInt64)?) {
        switch effect {
        case .send(let m, let ids):
            for id in ids { for f in wire.frames(m, to: id, models: true) { try? router.send([Array(id.utf8)] + f, dontWait: true) } }
        case .resend(let m, let ids):
            // Not connected yet: the participant's ModelRequest or the next resend covers it.
            for id in ids { for f in wire.frames(m, to: id, models: false) { try? router.send([Array(id.utf8)] + f, dontWait: true) } }
        case .acknowledge(let d, let w):
            guard let reply else { return }
            if case .rejected(let kind, let reason) = d { telemetry.event(.warn, "rejected", "upload for round \(w): \(kind): \(reason)") }
            try? router.send(wire.ack(d, wire: w, replyTo: reply.seq), prefix: [reply.peer], dontWait: true)
        case .upstream(let m): try? upstream?.send(wire.upstream(m), dontWait: true)
        case .clusterMap(let map):
            let members = map.sorted { $0.key < $1.key }.map {
                ClusterMember(nodeId: $0.key, role: .device, cluster: UInt32(max(0, $0.value)), edge: 0, alive: true, endpoint: "")
            }
            sendToManager(.clusterMap(ClusterMap(mapSeq: 0, members: members, snapshot: false)))
        case .record(let r):
            records.append(r)
            do { try writer?.append(r) } catch { telemetry.event(.error, "metrics", "\(error)") }
            let val = r.valLoss.values.reduce(0, +) / Double(max(1, r.valLoss.count))
            telemetry.publish(.metric(Metric(name: "val_loss", value: val, labels: ["round": "\(r.round)"])), kind: "metric")
            if !r.valLoss.isEmpty { writeAdapters() }
        case .updateLog(let line):
            do { try writer?.appendLine(line, to: RunFiles.updates) } catch { telemetry.event(.error, "metrics", "\(error)") }
        case .journal(let entry):
            do { try store?.append(entry) } catch { telemetry.event(.error, "checkpoint", "cannot journal: \(error)") }
        case .checkpoint(let s):
            do { try store?.save(s) } catch { telemetry.event(.error, "checkpoint", "cannot write the checkpoint: \(error)") }
        case .log(let level, let kind, let text):
            telemetry.event(level == .error ? .error : (level == .warn ? .warn : .info), kind, text)
        case .finished(let summary): finished(summary)
        }
    }
}
