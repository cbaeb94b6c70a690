// Secure aggregation inside a synchronous round's `training` phase (SecureRound, SecAggServer): keys from every
// participant (or the keys deadline) → rosters → shares (each group's sharing deadline) → masked inputs (the round's
// deadline) → unmask requests → reveals (a step deadline) → each group's sum goes to the algorithm → the round closes.
// Step deadlines are a quarter of the round's; a restarted aggregator plans an open secure round again (its devices'
// keys and masks were for the old wire).

extension RoundEngine {
    var secureStepS: Double { max(config.heartbeatS, config.deadlineS / 4) }

    /// Starts secure aggregation for the round just opened, when its tasks ask for it.
    mutating func openSecure(wire w: UInt64, tasks: [String: RoundTask]) {
        guard let s = syncAlgorithm?.privacy?.settings.secure, tasks.values.contains(where: { $0.privacy?.secure == true }) else { return }
        secure = SecureRound(wire: w, settings: s, participants: Array(tasks.keys), keysDeadline: now + secureStepS)
    }

    mutating func secAgg(_ m: SecAggInbound, from id: String, bytes: Int) {
        countUp(bytes)
        guard var s = secure, let o = open else { return }
        defer { secure = s }
        open?.bytesUp[id, default: 0] += bytes
        do {
            switch m {
            case .keys(let w, let c, let keys, let samples):
                guard w == s.wire else { return }
                guard let t = o.tasks[id], t.chooseByLoss ? t.models.contains(c) : c == t.cluster else {
                    throw SecAggError.wrongPhase("\(id) advertised keys for cluster \(c), which its task did not offer")
                }
                try s.advertise(id, .init(cluster: c, keys: keys, samples: samples))
            case .shares(let w, let g, let cts):
                guard w == s.wire, s.step == .groups, g < s.groups.count, s.group(of: id) == g else { return }
                try s.withGroup(g) { try $0.shares(from: id, cts.map { ($0.peer, $0.bytes) }) }
            case .reveal(let w, let g, let shares):
                guard w == s.wire, s.step == .groups, g < s.groups.count, s.group(of: id) == g else { return }
                try s.withGroup(g) { try $0.reveal(from: id, shares) }
            }
        } catch {
            rejections["secagg", default: 0] += 1
            log(.warn, "secagg", "\(id): \(error)")
        }
    }

    /// A masked input of the open secure round: into its group's running sum.
    mutating func secureUpload(_ u: Upload, from id: String) -> RejectedUpdate? {
        guard var s = secure else { return nil }
        defer { secure = s }
        guard let y = u.masked else {
            return RejectedUpdate(device: id, kind: "not_masked", reason: "round \(s.wire) runs secure aggregation: upload the masked input")
        }
        guard let g = s.group(of: id) else {
            return RejectedUpdate(device: id, kind: "secagg", reason: "\(id) is in no secure-aggregation group of round \(s.wire)")
        }
        do { try s.withGroup(g) { try $0.masked(from: id, y) } } catch {
            return RejectedUpdate(device: id, kind: "secagg", reason: "\(error)")
        }
        if let v = u.sketch {
            guard let want = open?.tasks[id]?.privacy?.sketch?.dimension, v.count == want, v.allSatisfy(\.isFinite) else {
                log(.warn, "secagg", "\(id): a sketch of \(v.count) values that its task did not ask for is ignored")
                return nil
            }
            withSync { $0.addSketch(device: id, vector: v) }
        }
        return nil
    }

