import CMessages

// Federation rounds: announcements and models over PUB/SUB, updates and evals over DEALER/ROUTER.

public enum Paradigm: UInt32, Sendable, Equatable, CaseIterable {
    case unspecified = 0, fedAvg, clustered, hierarchical, async
}

public enum Tier: UInt32, Sendable, Equatable, CaseIterable {
    case unspecified = 0, device, edge, cloud
}

public struct RoundAnnouncement: Sendable, Equatable {
    public var round: UInt64
    public var paradigm: Paradigm
    public var tier: Tier
    public var cluster: UInt32
    public var localSteps: UInt32
    public var learningRate: Float
    /// Empty: everyone subscribed.
    public var participants: [String]
    public var deadlineS: Double
    public var modelVersion: UInt64
    /// FedProx μ (0: plain local training).
    public var proximalMu: Float
    /// FFA-LoRA: keep every lora_A fixed.
    public var freezeA: Bool
    /// IFCA: train the candidate with the lowest local loss and upload its cluster (empty: train `cluster`).
    public var candidateClusters: [UInt32]
    /// Cloud → edge: relay per-device sketches this round.
    public var wantSketches: Bool
    /// The device's privacy stage this round (nil: none).
    public var privacy: TaskPrivacy?

    public init(round: UInt64, paradigm: Paradigm = .fedAvg, tier: Tier = .device, cluster: UInt32 = 0, localSteps: UInt32 = 0,
                learningRate: Float = 0, participants: [String] = [], deadlineS: Double = 0, modelVersion: UInt64 = 0,
                proximalMu: Float = 0, freezeA: Bool = false, candidateClusters: [UInt32] = [], wantSketches: Bool = false,
                privacy: TaskPrivacy? = nil) {
        self.round = round; self.paradigm = paradigm; self.tier = tier; self.cluster = cluster; self.localSteps = localSteps
        self.learningRate = learningRate; self.participants = participants; self.deadlineS = deadlineS; self.modelVersion = modelVersion
        self.proximalMu = proximalMu; self.freezeA = freezeA; self.candidateClusters = candidateClusters; self.wantSketches = wantSketches
        self.privacy = privacy
    }

    init(c: UnsafeMutablePointer<Fi__V1__RoundAnnouncement>) throws {
        let m = c.pointee
        guard m.n_candidate_clusters <= 1 << 16 else { throw MessageError.invalidField(field: "RoundAnnouncement.candidate_clusters", reason: "\(m.n_candidate_clusters) candidates") }
        self.init(round: m.round, paradigm: try readEnum(m.paradigm.rawValue, field: "RoundAnnouncement.paradigm"),
                  tier: try readEnum(m.tier.rawValue, field: "RoundAnnouncement.tier"), cluster: m.cluster,
                  localSteps: m.local_steps, learningRate: m.learning_rate,
                  participants: readStrings(m.participants, m.n_participants), deadlineS: m.deadline_s, modelVersion: m.model_version,
                  proximalMu: m.proximal_mu, freezeA: m.freeze_a != 0,
                  candidateClusters: (0..<m.n_candidate_clusters).map { m.candidate_clusters[$0] }, wantSketches: m.want_sketches != 0,
                  privacy: try m.privacy.map { try TaskPrivacy(c: $0) })
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__RoundAnnouncement> {
        let p: UnsafeMutablePointer<Fi__V1__RoundAnnouncement> = arena.message(fi__v1__round_announcement__init)
        p.pointee.round = round; p.pointee.paradigm = Fi__V1__Paradigm(rawValue: paradigm.rawValue)
        p.pointee.tier = Fi__V1__Tier(rawValue: tier.rawValue); p.pointee.cluster = cluster
        p.pointee.local_steps = localSteps; p.pointee.learning_rate = learningRate
        p.pointee.n_participants = participants.count; p.pointee.participants = arena.strings(participants)
        p.pointee.deadline_s = deadlineS; p.pointee.model_version = modelVersion
        p.pointee.proximal_mu = proximalMu; p.pointee.freeze_a = freezeA ? 1 : 0; p.pointee.want_sketches = wantSketches ? 1 : 0
        p.pointee.n_candidate_clusters = candidateClusters.count; p.pointee.candidate_clusters = arena.array(candidateClusters)
        p.pointee.privacy = privacy.map { $0.c(arena) }
        return p
    }
}

public struct ModelBroadcast: Sendable, Equatable {
    public var round: UInt64
    public var cluster: UInt32
    public var tier: Tier
    public var modelVersion: UInt64
    public var tensors: [Tensor]

    public init(round: UInt64, cluster: UInt32 = 0, tier: Tier = .device, modelVersion: UInt64 = 0, tensors: [Tensor] = []) {
        self.round = round; self.cluster = cluster; self.tier = tier; self.modelVersion = modelVersion; self.tensors = tensors
    }

    init(c: UnsafeMutablePointer<Fi__V1__ModelBroadcast>, _ ctx: inout DecodeContext) throws {
        let m = c.pointee
        self.init(round: m.round, cluster: m.cluster, tier: try readEnum(m.tier.rawValue, field: "ModelBroadcast.tier"),
                  modelVersion: m.model_version,
                  tensors: try readMessages(m.tensors, m.n_tensors, field: "ModelBroadcast.tensors") { try Tensor(c: $0, &ctx) })
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__ModelBroadcast> {
        let p: UnsafeMutablePointer<Fi__V1__ModelBroadcast> = arena.message(fi__v1__model_broadcast__init)
        p.pointee.round = round; p.pointee.cluster = cluster; p.pointee.tier = Fi__V1__Tier(rawValue: tier.rawValue)
        p.pointee.model_version = modelVersion
        p.pointee.n_tensors = tensors.count; p.pointee.tensors = arena.messages(tensors) { $0.c(arena) }
        return p
    }
}

public struct ModelRequest: Sendable, Equatable {
    public var cluster: UInt32
    public var tier: Tier

