import Foundation

// User-level DP-FedAvg (McMahan et al. 2018) as a stage of every algorithm: each update is clipped to C, the round's
// clipped updates are summed with unit weight, Gaussian noise of std σ·C is added to the sum (by the aggregator,
// `central`, or as one share per device, `distributed`), and the sum is divided by the round's planned participants
// (the fixed denominator, so the step does not depend on who happened to deliver). C can track a quantile of the
// update norms (Andrew et al. 2021). The RDP accountant turns the rounds into ε at δ.

/// `privacy:` of an experiment, as the federation math sees it.
public struct PrivacySettings: Sendable, Equatable, Codable {
    public enum Mode: String, Sendable, Equatable, Codable, CaseIterable {
        /// The aggregator clips each update and adds the noise to the sum.
        case central
        /// Each device clips its update and adds its share of the noise (for secure aggregation).
        case distributed
    }

    /// C: the L2 bound of one device's update (the initial C when adaptive).
    public var clip: Double
    public var adaptive: AdaptiveClipping?
    /// σ: noise std over the sum's sensitivity C. 0: clipping only (no DP guarantee).
    public var noiseMultiplier: Double
    public var delta: Double
    /// The run stops before a round that would take ε at δ past this.
    public var targetEpsilon: Double?
    public var mode: Mode
    /// Secure aggregation at this tier (the aggregator sees only each group's sum).
    public var secure: SecAggSettings?

    public init(clip: Double, adaptive: AdaptiveClipping? = nil, noiseMultiplier: Double, delta: Double = 1e-5,
                targetEpsilon: Double? = nil, mode: Mode = .central, secure: SecAggSettings? = nil) {
        self.clip = clip; self.adaptive = adaptive; self.noiseMultiplier = noiseMultiplier; self.delta = delta
        self.targetEpsilon = targetEpsilon; self.mode = mode; self.secure = secure
    }

    public var isDifferentiallyPrivate: Bool { noiseMultiplier > 0 }
    /// Devices clip their own updates (the aggregator never sees them one by one, or does not noise them).
    public var devicesClip: Bool { mode == .distributed || secure != nil }
}

/// Quantile-tracking clip (Andrew et al. 2021): each round C ← C·exp(−η·(b̄ − γ)), where b̄ is the noised fraction of
/// updates no longer than C. The count's noise costs privacy too: the updates get σ_Δ = (σ⁻² − (2σ_b)⁻²)^(−1/2), so
/// the pair is one Gaussian mechanism of multiplier σ.
public struct AdaptiveClipping: Sendable, Equatable, Codable {
    /// γ: the fraction of updates that should be left unclipped.
    public var quantile: Double
    /// η: the geometric step of C per round.
    public var learningRate: Double
    /// σ_b: noise std of the unclipped count; nil = max(expected participants / 20, σ) (the paper's m/20, raised so
    /// σ_Δ stays within 16% of σ on small rounds).
    public var countNoise: Double?

    public init(quantile: Double = 0.5, learningRate: Double = 0.2, countNoise: Double? = nil) {
        self.quantile = quantile; self.learningRate = learningRate; self.countNoise = countNoise
    }
}

/// What a task tells a device about privacy: clip its update to `clip`, add N(0, noiseStd²) per coordinate
/// (distributed mode), report whether it was unclipped plus N(0, countNoiseStd²) (adaptive clipping), and upload
/// through secure aggregation.
public struct DevicePrivacy: Sendable, Equatable, Codable {
    public var clip: Double
    public var noiseStd: Double
    public var reportClipped: Bool
    public var countNoiseStd: Double
    public var secure: Bool
    /// Also release a noised sketch of the clipped update (IFCA's seeding under secure aggregation).
    public var sketch: SketchRequest?

    public init(clip: Double, noiseStd: Double = 0, reportClipped: Bool = false, countNoiseStd: Double = 0, secure: Bool = false,
                sketch: SketchRequest? = nil) {
        self.clip = clip; self.noiseStd = noiseStd; self.reportClipped = reportClipped; self.countNoiseStd = countNoiseStd
        self.secure = secure; self.sketch = sketch
    }

