import Bus
import EdgeEnvironment
import Federation
import Foundation
import Messages
import Reports
import Wire

struct ModelKey: Hashable { var wire: UInt64; var cluster: Int }

// Frames ↔ engine: every message from a participant or the cloud becomes one event; every effect becomes frames,
// a file write or telemetry. Nothing here decides anything about the federation.
extension AggregatorService {
    // MARK: frames in

    func handleRouter(_ frames: [[UInt8]]) {
        let peer = frames[0]
        let size = frames.dropFirst().reduce(0) { $0 + $1.count }
        let env: Envelope
        do { env = try Envelope.decode(received: frames, prefixCount: 1, limits: serviceDecodeLimits) } catch {
            let bad = RejectedUpdate(device: "", kind: "undecodable", reason: "\(error)")
            run(.upload(from: String(decoding: peer, as: UTF8.self), Upload(wire: 0, baseWire: 0, samples: 0, loss: .nan, delta: .failure(bad), bytes: size)),
                reply: (peer, 0))
            return
        }
        switch env.body {
        case .update(let u):
            run(.upload(from: env.sender, upload(u, bytes: size)), reply: (peer, env.seq))
        case .modelRequest:
            run(.modelRequest(from: env.sender))
        case .evalResult(let r):
            run(.evaluation(from: env.sender, Evaluation(wire: r.round, domain: r.domain, loss: r.valLoss, tokens: Int(clamping: r.tokens))))
        default:
            telemetry.event(.warn, "unexpected", "\(env.body.name) from \(env.sender) ignored")
        }
    }

    /// An UpdateUpload as the engine sees it: the delta decoded in the adapter layout (a relayed sketch is one tensor).
    func upload(_ u: UpdateUpload, bytes: Int) -> Upload {
        let sketch = role == .cloud && u.tier == .device
        let delta: Result<[Float], RejectedUpdate>
        if sketch {
            if u.delta.count == 1, let v = try? u.delta[0].floats(), !v.isEmpty, v.count <= layout.count {
                delta = .success(v)
            } else {
                delta = .failure(RejectedUpdate(device: "", kind: "bad_sketch", reason: "a sketch is one tensor of at most \(layout.count) values"))
            }
        } else if let problem = AdapterWire.mismatch(u.delta, layout: layout) {
            let total = u.delta.reduce(0) { $0 + ($1.elementCount ?? 0) }
            delta = .failure(RejectedUpdate(device: "", kind: total > layout.count ? "too_large" : "wrong_shape", reason: problem))
        } else {
            do { delta = .success(try AdapterWire.flat(u.delta)) } catch {
                delta = .failure(RejectedUpdate(device: "", kind: "undecodable", reason: "\(error)"))
            }
        }
        return Upload(kind: sketch ? .sketch : .update, wire: u.round, cluster: Int(u.cluster), baseWire: u.baseVersion,
                      samples: Int(clamping: u.samples), loss: u.trainLoss, delta: delta, computeS: u.computeS, bytes: bytes)
    }

    func handleUpstream(_ frames: [[UInt8]]) {
        let env: Envelope
        do { env = try Envelope.decode(frames: frames, limits: serviceDecodeLimits) } catch {
            telemetry.event(.warn, "bad_message", "undecodable message from the cloud aggregator: \(error)")
            return
        }
        switch env.body {
        case .round(let a):
            guard a.participants.isEmpty || a.participants.contains(options.id) else { return }
            let settings = LocalSettings(steps: Int(a.localSteps), learningRate: a.learningRate, proximalMu: a.proximalMu, freezeA: a.freezeA)
            run(.upstream(.task(RoundTask(wire: a.modelVersion, round: Int(a.round), cluster: 0, models: [], settings: settings, sketches: a.wantSketches))))
        case .clusterMap(let m):
            run(.upstream(.map(wire: m.mapSeq, clusters: Dictionary(m.members.map { ($0.nodeId, Int($0.cluster)) }, uniquingKeysWith: { $1 }))))
        case .model(let m):
            guard AdapterWire.mismatch(m.tensors, layout: layout) == nil, let flat = try? AdapterWire.flat(m.tensors) else {
                telemetry.event(.warn, "bad_model", "the cloud model of cluster \(m.cluster) does not fit the adapter layout")
                return
            }
            run(.upstream(.model(wire: m.modelVersion, cluster: Int(m.cluster), parameters: flat)))
        case .evalRequest(let e):
            run(.upstream(.evaluate(wire: e.round)))
        case .ack(let a):
            run(.upstream(.ack(wire: a.round, accepted: a.accepted, reason: a.reason)))
        default:
            telemetry.event(.warn, "unexpected", "\(env.body.name) from the cloud ignored")
        }
    }

    // MARK: effects out

