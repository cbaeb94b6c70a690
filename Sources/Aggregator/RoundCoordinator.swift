import Federation
import Foundation

/// The synchronous round state machine, without sockets: open a round with sampled participants, take updates
/// (validated, idempotent per (device, round)), close at all-reported or the deadline, aggregate with the strategy.
public struct RoundCoordinator: Sendable {
    public enum Decision: Sendable, Equatable {
        case accepted
        /// A retry of an accepted (device, round): acknowledged again, counted once.
        case duplicate
        case rejected(kind: String, reason: String)
    }

    public struct OpenRound: Sendable, Equatable {
        public var round: UInt64
        public var participants: [String]
        public var deadline: Double
        public var accepted: [String] = []
        public var trainLoss: [String: Float] = [:]
        public var computeS: [String: Double] = [:]
        public var updateBytes: [String: Int] = [:]
        public var samples: [String: Int] = [:]
    }

    public struct Closed: Sendable {
        public var round: UInt64
        public var outcome: RoundOutcome
        public var participants: [String]
        public var accepted: [String]
        /// Participants that did not deliver an accepted update in time (dead, slow or rejected).
        public var dropped: [String]
        public var trainLoss: Double?
        /// Samples behind the accepted updates (what a hierarchical edge reports upward).
        public var samples = 0
    }

    public var strategy: any AggregationStrategy
    public var global: GlobalModel
    /// Last completed round (0 = none yet).
    public private(set) var completedRound: UInt64
    public private(set) var current: OpenRound?
    public private(set) var rejections: [String: Int] = [:]
    public let quorum: Int

    public init(strategy: any AggregationStrategy, global: GlobalModel, completedRound: UInt64 = 0, quorum: Int) {
        self.strategy = strategy; self.global = global; self.completedRound = completedRound; self.quorum = max(1, quorum)
    }

    public var nextRound: UInt64 { completedRound + 1 }

    /// Opens the next round when at least `quorum` devices are available; returns the sampled participants.
    public mutating func open(available: [String], now: Double, deadlineS: Double) -> [String]? {
        guard current == nil, available.count >= quorum else { return nil }
        let participants = strategy.selectDevices(from: available, round: nextRound)
        guard !participants.isEmpty else { return nil }
        current = OpenRound(round: nextRound, participants: participants, deadline: now + deadlineS)
        return participants
    }

    /// Counts a rejection that happened before an update could be built (undecodable, wrong shape).
    public mutating func reject(kind: String, reason: String) -> Decision {
        rejections[kind, default: 0] += 1
        return .rejected(kind: kind, reason: reason)
    }

    public mutating func submit(_ update: ModelUpdate, computeS: Double = 0, bytes: Int = 0) -> Decision {
        guard var r = current, update.round == r.round else {
            return reject(kind: "wrong_round", reason: "update for round \(update.round) but round \(current?.round ?? completedRound) is \(current == nil ? "closed" : "open")")
        }
        if r.accepted.contains(update.device) { return .duplicate }
        guard r.participants.contains(update.device) else {
            return reject(kind: "not_participant", reason: "\(update.device) was not sampled for round \(r.round)")
        }
        do {
            _ = try strategy.submit(update, to: &global)
        } catch {
            return reject(kind: error.kind, reason: error.description)
        }
        r.accepted.append(update.device)
        r.trainLoss[update.device] = update.loss
        r.computeS[update.device] = computeS
        r.updateBytes[update.device] = bytes
        r.samples[update.device] = max(0, update.samples)
        current = r
        return .accepted
    }

    /// True when every participant reported or the deadline passed.
    public func shouldClose(now: Double) -> Bool {
        guard let r = current else { return false }
        return Set(r.accepted) == Set(r.participants) || now >= r.deadline
    }

    /// Ends the open round: aggregates if quorum was reached; otherwise the global stays as it was. Either way the
    /// round counts as done, so a run never waits forever.
    public mutating func close() -> Closed? {
        guard let r = current else { return nil }
        var outcome = strategy.closeRound(&global)
        if case .belowQuorum = outcome, var fedavg = strategy as? FedAvg {
            fedavg.abandonRound()
            strategy = fedavg
        } else if case .belowQuorum = outcome {
            outcome = .belowQuorum(received: r.accepted.count, required: quorum)
        }
        current = nil
        completedRound = r.round
        let losses = r.accepted.compactMap { r.trainLoss[$0] }
        return Closed(round: r.round, outcome: outcome, participants: r.participants, accepted: r.accepted,
                      dropped: r.participants.filter { !r.accepted.contains($0) },
                      trainLoss: losses.isEmpty ? nil : losses.map(Double.init).reduce(0, +) / Double(losses.count),
                      samples: r.accepted.reduce(0) { $0 + (r.samples[$1] ?? 0) })
    }
}
