import Bus
import Foundation
import Messages

/// A poisoning participant for robustness checks (`fi bench poisoning`, tests): a compromised device with a valid
/// CURVE key that answers every round with the global adapter negated and scaled by 20, claiming 1,000,000 samples,
/// and answers evaluations with no loss (so rounds do not wait for it).
public final class ByzantineParticipant: @unchecked Sendable {  // safe: only its own thread touches its sockets
    let context = BusContext()
    let manager: Socket
    var aggregator: Socket?
    var id = ""
    public var stop = false
    public private(set) var uploads = 0
    var thread: Thread?

    public init(managerEndpoint: String, keys: CurveDeployment, key: String) throws {
        try context.secure(try keys.security(as: key))
        manager = try Socket(.dealer, context: context, linger: 0)
        try manager.connect(managerEndpoint)
    }

    public func start() {
        let t = Thread { [self] in run() }
        thread = t
        t.start()
    }

    func run() {
        var seq: UInt64 = 0
        func send(_ s: Socket?, _ body: Body) {
            seq += 1
            try? s?.send(Envelope(sender: id, seq: seq, body: body), dontWait: true)
        }
        var lastBeat = Date.distantPast
        var announcement: RoundAnnouncement?
        var answered: Set<UInt64> = []
        while !stop {
            if Date().timeIntervalSince(lastBeat) > 0.2 {
                lastBeat = Date()
                send(manager, id.isEmpty ? .register(Register(role: .device)) : .heartbeat(Heartbeat()))
            }
            if let f = try? manager.receive(dontWait: true), let env = try? Envelope.decode(frames: f, limits: serviceDecodeLimits),
               case .assignment(let a) = env.body, aggregator == nil, !a.aggregatorEndpoint.isEmpty {
                id = a.nodeId
                let s = try? Socket(.dealer, context: context, linger: 0)
                try? s?.set(.routingId(Array(id.utf8)))
                try? s?.connect(a.aggregatorEndpoint)
                aggregator = s
                send(s, .modelRequest(ModelRequest()))
            }
            while let f = try? aggregator?.receive(dontWait: true), let env = try? Envelope.decode(frames: f, limits: serviceDecodeLimits) {
                switch env.body {
                case .round(let r): announcement = r
                case .model(let m):
                    guard let r = announcement, m.modelVersion == r.modelVersion, !answered.contains(r.round) else { continue }
                    answered.insert(r.round)
                    let poisoned = m.tensors.map { t in Messages.Tensor(name: t.name, shape: t.shape, floats: ((try? t.floats()) ?? []).map { -20 * $0 }) }
                    send(aggregator, .update(UpdateUpload(round: r.round, cluster: r.cluster, baseVersion: r.modelVersion, samples: 1_000_000,
                                                          trainLoss: 0.01, delta: poisoned)))
                    uploads += 1
                case .evalRequest(let e):
                    // Answers evaluations (no loss to report), so rounds do not wait for it.
                    send(aggregator, .evalResult(EvalResult(round: e.round, domain: "", valLoss: .nan, tokens: 0)))
                default: break
                }
            }
            Thread.sleep(forTimeInterval: 0.005)
        }
        aggregator?.close(); manager.close()
    }
}
