import ArgumentParser
import Federation
import Foundation
import Messages

/// `fi bench secagg`: one secure-aggregation round of N devices against the same round in the clear, in the same run:
/// bytes per device (every message encoded as it goes on the wire), the aggregator's time (decoding what it receives
/// plus its protocol steps, vs decoding and summing plain uploads), and the recovered sum against the plain sum when
/// a fraction of the devices drop after sharing.
struct BenchSecAgg: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secagg",
        abstract: "Secure aggregation vs plain uploads: bytes per device, aggregator time, dropout recovery (same run)."
    )

    @Option(help: "Devices in the group.") var devices = 100
    @Option(help: "Update lengths (32-bit words), comma-separated.") var lengths = "16384,294912"
    @Option(help: "Fraction of devices that drop after sharing.") var drop = 1.0 / 3
    @Option(help: "Neighbours per device, comma-separated (0 = SecAgg, everyone; k > 0 = SecAgg+).") var neighbours = "0,40"
    @Flag(help: "JSON lines instead of a table.") var json = false

    func validate() throws {
        guard (3...255).contains(devices) else { throw ValidationError("--devices must be in 3…255 (one group), got \(devices)") }
        guard (0..<0.5).contains(drop) else { throw ValidationError("--drop must be in [0, 0.5), got \(drop)") }
        guard parsedLengths.allSatisfy({ $0 > 0 }), !parsedLengths.isEmpty else { throw ValidationError("--lengths: positive integers, got \(lengths)") }
        guard parsedNeighbours.allSatisfy({ $0 >= 0 && $0 < devices }), !parsedNeighbours.isEmpty else {
            throw ValidationError("--neighbours: integers in 0…\(devices - 1), got \(neighbours)")
        }
    }

    var parsedLengths: [Int] { lengths.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }
    var parsedNeighbours: [Int] { neighbours.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

    func run() throws {
        if !json {
            print("devices  length  k    dropped  bytes/device plain  secure (up)  secure (up+down)  ratio up  ratio all  agg s plain  agg s secure  ratio  max err (steps)")
        }
        for length in parsedLengths {
            for k in parsedNeighbours {
                let dropped = Int((Double(devices) * drop).rounded(.down))
                let r: SecAggBench.Result
                do { r = try SecAggBench.round(devices: devices, length: length, neighbours: k, dropped: dropped) } catch {
                    // SecAgg+ with few neighbours may not survive this many dropouts: a measured outcome, not a crash.
                    print(json ? "{\"devices\": \(devices), \"length\": \(length), \"neighbours\": \(k), \"dropped\": \(dropped), \"error\": \"\(error)\"}"
                               : String(format: "%7d  %6d  %3d  %7d  ", devices, length, k, dropped) + "\(error)")
                    continue
                }
                if json {
                    let obj: [String: Any] = ["devices": devices, "length": length, "neighbours": k, "dropped": r.dropped,
                                              "plain_bytes_per_device": r.plainBytes, "secure_up_bytes_per_device": r.secureUp,
                                              "secure_total_bytes_per_device": r.secureUp + r.secureDown,
                                              "ratio_up": r.ratioUp, "ratio_total": r.ratioTotal,
                                              "aggregator_seconds_plain": r.plainSeconds, "aggregator_seconds_secure": r.secureSeconds,
                                              "max_error_steps": r.maxErrorSteps, "threshold": r.threshold]
                    print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
                } else {
                    print(String(format: "%7d  %6d  %3d  %7d  %18d  %11d  %16d  %8.3f  %9.3f  %11.4f  %12.4f  %5.1f  %.2f",
                                 devices, length, k, r.dropped, r.plainBytes, r.secureUp, r.secureUp + r.secureDown, r.ratioUp, r.ratioTotal,
                                 r.plainSeconds, r.secureSeconds, r.secureSeconds / max(r.plainSeconds, 1e-9), r.maxErrorSteps))
                }
            }
        }
    }
}

