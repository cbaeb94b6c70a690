import EdgeEnvironment
import Federation
import Messages

/// The round engine's vocabulary as messages (an aggregator's side): decoded messages become engine events, engine
/// messages become envelopes. Models are encoded once per (wire, cluster) and the same frames go to everyone.
public final class RoundWire {
    public let sender: String
    public let layout: ParameterLayout
    public let role: TierRole
    public let paradigm: Paradigm
    public let deadlineS: Double
    public private(set) var seq: UInt64 = 0
    private var modelFrames: [Key: [[UInt8]]] = [:]
    private struct Key: Hashable { var wire: UInt64; var cluster: Int }

    public init(sender: String, layout: ParameterLayout, role: TierRole, paradigm: String, deadlineS: Double) {
        self.sender = sender; self.layout = layout; self.role = role; self.deadlineS = deadlineS
        switch paradigm {
        case "clustered": self.paradigm = .clustered
        case "hierarchical": self.paradigm = .hierarchical
        case "async": self.paradigm = .async
        default: self.paradigm = .fedAvg
        }
    }

    /// Tier of what this aggregator sends down: device (flat), edge (an edge to its devices), cloud (to its edges).
    var downTier: Messages.Tier {
        switch role {
        case .flat: return .device
        case .edge: return .edge
        case .cloud: return .cloud
        }
    }

    public func envelope(_ body: Body, from who: String? = nil, replyTo: UInt64 = 0) -> Envelope {
        seq += 1
        return Envelope(sender: who ?? sender, seq: seq, replyTo: replyTo, body: body)
    }

    // MARK: in

    /// An UpdateUpload as the engine sees it (a sketch a cloud gets from an edge is one tensor).
    public func upload(_ u: UpdateUpload, bytes: Int) -> Upload {
        UpdateWire.upload(u, bytes: bytes, layout: layout, sketch: role == .cloud && u.tier == .device)
    }

    /// Bytes that do not decode: an upload the engine rejects as undecodable.
    public static func undecodable(_ error: Error, bytes: Int) -> Upload {
        Upload(wire: 0, baseWire: 0, samples: 0, loss: .nan,
               delta: .failure(RejectedUpdate(device: "", kind: "undecodable", reason: "\(error)")), bytes: bytes)
    }

    /// What a participant sends an aggregator, as an engine event (nil: not for the engine).
    public func event(_ env: Envelope, bytes: Int) -> EngineEvent? {
        switch env.body {
        case .update(let u): return .upload(from: env.sender, upload(u, bytes: bytes))
        case .modelRequest: return .modelRequest(from: env.sender)
        case .evalResult(let r): return .evaluation(from: env.sender, UpdateWire.evaluation(r))
        case .secAggKeys(let k):
            return .secAgg(from: env.sender, .keys(wire: k.round, cluster: Int(k.cluster), keys: SecAggPublicKeys(cipher: k.cipherPublic, mask: k.maskPublic),
                                                   samples: Int(clamping: k.samples)), bytes: bytes)
        case .secAggShares(let m):
            return .secAgg(from: env.sender, .shares(wire: m.round, group: Int(m.group), m.shares.map { SecAggCiphertext(peer: $0.peer, bytes: $0.ciphertext) }),
                           bytes: bytes)
        case .secAggReveal(let m):
            return .secAgg(from: env.sender, .reveal(wire: m.round, group: Int(m.group), m.shares.map {
                SecAggRevealedShare(owner: $0.owner, selfMask: $0.selfMask, share: Shamir.Share(x: UInt8($0.x), y: $0.y))
            }), bytes: bytes)
        default: return nil
        }
    }

