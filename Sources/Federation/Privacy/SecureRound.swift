/// One round's secure aggregation over all its groups. First every participant advertises its keys and the cluster
/// it trains (IFCA devices choose before they train); then the participants of each cluster form groups of at most
/// `maxGroup`, each run by a SecAggServer. The engine closes each step at its deadline (RoundEngine+Secure.swift).
public struct SecureRound: Sendable {
    public enum Step: Sendable, Equatable { case keys, groups }

    /// An advertised participant.
    public struct Advert: Sendable, Equatable {
        public var cluster: Int
        public var keys: SecAggPublicKeys
        public var samples: Int
    }

    /// One finished group: the unmasked sum (the vector's last `extras` words are the clip-report sum).
    public struct Result: Sendable {
        public var cluster: Int
        public var sum: [Double]
        public var contributors: [String]
    }

    public let wire: UInt64
    public let settings: SecAggSettings
    public let participants: Set<String>
    public private(set) var step = Step.keys
    public private(set) var adverts: [String: Advert] = [:]
    public private(set) var groups: [SecAggServer] = []
    /// Each group's cluster and its current step's deadline.
    public private(set) var clusters: [Int] = []
    public var deadlines: [Double] = []
    public var keysDeadline: Double
    var groupOf: [String: Int] = [:]
    /// Results and failures of groups that ended.
    public private(set) var results: [Int: Result] = [:]
    public private(set) var failures: [Int: String] = [:]

    public init(wire: UInt64, settings: SecAggSettings, participants: [String], keysDeadline: Double) {
        self.wire = wire; self.settings = settings; self.participants = Set(participants); self.keysDeadline = keysDeadline
    }

    public var allAdvertised: Bool { Set(adverts.keys) == participants }
    public var finished: Bool { step == .groups && groups.indices.allSatisfy { results[$0] != nil || failures[$0] != nil } }
    public func group(of id: String) -> Int? { groupOf[id] }

    /// A participant's keys (a repeat is ignored).
    public mutating func advertise(_ id: String, _ a: Advert) throws {
        guard participants.contains(id) else { throw SecAggError.unknownPeer(id) }
        if adverts[id] == a { return }  // a repeat (the device saw its task again)
        guard step == .keys else { throw SecAggError.wrongPhase("keys from \(id) after the groups formed") }
        if adverts[id] == nil { adverts[id] = a }
    }

    /// Forms the groups from the adverts: per cluster, sorted by id, split into near-equal groups of at most
    /// `maxGroup`. `plan(cluster, members)` gives each member's weight and clamp bound and the vector length.
    public mutating func formGroups(plan: (Int, [String]) -> (weights: [String: Double], bounds: [String: Double], length: Int),
                                    deadline: Double) -> [String: SecAggAssignment] {
        step = .groups
        var byCluster: [Int: [String]] = [:]
        for (id, a) in adverts { byCluster[a.cluster, default: []].append(id) }
        var out: [String: SecAggAssignment] = [:]
        for c in byCluster.keys.sorted() {
            let ids = byCluster[c]!.sorted()
            let p = plan(c, ids)
            let parts = (ids.count + settings.maxGroup - 1) / settings.maxGroup
            for g in 0..<parts {
                let chunk = ids.enumerated().filter { $0.offset % parts == g }.map(\.element)
                let index = groups.count
                let server = SecAggServer(wire: wire, group: index, keys: Dictionary(uniqueKeysWithValues: chunk.map { ($0, adverts[$0]!.keys) }),
                                          weights: p.weights, bounds: p.bounds, length: p.length, neighbours: settings.neighbours)
                groups.append(server); clusters.append(c); deadlines.append(deadline)
                for id in chunk {
                    groupOf[id] = index
                    if chunk.count < 2 {
                        continue  // a group of one cannot hide anything: it fails below
                    }
                    out[id] = server.assignment(for: id)
                }
                if chunk.count < 2 { failures[index] = "a group of one device cannot be aggregated securely" }
            }
        }
        return out
    }

    public mutating func withGroup<T>(_ g: Int, _ body: (inout SecAggServer) throws -> T) rethrows -> T {
        try body(&groups[g])
    }

    /// Group `g` ended: its sum, or why not.
    public mutating func end(_ g: Int, _ outcome: Swift.Result<([Double], [String]), SecAggError>) {
        switch outcome {
        case .success(let (sum, who)): results[g] = Result(cluster: clusters[g], sum: sum, contributors: who)
        case .failure(let e): failures[g] = e.description
        }
    }
}