enum SecAggBench {
    struct Result {
        var dropped: Int
        var threshold: Int
        /// Mean over surviving devices.
        var plainBytes: Int
        var secureUp: Int
        var secureDown: Int
        var plainSeconds: Double
        var secureSeconds: Double
        var maxErrorSteps: Double
        var ratioUp: Double { Double(secureUp) / Double(plainBytes) }
        var ratioTotal: Double { Double(secureUp + secureDown) / Double(plainBytes) }
    }

    static func frames(_ sender: String, _ body: Body) -> [[UInt8]] { Envelope(sender: sender, seq: 1, body: body).encodeFrames() }
    static func size(_ f: [[UInt8]]) -> Int { f.reduce(0) { $0 + $1.count } }

    /// One round: the devices' work is not timed; the aggregator's decoding and protocol steps are.
    static func round(devices n: Int, length: Int, neighbours k: Int, dropped: Int) throws -> Result {
        let ids = (0..<n).map { String(format: "device-%03d", $0) }
        var seeded = SeededRandom(seed: 17)
        let inputs = Dictionary(uniqueKeysWithValues: ids.map { id in
            (id, (0..<length).map { _ in Float(Double(seeded.next() % 2_000_001) / 1_000_000 - 1) * 0.05 })
        })
        let gone = Set(ids.enumerated().filter { $0.offset % 3 == 0 }.prefix(dropped).map(\.element))
        let survivors = ids.filter { !gone.contains($0) }

        // Plain: each survivor uploads its fp32 delta; the aggregator decodes and sums.
        var plainUp = 0
        let plainFrames = survivors.map { id -> [[UInt8]] in
            let f = frames(id, .update(UpdateUpload(round: 1, samples: 1, delta: [Messages.Tensor(name: "delta", shape: [length], floats: inputs[id]!)])))
            plainUp += size(f)
            return f
        }
        var t0 = Date()
        var plainSum = [Double](repeating: 0, count: length)
        for f in plainFrames {
            guard case .update(let u) = try Envelope.decode(frames: f).body else { continue }
            let v = try u.delta[0].floats()
            for i in 0..<length { plainSum[i] += Double(v[i]) }
        }
        let plainSeconds = Date().timeIntervalSince(t0)

        // Secure: keys → roster → shares → (shares delivered) → masked inputs → unmask → reveals.
        var rng = SystemRandomNumberGenerator()
        var clients = Dictionary(uniqueKeysWithValues: ids.map { ($0, SecAggClient(id: $0, wire: 1, using: &rng)) })
        var up: [String: Int] = [:], down: [String: Int] = [:]
        var inbound: [[[UInt8]]] = []  // what the aggregator receives, decoded inside the timed part
        var keys: [String: SecAggPublicKeys] = [:]
        for id in ids {
            let pk = clients[id]!.publicKeys
            let f = frames(id, .secAggKeys(SecAggKeys(round: 1, cipherPublic: pk.cipher, maskPublic: pk.mask, samples: 1)))
            up[id, default: 0] += size(f); inbound.append(f)
            keys[id] = pk
        }
        var secureSeconds = 0.0
        t0 = Date()
        for f in inbound { _ = try Envelope.decode(frames: f) }
        let ones = Dictionary(uniqueKeysWithValues: ids.map { ($0, 1.0) })
        var server = SecAggServer(wire: 1, group: 0, keys: keys, weights: ones, bounds: ones, length: length, neighbours: k)
        let rosters = ids.map { id -> (String, SecAggAssignment, [[UInt8]]) in
            let a = server.assignment(for: id)!
            return (id, a, frames("aggregator", .secAggRoster(SecAggRoster(
                round: 1, group: 0, index: UInt32(a.index), threshold: UInt32(a.threshold),
                neighbours: a.neighbours.map { SecAggPeer(nodeId: $0.id, index: UInt32($0.index), cipherPublic: $0.keys.cipher, maskPublic: $0.keys.mask) },
                weight: a.weight, step: a.fixedPoint.step, bound: a.fixedPoint.bound, length: UInt32(a.length)))))
        }
        secureSeconds += Date().timeIntervalSince(t0)
        inbound = []
        for (id, a, f) in rosters {
            down[id, default: 0] += size(f)
            let cts = try clients[id]!.share(a, using: &rng)
            let s = frames(id, .secAggShares(SecAggShares(round: 1, group: 0, shares: cts.map { ($0.to, $0.ciphertext) })))
            up[id, default: 0] += size(s); inbound.append(s)
        }
        t0 = Date()
        for f in inbound {
            let env = try Envelope.decode(frames: f)
            guard case .secAggShares(let m) = env.body else { continue }
            try server.shares(from: env.sender, m.shares.map { ($0.peer, $0.ciphertext) })
        }
        let deliveries = server.closeSharing().map { v, cts in (v, cts, frames("aggregator", .secAggShares(SecAggShares(round: 1, group: 0, shares: cts.map { ($0.from, $0.ciphertext) })))) }
        secureSeconds += Date().timeIntervalSince(t0)
        inbound = []
        for (v, cts, f) in deliveries {
            down[v, default: 0] += size(f)
            try clients[v]!.receive(cts)
        }
        for id in survivors {
            let y = try clients[id]!.mask(inputs[id]!)
            let f = frames(id, .update(UpdateUpload(round: 1, samples: 1, privacy: UploadPrivacy(masked: y))))
            up[id, default: 0] += size(f); inbound.append(f)
        }
        t0 = Date()
        for f in inbound {
            let env = try Envelope.decode(frames: f)
            guard case .update(let u) = env.body else { continue }
            try server.masked(from: env.sender, u.privacy!.masked)
        }
        let requests = server.closeMasking().map { u, r in (u, r, frames("aggregator", .secAggUnmask(SecAggUnmask(round: 1, group: 0, survivors: r.survivors, dropped: r.dropped)))) }
        secureSeconds += Date().timeIntervalSince(t0)
        inbound = []
        for (u, r, f) in requests {
            down[u, default: 0] += size(f)
            let shares = try clients[u]!.reveal(survivors: r.survivors, dropped: r.dropped)
            let g = frames(u, .secAggReveal(SecAggReveal(round: 1, group: 0, shares: shares.map {
                SecAggReveal.Share(owner: $0.owner, selfMask: $0.selfMask, x: UInt32($0.share.x), y: $0.share.y)
            })))
            up[u, default: 0] += size(g); inbound.append(g)
        }
        t0 = Date()
        for f in inbound {
            let env = try Envelope.decode(frames: f)
            guard case .secAggReveal(let m) = env.body else { continue }
            try server.reveal(from: env.sender, m.shares.map { SecAggRevealedShare(owner: $0.owner, selfMask: $0.selfMask, share: Shamir.Share(x: UInt8($0.x), y: $0.y)) })
        }
        let out = try server.finish()
        secureSeconds += Date().timeIntervalSince(t0)

        guard out.contributors == survivors else { throw ValidationError("the recovered sum has \(out.contributors.count) contributors, \(survivors.count) survived") }
        let step = server.fixedPoint.step
        let worst = zip(out.sum, plainSum).map { abs($0 - $1) }.max() ?? 0
        let m = Double(survivors.count)
        return Result(dropped: gone.count, threshold: server.threshold, plainBytes: plainUp / survivors.count,
                      secureUp: Int(Double(survivors.reduce(0) { $0 + up[$1]! }) / m), secureDown: Int(Double(survivors.reduce(0) { $0 + down[$1]! }) / m),
                      plainSeconds: plainSeconds, secureSeconds: secureSeconds, maxErrorSteps: worst / step)
    }
}