    /// The device's privacy stage, between local training and encoding: clips `delta` (and noises it); returns the
    /// noised unclipped indicator when asked for one.
    public func apply(_ delta: inout [Float], using rng: inout ChaChaRandom) -> Float? { privatise(&delta, using: &rng).clipReport }

    /// `apply`, plus the noised sketch when the task asks for one.
    public func privatise(_ delta: inout [Float], using rng: inout ChaChaRandom) -> (clipReport: Float?, sketch: [Float]?) {
        let norm = GaussianMechanism.clip(&delta, to: clip)
        let sketch = self.sketch.map { $0.release(of: delta, clip: clip, using: &rng) }
        GaussianMechanism.addNoise(&delta, std: noiseStd, using: &rng)
        guard reportClipped else { return (nil, sketch) }
        return (Float((norm <= clip ? 1 : 0) + rng.nextGaussian() * countNoiseStd), sketch)
    }
}

/// A sketch a device releases beside its masked update so the aggregator can cluster without seeing updates:
/// P·Δ (a seeded random projection shared by the round's devices) clipped to C, plus N(0, noiseStd²) per coordinate.
/// Clipping in sketch space bounds one device's influence by C whatever P's norm, so at noiseStd = σ·C the release is
/// a Gaussian mechanism of multiplier σ (the ledger charges it as one more release of the round).
public struct SketchRequest: Sendable, Equatable, Codable {
    public var dimension: Int
    public var noiseStd: Double
    public var seed: UInt64
    public init(dimension: Int, noiseStd: Double, seed: UInt64) { self.dimension = dimension; self.noiseStd = noiseStd; self.seed = seed }

    public func release(of clipped: [Float], clip: Double, using rng: inout ChaChaRandom) -> [Float] {
        var s = RandomProjection(inputDimension: clipped.count, outputDimension: dimension, seed: seed).project([clipped])[0]
        _ = GaussianMechanism.clip(&s, to: clip)
        GaussianMechanism.addNoise(&s, std: noiseStd, using: &rng)
        return s
    }
}

/// How one model's round combines under DP (RoundAggregate applies it).
public struct PrivateCombine: Sendable, Equatable {
    public var clip: Double
    /// The aggregator clips each update (central without secure aggregation); otherwise the devices did.
    public var clipsHere: Bool
    /// Std of the noise the aggregator adds to the sum of updates (central: σ_Δ·C).
    public var noiseStd: Double
    /// Std of the noise on the unclipped count (central adaptive clipping).
    public var countNoiseStd: Double
    /// The fixed denominator under DP; nil = the updates received (no noise to hide the count behind, or IFCA, where
    /// devices pick their cluster after the plan).
    public var planned: Int?
    /// The noise stream: a secret key and this round's and cluster's nonce.
    public var key: [UInt8]
    public var nonce: UInt64
}

/// How every cluster of one round combines under DP: planned clusters with their fixed denominators, any other
/// (a device choosing its cluster) with the count received.
public struct RoundPrivacy: Sendable, Equatable {
    public var clusters: [Int: PrivateCombine]
    /// Unplanned clusters: this with the cluster's own nonce.
    public var other: PrivateCombine
    public func combine(for cluster: Int) -> PrivateCombine {
        if let p = clusters[cluster] { return p }
        var p = other
        p.nonce = p.nonce & ~0xFFF | UInt64(cluster & 0xFFF)
        return p
    }
}

/// What DP did to one model's round.
public struct PrivateRoundReport: Sendable, Equatable {
    public var delivered: Int
    public var planned: Int
    /// Σ unclipped indicators (noised).
    public var unclipped: Double
}