    /// What the cloud sends an edge, as an engine event (nil: not for the engine, or not for this edge).
    public func upstreamEvent(_ env: Envelope) -> EngineEvent? {
        switch env.body {
        case .round(let a):
            guard a.participants.isEmpty || a.participants.contains(sender) else { return nil }
            let settings = LocalSettings(steps: Int(a.localSteps), learningRate: a.learningRate, proximalMu: a.proximalMu, freezeA: a.freezeA)
            return .upstream(.task(RoundTask(wire: a.modelVersion, round: Int(a.round), cluster: 0, models: [], settings: settings, sketches: a.wantSketches)))
        case .clusterMap(let m):
            return .upstream(.map(wire: m.mapSeq, clusters: Dictionary(m.members.map { ($0.nodeId, Int($0.cluster)) }, uniquingKeysWith: { $1 })))
        case .model(let m):
            guard AdapterWire.mismatch(m.tensors, layout: layout) == nil, let flat = try? AdapterWire.flat(m.tensors) else { return nil }
            return .upstream(.model(wire: m.modelVersion, cluster: Int(m.cluster), parameters: flat))
        case .evalRequest(let e): return .upstream(.evaluate(wire: e.round))
        case .ack(let a): return .upstream(.ack(wire: a.round, accepted: a.accepted, reason: a.reason))
        default: return nil
        }
    }

    /// The cluster manager's map as the engine's members.
    public static func members(_ map: ClusterMap) -> [Member] {
        map.members.map { m in
            Member(id: m.nodeId, role: m.role == .device ? .device : (m.role == .edgeAggregator ? .edgeAggregator : .other),
                   edge: Int(m.edge), alive: m.alive)
        }
    }

    // MARK: out

    /// The messages of one outbound for `id`: (map), announcement or evaluation request, (models).
    public func frames(_ m: Outbound, to id: String, models: Bool) -> [[[UInt8]]] {
        var out: [[[UInt8]]] = []
        switch m {
        case .task(let t, let ms):
            if let map = t.clusterMap { out.append(envelope(.clusterMap(clusterMap(map, wire: t.wire, edge: id))).encodeFrames()) }
            let ann = RoundAnnouncement(round: role == .cloud ? UInt64(t.round) : t.wire, paradigm: paradigm, tier: downTier,
                                        cluster: UInt32(max(0, t.cluster)), localSteps: UInt32(t.settings.steps),
                                        learningRate: t.settings.learningRate, participants: [id], deadlineS: deadlineS, modelVersion: t.wire,
                                        proximalMu: t.settings.proximalMu, freezeA: t.settings.freezeA,
                                        candidateClusters: t.chooseByLoss ? t.models.map { UInt32($0) } : [], wantSketches: t.sketches,
                                        privacy: t.privacy.map {
                                            TaskPrivacy(clip: $0.clip, noiseStd: $0.noiseStd, reportClipped: $0.reportClipped,
                                                        countNoiseStd: $0.countNoiseStd, secure: $0.secure, sketchDim: UInt32($0.sketch?.dimension ?? 0),
                                                        sketchNoiseStd: $0.sketch?.noiseStd ?? 0, sketchSeed: $0.sketch?.seed ?? 0)
                                        })
            out.append(envelope(.round(ann)).encodeFrames())
            if models { for c in t.models { if let p = ms[c] { out.append(model(p, wire: t.wire, cluster: c)) } } }
        case .evaluate(let w, let c, let ms, let map):
            if let map { out.append(envelope(.clusterMap(clusterMap(map, wire: w, edge: id))).encodeFrames()) }
            let request = envelope(.evalRequest(EvalRequest(round: w, cluster: UInt32(max(0, c))))).encodeFrames()
            let ordered = ms.sorted { $0.key < $1.key }.map { model($0.value, wire: w, cluster: $0.key) }
            // A device gets the model before the request; an edge the request first (it collects the models it lacks).
            out += map == nil ? (models ? ordered : []) + [request] : [request] + (models ? ordered : [])
        case .secAgg(let m):
            out.append(envelope(secAggBody(m)).encodeFrames())
        }
        return out
    }

