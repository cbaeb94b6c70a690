import Reports

// The round engine's vocabulary: what goes in (events), what comes out (effects), and what a task is.
// Nothing here touches a socket, a file or a clock; the services and the simulator translate.

/// Where an aggregator sits: flat (devices → this), an edge (devices → this → the cloud, presenting itself to the
/// cloud as one participant), or the cloud of a hierarchy (its participants are the edges).
public enum TierRole: Sendable, Equatable, Codable {
    case flat
    case edge(ordinal: Int)
    case cloud
}

/// Local training settings a task carries to the participant.
public struct LocalSettings: Sendable, Equatable, Codable {
    public var steps: Int
    public var learningRate: Float
    /// FedProx's μ: the device adds μ/2·‖w − w_global‖² to its loss (0: plain local SGD).
    public var proximalMu: Float
    /// FFA-LoRA: the device keeps A frozen.
    public var freezeA: Bool

    public init(steps: Int, learningRate: Float, proximalMu: Float = 0, freezeA: Bool = false) {
        self.steps = steps; self.learningRate = learningRate; self.proximalMu = proximalMu; self.freezeA = freezeA
    }
}

/// What one participant is asked to do in a round.
public struct RoundTask: Sendable, Equatable, Codable {
    /// The number the participant sees as round and model version (monotonic across the whole run).
    public var wire: UInt64
    /// The engine's round number (a cloud tells its edges, which finish after the last one).
    public var round: Int
    /// The participant's cluster: the model it trains (unless it chooses among `models`).
    public var cluster: Int
    /// Clusters whose models go with the task: its own, every cluster (IFCA), or an edge's devices' clusters.
    public var models: [Int]
    /// IFCA: train the model with the lowest loss on local data, and report which.
    public var chooseByLoss: Bool
    public var settings: LocalSettings
    /// Cloud → edge: the clusters of the edge's devices.
    public var clusterMap: [String: Int]?
    /// Cloud → edge: relay a sketch of each device's summed deltas (the cloud re-clusters after this round).
    public var sketches: Bool
    /// The device's privacy stage this round: its clip (and noise share) under DP.
    public var privacy: DevicePrivacy?

    public init(wire: UInt64, round: Int = 0, cluster: Int, models: [Int], chooseByLoss: Bool = false, settings: LocalSettings,
                clusterMap: [String: Int]? = nil, sketches: Bool = false, privacy: DevicePrivacy? = nil) {
        self.wire = wire; self.round = round; self.cluster = cluster; self.models = models; self.chooseByLoss = chooseByLoss
        self.settings = settings; self.clusterMap = clusterMap; self.sketches = sketches; self.privacy = privacy
    }
}

/// A message to participants.
public enum Outbound: Sendable, Equatable {
    /// A training task with the models it names (wire = the task's wire).
    case task(RoundTask, models: [Int: [Float]])
    /// Evaluate your cluster's model: one model for a device; an edge gets its devices' clusters and models.
    case evaluate(wire: UInt64, cluster: Int, models: [Int: [Float]], clusterMap: [String: Int]?)
    /// A step of secure aggregation.
    case secAgg(SecAggOutbound)
}

/// Encrypted shares, to (device → aggregator) or from (aggregator → device) a peer.
public struct SecAggCiphertext: Sendable, Equatable {
    public var peer: String
    public var bytes: [UInt8]
    public init(peer: String, bytes: [UInt8]) { self.peer = peer; self.bytes = bytes }
}

/// Secure aggregation, aggregator → device.
public enum SecAggOutbound: Sendable, Equatable {
    /// Your group, point, threshold, neighbours' keys and encoding.
    case roster(SecAggAssignment)
    /// The shares your neighbours that completed the sharing step sent you.
    case shares(wire: UInt64, group: Int, [SecAggCiphertext])
    /// Reveal shares of the survivors' self-mask seeds and of the dropped devices' mask keys.
    case unmask(wire: UInt64, group: Int, survivors: [String], dropped: [String])

    /// Payload bytes (the engine's traffic counters; the wire adds a few bytes of framing).
    public var payloadBytes: Int {
        switch self {
        case .roster(let a): return 64 + a.neighbours.reduce(0) { $0 + $1.id.utf8.count + 72 }
        case .shares(_, _, let cts): return 16 + cts.reduce(0) { $0 + $1.peer.utf8.count + $1.bytes.count + 6 }
        case .unmask(_, _, let s, let d): return 16 + (s + d).reduce(0) { $0 + $1.utf8.count + 2 }
        }
    }
}

/// Secure aggregation, device → aggregator (the masked input itself is an Upload with `masked`).
public enum SecAggInbound: Sendable, Equatable {
    case keys(wire: UInt64, cluster: Int, keys: SecAggPublicKeys, samples: Int)
    case shares(wire: UInt64, group: Int, [SecAggCiphertext])
    case reveal(wire: UInt64, group: Int, [SecAggRevealedShare])
}

/// A message from an edge to its cloud.
public enum UpstreamOutbound: Sendable, Equatable {
    /// One cluster's edge model − the cloud model it started from, after κ2 edge rounds.
    case contribution(wire: UInt64, cluster: Int, samples: Int, loss: Float, delta: [Float], computeS: Double, epsilon: Double?)
    /// A device's sketch of its summed deltas this cloud round (sender = the device).
    case sketch(device: String, wire: UInt64, cluster: Int, vector: [Float])
    /// A device's evaluation of the cloud model, relayed (sender = the device).
    case evaluation(device: String, Evaluation)
    /// Ask the cloud to replay what it last sent.
    case modelRequest
}