/// The privacy state of a run: the accountant, the current clip and the secret noise key (persisted in snapshots).
public struct PrivacyLedger: Sendable, Equatable, Codable {
    public let settings: PrivacySettings
    public private(set) var accountant = RDPAccountant()
    /// The clip of the next round (moves when adaptive).
    public private(set) var clip: Double
    /// Key of the central noise stream: drawn from the system's CSPRNG, never derived from the experiment seed.
    let key: [UInt8]
    /// The open round: participants sampled and the pool they came from (the accountant's q = expected/population).
    public private(set) var open: OpenRound?
    public struct OpenRound: Sendable, Equatable, Codable {
        public var expected: Int; public var population: Int
        /// The round's devices also release sketches (one more Gaussian release each).
        public var sketches: Bool?
    }

    public init(settings: PrivacySettings, key: [UInt8] = ChaChaRandom.freshKey()) {
        self.settings = settings; self.clip = settings.clip; self.key = key
    }

    public var epsilon: Double { accountant.epsilon(delta: settings.delta).epsilon }
    var sigma: Double { settings.noiseMultiplier }

    /// σ_b for `expected` participants.
    func countNoise(expected: Int) -> Double {
        guard let a = settings.adaptive else { return 0 }
        return a.countNoise ?? max(Double(expected) / 20, sigma)
    }

    /// σ_Δ: the updates' share of σ once the count took its own (σ itself without adaptive clipping).
    func updateSigma(expected: Int) -> Double {
        let sb = countNoise(expected: expected)
        guard settings.adaptive != nil, sigma > 0, sb > 0 else { return sigma }
        let rest = 1 / (sigma * sigma) - 1 / (4 * sb * sb)
        return rest > 0 ? 1 / rest.squareRoot() : .infinity
    }

    /// The device's part for a round of `expected` participants, `share` of whom are summed together (a cluster).
    public func task(expected: Int, share: Int) -> DevicePrivacy {
        let distributed = settings.mode == .distributed
        let n = Double(max(1, share))
        return DevicePrivacy(clip: clip, noiseStd: distributed ? updateSigma(expected: expected) * clip / n.squareRoot() : 0,
                             reportClipped: settings.adaptive != nil && settings.devicesClip,
                             countNoiseStd: distributed ? countNoise(expected: expected) / n.squareRoot() : 0, secure: settings.secure != nil)
    }

    /// How cluster `cluster` of round `wire` combines, with `planned` participants (nil: unknown until they deliver).
    public func combine(wire: UInt64, cluster: Int, planned: Int?, expected: Int) -> PrivateCombine {
        let central = settings.mode == .central
        return PrivateCombine(clip: clip, clipsHere: !settings.devicesClip, noiseStd: central ? updateSigma(expected: expected) * clip : 0,
                              countNoiseStd: central ? countNoise(expected: expected) : 0, planned: sigma > 0 ? planned : nil, key: key,
                              nonce: wire << 12 | UInt64(cluster & 0xFFF))
    }

    /// Opens a round of `expected` participants sampled from `population`.
    public mutating func open(expected: Int, population: Int, sketches: Bool = false) {
        open = OpenRound(expected: expected, population: population, sketches: sketches ? true : nil)
    }

    /// The sketch a seeding round under secure aggregation asks for: noise σ·C (none without DP).
    public func sketchRequest(dimension: Int, seed: UInt64) -> SketchRequest {
        SketchRequest(dimension: dimension, noiseStd: sigma * clip, seed: seed)
    }

    /// The open round's combines: planned clusters (cluster → participants; nil when devices choose their cluster).
    public func round(wire: UInt64, clusters: [Int: Int]?) -> RoundPrivacy {
        let expected = open?.expected ?? clusters?.values.reduce(0, +) ?? 1
        var planned: [Int: PrivateCombine] = [:]
        for (c, n) in clusters ?? [:] { planned[c] = combine(wire: wire, cluster: c, planned: n, expected: expected) }
        return RoundPrivacy(clusters: planned, other: combine(wire: wire, cluster: 0, planned: nil, expected: expected))
    }