    func secAggBody(_ m: SecAggOutbound) -> Body {
        switch m {
        case .roster(let a):
            return .secAggRoster(SecAggRoster(round: a.wire, group: UInt32(a.group), index: UInt32(a.index), threshold: UInt32(a.threshold),
                                              neighbours: a.neighbours.map {
                                                  SecAggPeer(nodeId: $0.id, index: UInt32($0.index), cipherPublic: $0.keys.cipher, maskPublic: $0.keys.mask)
                                              },
                                              weight: a.weight, step: a.fixedPoint.step, bound: a.fixedPoint.bound, length: UInt32(a.length)))
        case .shares(let w, let g, let cts):
            return .secAggShares(SecAggShares(round: w, group: UInt32(g), shares: cts.map { ($0.peer, $0.bytes) }))
        case .unmask(let w, let g, let survivors, let dropped):
            return .secAggUnmask(SecAggUnmask(round: w, group: UInt32(g), survivors: survivors, dropped: dropped))
        }
    }

    func clusterMap(_ map: [String: Int], wire: UInt64, edge: String) -> ClusterMap {
        ClusterMap(mapSeq: wire, members: map.sorted { $0.key < $1.key }.map {
            ClusterMember(nodeId: $0.key, role: .device, cluster: UInt32(max(0, $0.value)), edge: UInt32(deviceOrdinal(edge)),
                          alive: true, endpoint: "")
        }, snapshot: false)
    }

    func model(_ parameters: [Float], wire: UInt64, cluster: Int) -> [[UInt8]] {
        let key = Key(wire: wire, cluster: cluster)
        if let f = modelFrames[key] { return f }
        if modelFrames.count > 256, let oldest = modelFrames.keys.min(by: { $0.wire < $1.wire }) { modelFrames[oldest] = nil }
        let f = envelope(.model(ModelBroadcast(round: wire, cluster: UInt32(max(0, cluster)), tier: downTier, modelVersion: wire,
                                               tensors: AdapterWire.tensors(parameters, layout: layout)))).encodeFrames()
        modelFrames[key] = f
        return f
    }

    /// The answer to an upload.
    public func ack(_ d: Decision, wire: UInt64, replyTo: UInt64) -> Envelope {
        var ack = UpdateAck(round: wire, accepted: true)
        switch d {
        case .accepted: break
        case .duplicate: ack.duplicate = true
        case .rejected(let kind, let reason): ack.accepted = false; ack.reason = "\(kind): \(reason)"
        }
        return envelope(.ack(ack), replyTo: replyTo)
    }

    /// An edge's message to its cloud (a relayed sketch or evaluation goes with the device as sender).
    public func upstream(_ m: UpstreamOutbound) -> Envelope {
        switch m {
        case .contribution(let w, let c, let samples, let loss, let delta, let computeS, let epsilon):
            return envelope(.update(UpdateUpload(round: w, cluster: UInt32(c), baseVersion: w, samples: UInt64(max(0, samples)), trainLoss: loss,
                                                 delta: AdapterWire.tensors(delta, layout: layout), tier: .edge, computeS: computeS,
                                                 privacy: epsilon.map { UploadPrivacy(epsilon: $0) })))
        case .sketch(let device, let w, let c, let v):
            return envelope(.update(UpdateUpload(round: w, cluster: UInt32(max(0, c)), baseVersion: w, samples: 0, trainLoss: .nan,
                                                 delta: [Messages.Tensor(name: "sketch", shape: [v.count], floats: v)], tier: .device, computeS: 0)),
                            from: device)
        case .evaluation(let device, let e):
            return envelope(.evalResult(EvalResult(round: e.wire, domain: e.domain, valLoss: e.loss, tokens: UInt64(max(0, e.tokens)))), from: device)
        case .modelRequest:
            return envelope(.modelRequest(ModelRequest(cluster: 0, tier: .edge)))
        }
    }
}
