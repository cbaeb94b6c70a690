import Federation
import Messages

/// The device's privacy stage for one task, between local training and encoding: the task's clip (and noise share,
/// and clip report), and under secure aggregation the round's SecAggClient with what the device owes the aggregator.
/// Lives on the host's loop thread (one per device session); clipping and noise run in `VirtualDevice.train`.
final class DevicePrivacyStage {
    let wire: UInt64
    let settings: DevicePrivacy
    var client: SecAggClient?
    /// Replies already sent, repeated when the aggregator asks again.
    var keysMessage: Body?
    var sharesMessage: Body?
    var revealMessage: Body?
    /// The privatised vector (delta, then the clip report when asked) waiting for the shares to arrive.
    var pending: (vector: [Float], upload: UpdateUpload)?
    var uploaded = false

    init(wire: UInt64, task p: TaskPrivacy, device: String) {
        self.wire = wire
        settings = DevicePrivacy(clip: p.clip, noiseStd: p.noiseStd, reportClipped: p.reportClipped, countNoiseStd: p.countNoiseStd, secure: p.secure,
                                 sketch: p.sketchDim > 0 ? SketchRequest(dimension: Int(p.sketchDim), noiseStd: p.sketchNoiseStd, seed: p.sketchSeed) : nil)
        if p.secure {
            var rng = SystemRandomNumberGenerator()
            client = SecAggClient(id: device, wire: wire, using: &rng)
        }
    }

    /// The keys advertisement for the cluster this device trains.
    func keys(cluster: UInt32, samples: Int) -> Body? {
        guard let c = client else { return nil }
        let k = c.publicKeys
        keysMessage = .secAggKeys(SecAggKeys(round: wire, cluster: cluster, cipherPublic: k.cipher, maskPublic: k.mask, samples: UInt64(max(0, samples))))
        return keysMessage
    }

    /// The roster: encrypted shares for every neighbour (a repeated roster gets the same answer).
    func roster(_ r: SecAggRoster) throws -> Body? {
        guard var c = client, r.round == wire else { return nil }
        if let sent = sharesMessage { return sent }
        let a = SecAggAssignment(wire: r.round, group: Int(r.group), index: Int(r.index), threshold: Int(r.threshold),
                                 neighbours: r.neighbours.map {
                                     SecAggMember(id: $0.nodeId, index: Int($0.index), keys: SecAggPublicKeys(cipher: $0.cipherPublic, mask: $0.maskPublic))
                                 },
                                 weight: r.weight, fixedPoint: FixedPoint(step: r.step, bound: r.bound), length: Int(r.length))
        var rng = SystemRandomNumberGenerator()
        let cts = try c.share(a, using: &rng)
        client = c
        sharesMessage = .secAggShares(SecAggShares(round: wire, group: r.group, shares: cts.map { ($0.to, $0.ciphertext) }))
        return sharesMessage
    }

    func shares(_ m: SecAggShares) throws {
        guard var c = client, m.round == wire, !c.sharesReceived else { return }
        try c.receive(m.shares.map { ($0.peer, $0.ciphertext) })
        client = c
    }

    /// The masked upload, once both the trained vector and the shares are here.
    func maskedUpload() throws -> UpdateUpload? {
        guard let c = client, c.sharesReceived, let p = pending, !uploaded, let a = c.assignment else { return nil }
        var x = p.vector
        if x.count < a.length { x += [Float](repeating: 0, count: a.length - x.count) }
        var body = p.upload
        var privacy = body.privacy ?? UploadPrivacy()
        privacy.masked = try c.mask(x)
        body.privacy = privacy
        uploaded = true
        return body
    }

    /// The unmask request, answered once (a repeat gets the same reveal).
    func unmask(_ m: SecAggUnmask) throws -> Body? {
        guard var c = client, m.round == wire else { return nil }
        if let sent = revealMessage { return sent }
        let shares = try c.reveal(survivors: m.survivors, dropped: m.dropped)
        client = c
        revealMessage = .secAggReveal(SecAggReveal(round: wire, group: m.group, shares: shares.map {
            SecAggReveal.Share(owner: $0.owner, selfMask: $0.selfMask, x: UInt32($0.share.x), y: $0.share.y)
        }))
        return revealMessage
    }
}