    func perform(_ effect: EngineEffect, reply: (peer: [UInt8], seq: UInt64)?) {
        switch effect {
        case .send(let m, let ids): for id in ids { deliver(frames(m, to: id, models: true), to: id) }
        case .resend(let m, let ids): for id in ids { deliver(frames(m, to: id, models: false), to: id) }
        case .acknowledge(let d, let wire):
            guard let reply else { return }
            var ack = UpdateAck(round: wire, accepted: true)
            switch d {
            case .accepted: break
            case .duplicate: ack.duplicate = true
            case .rejected(let kind, let reason):
                ack.accepted = false; ack.reason = "\(kind): \(reason)"
                telemetry.event(.warn, "rejected", "upload for round \(wire): \(kind): \(reason)")
            }
            seq += 1
            try? router.send(Envelope(sender: options.id, seq: seq, replyTo: reply.seq, body: .ack(ack)), prefix: [reply.peer], dontWait: true)
        case .upstream(let m): sendUpstream(m)
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

    func deliver(_ frames: [[[UInt8]]], to id: String) {
        let peer = Array(id.utf8)
        for f in frames {
            // Not connected yet: the resend timer or the participant's ModelRequest covers it.
            try? router.send([peer] + f, dontWait: true)
        }
    }

    var paradigm: Paradigm {
        switch options.experiment.federation.paradigm {
        case "clustered": return .clustered
        case "hierarchical": return .hierarchical
        case "async": return .async
        default: return .fedAvg
        }
    }

    /// Tier of what this aggregator sends down: device (flat), edge (an edge to its devices), cloud (to edges).
    var downTier: Messages.Tier {
        switch role {
        case .flat: return .device
        case .edge: return .edge
        case .cloud: return .cloud
        }
    }

    /// The messages of one outbound: (map), announcement or eval request, (models). Models are encoded once per
    /// (wire, cluster) and reused.
    func frames(_ m: Outbound, to id: String, models: Bool) -> [[[UInt8]]] {
        var out: [[[UInt8]]] = []
        switch m {
        case .task(let t, let ms):
            if let map = t.clusterMap { out.append(envelope(.clusterMap(clusterMap(map, wire: t.wire, edge: id)))) }
            let ann = RoundAnnouncement(round: role == .cloud ? UInt64(t.round) : t.wire, paradigm: paradigm, tier: downTier, cluster: UInt32(max(0, t.cluster)),
                                        localSteps: UInt32(t.settings.steps), learningRate: t.settings.learningRate, participants: [id],
                                        deadlineS: engine.config.deadlineS, modelVersion: t.wire, proximalMu: t.settings.proximalMu,
                                        freezeA: t.settings.freezeA, candidateClusters: t.chooseByLoss ? t.models.map { UInt32($0) } : [],
                                        wantSketches: t.sketches)
            out.append(envelope(.round(ann)))
            if models { for c in t.models { if let p = ms[c] { out.append(model(p, wire: t.wire, cluster: c)) } } }
        case .evaluate(let w, let c, let ms, let map):
            if let map { out.append(envelope(.clusterMap(clusterMap(map, wire: w, edge: id)))) }
            if models && map == nil { for (k, p) in ms.sorted(by: { $0.key < $1.key }) { out.append(model(p, wire: w, cluster: k)) } }
            out.append(envelope(.evalRequest(EvalRequest(round: w, cluster: UInt32(max(0, c))))))
            if models && map != nil { for (k, p) in ms.sorted(by: { $0.key < $1.key }) { out.append(model(p, wire: w, cluster: k)) } }
        }
        return out
    }

    func clusterMap(_ map: [String: Int], wire: UInt64, edge: String) -> ClusterMap {
        ClusterMap(mapSeq: wire, members: map.sorted { $0.key < $1.key }.map {
            ClusterMember(nodeId: $0.key, role: .device, cluster: UInt32(max(0, $0.value)), edge: UInt32(deviceOrdinal(edge)), alive: true, endpoint: "")
        }, snapshot: false)
    }

    func envelope(_ body: Body) -> [[UInt8]] {
        seq += 1
        return Envelope(sender: options.id, seq: seq, body: body).encodeFrames()
    }

    func model(_ parameters: [Float], wire: UInt64, cluster: Int) -> [[UInt8]] {
        let key = ModelKey(wire: wire, cluster: cluster)
        if let f = modelFrames[key] { return f }
        if modelFrames.count > 256, let oldest = modelFrames.keys.min(by: { $0.wire < $1.wire }) { modelFrames[oldest] = nil }
        let f = envelope(.model(ModelBroadcast(round: wire, cluster: UInt32(max(0, cluster)), tier: downTier, modelVersion: wire,
                                               tensors: AdapterWire.tensors(parameters, layout: layout))))
        modelFrames[key] = f
        return f
    }

    func sendUpstream(_ m: UpstreamOutbound) {
        let sender: String, body: Body
        switch m {
        case .contribution(let w, let c, let samples, let loss, let delta, let computeS):
            sender = options.id
            body = .update(UpdateUpload(round: w, cluster: UInt32(c), baseVersion: w, samples: UInt64(max(0, samples)), trainLoss: loss,
                                        delta: AdapterWire.tensors(delta, layout: layout), tier: .edge, computeS: computeS))
        case .sketch(let device, let w, let c, let v):
            sender = device
            body = .update(UpdateUpload(round: w, cluster: UInt32(max(0, c)), baseVersion: w, samples: 0, trainLoss: .nan,
                                        delta: [Messages.Tensor(name: "sketch", shape: [v.count], floats: v)], tier: .device, computeS: 0))
        case .evaluation(let device, let e):
            sender = device
            body = .evalResult(EvalResult(round: e.wire, domain: e.domain, valLoss: e.loss, tokens: UInt64(max(0, e.tokens))))
        case .modelRequest:
            sender = options.id
            body = .modelRequest(ModelRequest(cluster: 0, tier: .edge))
        }
        seq += 1
        try? upstream?.send(Envelope(sender: sender, seq: seq, body: body), dontWait: true)
    }
}
