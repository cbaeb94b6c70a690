import Foundation

extension ServiceLoop {
    /// Forwards messages both ways between two sockets owned by this loop. With an XSUB `frontend`
    /// (publishers connect) and an XPUB `backend` (subscribers connect) this is the telemetry proxy:
    /// messages flow down, subscriptions flow up. A full peer queue drops the message, as PUB does.
    public func addProxy(frontend: Socket, backend: Socket) {
        func forward(_ to: Socket) -> Handler {
            { _, frames in
                do { try to.send(frames, dontWait: true) } catch BusError.wouldBlock {}
            }
        }
        add(frontend, forward(backend))
        add(backend, forward(frontend))
    }
}

/// Heartbeat bookkeeping: a peer is dead after `misses` intervals without hearing from it
/// (DESIGN.md: heartbeats about 1 s, dead after 3-5 missed). Pure: the caller passes the time.
public struct PeerLiveness<Peer: Hashable & Sendable>: Sendable {
    public let interval: Duration
    public let misses: Int
    private var lastHeard: [Peer: ContinuousClock.Instant] = [:]

    public init(interval: Duration = .seconds(1), misses: Int = 4) {
        self.interval = interval
        self.misses = max(1, misses)
    }

    /// Any message from a peer counts as a heartbeat.
    public mutating func heard(from peer: Peer, at now: ContinuousClock.Instant = .now) {
        lastHeard[peer] = now
    }

    public mutating func forget(_ peer: Peer) { lastHeard.removeValue(forKey: peer) }

    public func isAlive(_ peer: Peer, at now: ContinuousClock.Instant = .now) -> Bool {
        guard let t = lastHeard[peer] else { return false }
        return now - t < interval * misses
    }

    /// Removes and returns the peers that missed `misses` heartbeats.
    public mutating func expire(at now: ContinuousClock.Instant = .now) -> [Peer] {
        let dead = lastHeard.filter { now - $0.value >= interval * misses }.map(\.key)
        for p in dead { lastHeard.removeValue(forKey: p) }
        return dead
    }

    public var peers: [Peer] { Array(lastHeard.keys) }
}