    public init(cluster: UInt32 = 0, tier: Tier = .device) { self.cluster = cluster; self.tier = tier }

    init(c: UnsafeMutablePointer<Fi__V1__ModelRequest>) throws {
        self.init(cluster: c.pointee.cluster, tier: try readEnum(c.pointee.tier.rawValue, field: "ModelRequest.tier"))
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__ModelRequest> {
        let p: UnsafeMutablePointer<Fi__V1__ModelRequest> = arena.message(fi__v1__model_request__init)
        p.pointee.cluster = cluster; p.pointee.tier = Fi__V1__Tier(rawValue: tier.rawValue)
        return p
    }
}

public struct UpdateUpload: Sendable, Equatable {
    public var round: UInt64
    public var cluster: UInt32
    /// Model version the delta was trained from.
    public var baseVersion: UInt64
    public var samples: UInt64
    public var trainLoss: Float
    public var delta: [Tensor]
    public var tier: Tier
    /// Simulated compute time of the local work.
    public var computeS: Double
    /// DP reports, the masked input of secure aggregation (nil: none).
    public var privacy: UploadPrivacy?

    public init(round: UInt64, cluster: UInt32 = 0, baseVersion: UInt64 = 0, samples: UInt64 = 0, trainLoss: Float = 0,
                delta: [Tensor] = [], tier: Tier = .device, computeS: Double = 0, privacy: UploadPrivacy? = nil) {
        self.round = round; self.cluster = cluster; self.baseVersion = baseVersion; self.samples = samples
        self.trainLoss = trainLoss; self.delta = delta; self.tier = tier; self.computeS = computeS; self.privacy = privacy
    }

    init(c: UnsafeMutablePointer<Fi__V1__UpdateUpload>, _ ctx: inout DecodeContext) throws {
        let m = c.pointee
        self.init(round: m.round, cluster: m.cluster, baseVersion: m.base_version, samples: m.samples, trainLoss: m.train_loss,
                  delta: try readMessages(m.delta, m.n_delta, field: "UpdateUpload.delta") { try Tensor(c: $0, &ctx) },
                  tier: try readEnum(m.tier.rawValue, field: "UpdateUpload.tier"), computeS: m.compute_s,
                  privacy: try m.privacy.map { try UploadPrivacy(c: $0, &ctx) })
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__UpdateUpload> {
        let p: UnsafeMutablePointer<Fi__V1__UpdateUpload> = arena.message(fi__v1__update_upload__init)
        p.pointee.round = round; p.pointee.cluster = cluster; p.pointee.base_version = baseVersion
        p.pointee.samples = samples; p.pointee.train_loss = trainLoss
        p.pointee.n_delta = delta.count; p.pointee.delta = arena.messages(delta) { $0.c(arena) }
        p.pointee.tier = Fi__V1__Tier(rawValue: tier.rawValue); p.pointee.compute_s = computeS
        p.pointee.privacy = privacy.map { $0.c(arena) }
        return p
    }
}

public struct UpdateAck: Sendable, Equatable {
    public var round: UInt64
    public var accepted: Bool
    /// Why an update was rejected.
    public var reason: String
    /// A retry of an already accepted (device, round).
    public var duplicate: Bool

    public init(round: UInt64, accepted: Bool, reason: String = "", duplicate: Bool = false) {
        self.round = round; self.accepted = accepted; self.reason = reason; self.duplicate = duplicate
    }

    init(c: UnsafeMutablePointer<Fi__V1__UpdateAck>) {
        let m = c.pointee
        self.init(round: m.round, accepted: m.accepted != 0, reason: readString(m.reason), duplicate: m.duplicate != 0)
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__UpdateAck> {
        let p: UnsafeMutablePointer<Fi__V1__UpdateAck> = arena.message(fi__v1__update_ack__init)
        p.pointee.round = round; p.pointee.accepted = accepted ? 1 : 0
        p.pointee.reason = arena.string(reason); p.pointee.duplicate = duplicate ? 1 : 0
        return p
    }
}

public struct EvalRequest: Sendable, Equatable {
    public var round: UInt64
    public var cluster: UInt32

    public init(round: UInt64, cluster: UInt32 = 0) { self.round = round; self.cluster = cluster }

    init(c: UnsafeMutablePointer<Fi__V1__EvalRequest>) { self.init(round: c.pointee.round, cluster: c.pointee.cluster) }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__EvalRequest> {
        let p: UnsafeMutablePointer<Fi__V1__EvalRequest> = arena.message(fi__v1__eval_request__init)
        p.pointee.round = round; p.pointee.cluster = cluster
        return p
    }
}

public struct EvalResult: Sendable, Equatable {
    public var round: UInt64
    public var domain: String
    public var valLoss: Float
    public var tokens: UInt64

    public init(round: UInt64, domain: String = "", valLoss: Float = 0, tokens: UInt64 = 0) {
        self.round = round; self.domain = domain; self.valLoss = valLoss; self.tokens = tokens
    }

    init(c: UnsafeMutablePointer<Fi__V1__EvalResult>) {
        let m = c.pointee
        self.init(round: m.round, domain: readString(m.domain), valLoss: m.val_loss, tokens: m.tokens)
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__EvalResult> {
        let p: UnsafeMutablePointer<Fi__V1__EvalResult> = arena.message(fi__v1__eval_result__init)
        p.pointee.round = round; p.pointee.domain = arena.string(domain)
        p.pointee.val_loss = valLoss; p.pointee.tokens = tokens
        return p
    }
}