    /// The noise multiplier a round's releases actually had: the smallest over its clusters (a distributed round
    /// whose devices dropped summed fewer noise shares).
    func realisedSigma(_ reports: [PrivateRoundReport], expected: Int) -> Double {
        let sd = updateSigma(expected: expected), sb = countNoise(expected: expected)
        var worst = Double.infinity
        for r in reports where r.delivered > 0 {
            let kept = settings.mode == .distributed ? (Double(r.delivered) / Double(max(1, r.planned))).squareRoot() : 1
            let (u, b) = (sd * kept, 2 * sb * kept)
            let z = settings.adaptive == nil ? u : 1 / (1 / (u * u) + 1 / (b * b)).squareRoot()
            worst = min(worst, z)
        }
        return worst
    }

    /// Accounts the open round from its clusters' reports, then moves C.
    public mutating func close(_ reports: [PrivateRoundReport]) {
        defer { open = nil }
        guard let (expected, population) = open.map({ ($0.expected, $0.population) }), reports.contains(where: { $0.delivered > 0 }) else { return }
        if sigma > 0 {
            let q = min(1, Double(expected) / Double(max(1, population)))
            accountant.compose(q: q, sigma: realisedSigma(reports, expected: expected))
            if open?.sketches == true { accountant.compose(q: q, sigma: sigma) }
        }
        if let a = settings.adaptive {
            let b = reports.reduce(0) { $0 + $1.unclipped } / Double(max(1, reports.reduce(0) { $0 + $1.planned }))
            clip *= exp(-a.learningRate * (b - a.quantile))
        }
    }

    /// Would one more round of `expected` of `population` take ε past the target?
    public func exhausted(expected: Int, population: Int) -> Bool {
        guard let target = settings.targetEpsilon, sigma > 0 else { return false }
        var next = accountant
        next.compose(q: min(1, Double(expected) / Double(max(1, population))), sigma: sigma)
        return next.epsilon(delta: settings.delta).epsilon > target
    }

    /// Summary notes.
    public var notes: [String: String] {
        var n = ["dp_mode": settings.mode.rawValue, "dp_noise_multiplier": String(format: "%.4f", sigma),
                 "dp_clip": String(format: "%.6g", clip), "dp_delta": "\(settings.delta)", "dp_rounds": "\(accountant.steps)"]
        if sigma > 0 {
            let e = accountant.epsilon(delta: settings.delta)
            n["dp_epsilon"] = String(format: "%.4f", e.epsilon)
            n["dp_order"] = String(format: "%.1f", e.order)
        }
        if let t = settings.targetEpsilon { n["dp_target_epsilon"] = "\(t)" }
        if settings.adaptive != nil { n["dp_adaptive_clip"] = "true" }
        return n
    }
}

/// The cloud of a hierarchy with DP at its edges (the first tier): the edges account their own devices and report ε
/// with each contribution; the cloud stops on the planned spend, κ2 edge rounds per cloud round at the busiest edge's
/// sampling rate (an edge whose distributed noise lost shares to dropouts reports more than planned).
public struct CloudPrivacy: Sendable, Equatable {
    public var settings: PrivacySettings
    public var q: Double
    public var edgeRoundsPerCloudRound: Int
    public init(settings: PrivacySettings, q: Double, edgeRoundsPerCloudRound: Int) {
        self.settings = settings; self.q = q; self.edgeRoundsPerCloudRound = edgeRoundsPerCloudRound
    }

    /// Would `cloudRounds` cloud rounds take the planned ε past the target?
    public func exhausted(cloudRounds: Int) -> Bool {
        guard let target = settings.targetEpsilon, settings.noiseMultiplier > 0 else { return false }
        var a = RDPAccountant()
        a.compose(q: q, sigma: settings.noiseMultiplier, count: cloudRounds * edgeRoundsPerCloudRound)
        return a.epsilon(delta: settings.delta).epsilon > target
    }
}