    mutating func advanceSecure() {
        guard var s = secure, let o = open else { return }
        switch s.step {
        case .keys:
            if s.allAdvertised || now >= s.keysDeadline {
                let missing = s.participants.subtracting(s.adverts.keys).sorted()
                if !missing.isEmpty { log(.warn, "secagg", "round \(o.round): no keys from \(missing.joined(separator: ", ")); they are left out") }
                let a = syncAlgorithm
                let rosters = s.formGroups(plan: { c, ids in a?.secureGroupPlan(cluster: c, members: ids, tasks: o.tasks) ?? ([:], [:], 0) },
                                           deadline: now + secureStepS)
                for (id, r) in rosters.sorted(by: { $0.key < $1.key }) { sendSecure(.roster(r), to: id) }
                lastResend = now
            } else {
                resendDue(to: s.participants.subtracting(s.adverts.keys).sorted())
            }
        case .groups:
            for g in s.groups.indices where s.results[g] == nil && s.failures[g] == nil {
                let server = s.groups[g]
                switch server.phase {
                case .sharing where server.allShared || now >= s.deadlines[g]:
                    let deliveries = s.withGroup(g) { $0.closeSharing() }
                    if let why = s.groups[g].failure { s.end(g, .failure(.unrecoverable(why))); break }
                    for (v, cts) in deliveries.sorted(by: { $0.key < $1.key }) {
                        sendSecure(.shares(wire: s.wire, group: g, cts.map { SecAggCiphertext(peer: $0.from, bytes: $0.ciphertext) }), to: v)
                    }
                    s.deadlines[g] = max(o.deadline ?? now, now)
                case .masking where server.allDelivered || now >= s.deadlines[g]:
                    let requests = s.withGroup(g) { $0.closeMasking() }
                    if let why = s.groups[g].failure { s.end(g, .failure(.unrecoverable(why))); break }
                    for (u, r) in requests.sorted(by: { $0.key < $1.key }) {
                        sendSecure(.unmask(wire: s.wire, group: g, survivors: r.survivors, dropped: r.dropped), to: u)
                    }
                    s.deadlines[g] = now + secureStepS
                case .unmasking where server.allRevealed || now >= s.deadlines[g]:
                    do {
                        let r = try s.withGroup(g) { try $0.finish() }
                        s.end(g, .success((r.sum, r.contributors)))
                    } catch let e as SecAggError {
                        s.end(g, .failure(e))
                    } catch {
                        s.end(g, .failure(.unrecoverable("\(error)")))
                    }
                default:
                    break
                }
            }
            resendSecure(s)
        }
        secure = s
        guard s.finished else { return }
        for (g, why) in s.failures.sorted(by: { $0.key < $1.key }) {
            log(.error, "secagg", "round \(o.round), group \(g) (cluster \(s.clusters[g])): \(why); its updates are lost")
        }
        for (_, r) in s.results.sorted(by: { $0.key < $1.key }) {
            let samples = r.contributors.map { o.results[$0]?.first?.samples ?? 0 }
            let losses = r.contributors.map { o.results[$0]?.first?.loss ?? .nan }
            withSync { $0.acceptSecureSum(cluster: r.cluster, sum: r.sum, devices: r.contributors, samples: samples, losses: losses) }
        }
        secure = nil
        closeRound()
    }

    /// Every heartbeat, what members owe an answer to is sent again (a device answers a repeat from its cache).
    mutating func resendSecure(_ s: SecureRound) {
        guard now - lastResend >= config.heartbeatS else { return }
        lastResend = now
        for (g, server) in s.groups.enumerated() where s.results[g] == nil && s.failures[g] == nil {
            switch server.phase {
            case .sharing:
                for m in server.members where !server.allShared {
                    if let a = server.assignment(for: m.id), !server.hasShared(m.id) { sendSecure(.roster(a), to: m.id, resend: true) }
                }
            case .unmasking:
                let requests = server.unmaskRequests
                for (u, r) in requests.sorted(by: { $0.key < $1.key }) where !server.revealedBy.contains(u) {
                    sendSecure(.unmask(wire: s.wire, group: g, survivors: r.survivors, dropped: r.dropped), to: u, resend: true)
                }
            default:
                break
            }
        }
    }

    mutating func sendSecure(_ m: SecAggOutbound, to id: String, resend: Bool = false) {
        countDown(m.payloadBytes)
        open?.bytesDown[id, default: 0] += m.payloadBytes
        guard !replaying else { return }
        out.append(resend ? .resend(.secAgg(m), to: [id]) : .send(.secAgg(m), to: [id]))
    }
}

extension SynchronousAlgorithm {
    /// A secure group's encoding: unit weights (the privacy stage's estimator), each member's clamp bound (its clip
    /// plus 8 standard deviations of its noise share; the clip report's likewise), and the vector: the model, plus
    /// one word for the clip reports under adaptive clipping.
    func secureGroupPlan(cluster: Int, members: [String], tasks: [String: RoundTask]) -> (weights: [String: Double], bounds: [String: Double], length: Int) {
        let n = models[cluster]?.parameters.count ?? 0
        var weights: [String: Double] = [:], bounds: [String: Double] = [:]
        var extras = 0
        for id in members {
            let p = tasks[id]?.privacy ?? DevicePrivacy(clip: privacy?.clip ?? 1)
            weights[id] = 1
            bounds[id] = max(p.clip + 8 * p.noiseStd, p.reportClipped ? 1 + 8 * p.countNoiseStd : 0)
            if p.reportClipped { extras = 1 }
        }
        return (weights, bounds, n + extras)
    }

    /// A secure group's unmasked sum for `cluster` (the words after the model are the clip reports' sum).
    mutating func acceptSecureSum(cluster: Int, sum: [Double], devices: [String], samples: [Int], losses: [Float]) {
        let n = models[cluster]?.parameters.count ?? sum.count
        let unclipped = sum.count > n ? sum[n...].reduce(0, +) : 0
        federation?.acceptSum(cluster: cluster, sum: Array(sum.prefix(n)), devices: devices, samples: samples, losses: losses, unclipped: unclipped)
    }
}