/// One upload (UpdateUpload) as the engine sees it; the service decodes the tensors.
public struct Upload: Sendable, Equatable {
    public enum Kind: Sendable, Equatable, Codable {
        /// A participant's delta for `cluster`.
        case update
        /// A device's sketch relayed by its edge (the upload's sender is the device).
        case sketch
    }
    public var kind: Kind
    public var wire: UInt64
    public var cluster: Int
    /// The model version the participant trained from (= the task's wire).
    public var baseWire: UInt64
    public var samples: Int
    public var loss: Float
    /// The decoded delta, or why it could not be decoded (kind, reason).
    public var delta: Result<[Float], RejectedUpdate>
    /// Simulated compute time of the local work.
    public var computeS: Double
    /// Bytes on the wire.
    public var bytes: Int
    /// Distributed DP with adaptive clipping: the device's noised unclipped indicator.
    public var clipReport: Float?
    /// Secure aggregation: the masked input (its delta is empty).
    public var masked: [UInt32]?
    /// Edge → cloud: ε its devices have spent (DP at the edge).
    public var epsilon: Double?
    /// Secure aggregation: the device's noised sketch, when its task asked for one.
    public var sketch: [Float]?

    public init(kind: Kind = .update, wire: UInt64, cluster: Int = 0, baseWire: UInt64, samples: Int, loss: Float,
                delta: Result<[Float], RejectedUpdate>, computeS: Double = 0, bytes: Int = 0, clipReport: Float? = nil, masked: [UInt32]? = nil,
                epsilon: Double? = nil, sketch: [Float]? = nil) {
        self.kind = kind; self.wire = wire; self.cluster = cluster; self.baseWire = baseWire; self.samples = samples
        self.loss = loss; self.delta = delta; self.computeS = computeS; self.bytes = bytes; self.clipReport = clipReport; self.masked = masked
        self.epsilon = epsilon; self.sketch = sketch
    }
}

/// A device's validation loss of the model it was asked to evaluate.
public struct Evaluation: Sendable, Equatable, Codable {
    public var wire: UInt64
    public var domain: String
    public var loss: Float
    public var tokens: Int
    public init(wire: UInt64, domain: String, loss: Float, tokens: Int) {
        self.wire = wire; self.domain = domain; self.loss = loss; self.tokens = tokens
    }
}

/// A node in the cluster manager's map, as an aggregator needs it.
public struct Member: Sendable, Equatable {
    public enum Role: Sendable, Equatable { case device, edgeAggregator, other }
    public var id: String
    public var role: Role
    /// Hierarchical: the edge ordinal a device sits behind, or an edge aggregator's own.
    public var edge: Int
    public var alive: Bool
    public init(id: String, role: Role, edge: Int = 0, alive: Bool = true) { self.id = id; self.role = role; self.edge = edge; self.alive = alive }
}

/// What the cloud sends an edge (one piece per message; the edge starts once it holds a task's map and models).
public enum UpstreamEvent: Sendable, Equatable {
    case task(RoundTask)
    case map(wire: UInt64, clusters: [String: Int])
    case model(wire: UInt64, cluster: Int, parameters: [Float])
    case evaluate(wire: UInt64)
    case ack(wire: UInt64, accepted: Bool, reason: String)
}

public enum EngineEvent: Sendable {
    /// The cluster manager's map changed (every member, alive or not).
    case members([Member])
    case upload(from: String, Upload)
    case evaluation(from: String, Evaluation)
    /// A participant lacks what it was sent (it connected late, or the aggregator restarted): send it again.
    case modelRequest(from: String)
    case upstream(UpstreamEvent)
    /// A step of secure aggregation (`bytes` on the wire).
    case secAgg(from: String, SecAggInbound, bytes: Int)
    /// Time passes: deadlines, resends, starting rounds.
    case tick
}

/// The answer to an upload.
public enum Decision: Sendable, Equatable {
    case accepted
    /// A retry of an accepted upload: acknowledged again, counted once.
    case duplicate
    case rejected(kind: String, reason: String)
}

public enum EngineEffect: Sendable {
    case send(Outbound, to: [String])
    /// Re-send the small messages of what `to` was last sent (a participant missing a model asks for it).
    case resend(Outbound, to: [String])
    /// Reply to the upload being handled.
    case acknowledge(Decision, wire: UInt64)
    case upstream(UpstreamOutbound)
    /// The device → cluster map, for the cluster manager to publish.
    case clusterMap([String: Int])
    case record(MetricRecord)
    case updateLog(AsyncUpdateRecord)
    /// Persist before acting on what follows (the engine's write-ahead journal).
    case journal(JournalEntry)
    /// Persist the whole state (truncates the journal).
    case checkpoint(EngineSnapshot)
    case log(EngineLogLevel, kind: String, String)
    /// The run is over (the summary is nil for an edge).
    case finished(RunSummary?)

    /// Journal entries and checkpoints: the interpreter performs these first.
    public var persists: Bool {
        switch self {
        case .journal, .checkpoint: return true
        default: return false
        }
    }
}

public enum EngineLogLevel: Sendable, Equatable { case info, warn, error }
