import Federation

// The `privacy:` section: DP-FedAvg's clip (fixed or adaptive), noise (σ, or the σ a target ε needs), δ, where the
// noise is added, and secure aggregation. Combinations the privacy stage cannot honour are errors naming both keys.
//
//   privacy:
//     clip: 0.5                  # C (required)
//     adaptive_clip: true        # or {quantile: 0.5, lr: 0.2, count_noise: 5}
//     noise_multiplier: 1.0      # σ; or target_epsilon alone (σ is then chosen for the planned rounds)
//     target_epsilon: 8          # the run stops before a round that would pass it
//     delta: 1e-5
//     mode: central              # central | distributed
//     secure_aggregation: true   # or {neighbours: k (SecAgg+; 0 = everyone), max_group: 255}

extension Experiment {
    static let privacyKeys = ["clip", "adaptive_clip", "noise_multiplier", "target_epsilon", "delta", "mode", "secure_aggregation"]

    static func parsePrivacy(_ p: Keys, into e: inout Experiment) throws {
        try p.only(privacyKeys)
        guard let clip = try p.double("clip", positive: true) else {
            throw ExperimentError.badValue(key: "privacy.clip", value: "(missing)", reason: "DP clips every update to an L2 norm C: set privacy.clip")
        }
        var s = PrivacySettings(clip: clip, noiseMultiplier: 0)
        if let raw = p.raw("adaptive_clip") {
            if let on = raw as? Bool {
                s.adaptive = on ? AdaptiveClipping() : nil
            } else {
                let a = try Keys(raw, path: "privacy.adaptive_clip")
                try a.only(["quantile", "lr", "count_noise"])
                var ac = AdaptiveClipping()
                ac.quantile = try a.double("quantile", positive: true) ?? ac.quantile
                guard ac.quantile < 1 else {
                    throw ExperimentError.badValue(key: "privacy.adaptive_clip.quantile", value: "\(ac.quantile)", reason: "a fraction in (0, 1)")
                }
                ac.learningRate = try a.double("lr", positive: true) ?? ac.learningRate
                ac.countNoise = try a.double("count_noise", positive: true)
                s.adaptive = ac
            }
        }
        s.delta = try p.double("delta", positive: true) ?? s.delta
        guard s.delta < 1 else { throw ExperimentError.badValue(key: "privacy.delta", value: "\(s.delta)", reason: "a probability in (0, 1), usually below 1/devices") }
        if let m = try p.string("mode") {
            guard let mode = PrivacySettings.Mode(rawValue: m) else {
                throw ExperimentError.badValue(key: "privacy.mode", value: m, reason: "use central or distributed")
            }
            s.mode = mode
        }
        if let raw = p.raw("secure_aggregation") {
            if let on = raw as? Bool {
                s.secure = on ? SecAggSettings() : nil
            } else {
                let a = try Keys(raw, path: "privacy.secure_aggregation")
                try a.only(["neighbours", "max_group"])
                let k = try a.int("neighbours", min: 0) ?? 0
                let g = try a.int("max_group", min: 2) ?? 255
                guard g <= 255 else {
                    throw ExperimentError.badValue(key: "privacy.secure_aggregation.max_group", value: "\(g)", reason: "at most 255 (Shamir points in GF(2^8))")
                }
                s.secure = SecAggSettings(neighbours: k, maxGroup: g)
            }
        }
        s.targetEpsilon = try p.double("target_epsilon", positive: true)
        if let z = try p.double("noise_multiplier") {
            guard z >= 0 else { throw ExperimentError.badValue(key: "privacy.noise_multiplier", value: "\(z)", reason: "must be ≥ 0 (0: clipping only)") }
            s.noiseMultiplier = z
        } else if s.targetEpsilon == nil && s.secure == nil {
            throw ExperimentError.badValue(key: "privacy.noise_multiplier", value: "(missing)",
                                           reason: "set privacy.noise_multiplier (σ), or privacy.target_epsilon to have σ chosen for the planned rounds")
        }
        if s.adaptive?.countNoise != nil, s.noiseMultiplier > 0, let b = s.adaptive?.countNoise, 2 * b <= s.noiseMultiplier {
            throw ExperimentError.badValue(key: "privacy.adaptive_clip.count_noise", value: "\(b)",
                                           reason: "must exceed σ/2 = \(s.noiseMultiplier / 2): the count's noise is part of σ (Andrew et al. 2021)")
        }
        e.privacy = s
    }

    /// Checked once the whole file is read: the privacy stage sums clipped updates, so a rule that needs every
    /// individual update (or re-weights them) cannot run with it.
    mutating func checkPrivacy() throws {
        guard var s = privacy else { return }
        if federation.strategy.name != "fedavg" {
            let key = s.secure != nil ? "privacy.secure_aggregation" : "privacy"
            throw ExperimentError.conflict(keys: [key, "federation.strategy"],
                                           reason: "the privacy stage sums clipped updates\(s.secure != nil ? " and only the sum is ever unmasked" : " with noise"); \(federation.strategy.name) needs every individual update. Use strategy fedavg")
        }
        if loraAggregation == "product_svd" {
            throw ExperimentError.conflict(keys: ["privacy", "lora_aggregation"],
                                           reason: "product_svd re-factorises the individual adapters, which DP never releases; use naive or frozen_a")
        }
        if federation.paradigm == "async" && async.settings.mode != "fedbuff" {
            throw ExperimentError.conflict(keys: ["privacy", "async.mode"],
                                           reason: "DP in asynchronous federation noises each buffer: use async.mode fedbuff")
        }
        if federation.paradigm == "async" && s.adaptive != nil {
            throw ExperimentError.conflict(keys: ["privacy.adaptive_clip", "federation.paradigm"],
                                           reason: "adaptive clipping moves C once per synchronous round; asynchronous runs use a fixed privacy.clip")
        }
        if s.secure != nil {
            if compression.codec != "fp32" {
                throw ExperimentError.conflict(keys: ["privacy.secure_aggregation", "compression.codec"],
                                               reason: "a masked update is 32-bit words in Z_2^32 whatever the codec; use fp32")
            }
            if federation.paradigm == "async" {
                throw ExperimentError.conflict(keys: ["privacy.secure_aggregation", "federation.paradigm"],
                                               reason: "secure aggregation of FedBuff's buffers is not built; use a synchronous paradigm")
            }
            if federation.paradigm == "clustered" && clustered.mode == "auto" && clustered.settings.method != "ifca" {
                throw ExperimentError.conflict(keys: ["privacy.secure_aggregation", "clustered.method"],
                                               reason: "\(clustered.settings.method) clusters individual update deltas, which secure aggregation hides; use clustered.method: ifca")
            }
        }
        if simulation && s.devicesClip {
            throw ExperimentError.conflict(keys: [s.secure != nil ? "privacy.secure_aggregation" : "privacy.mode", "simulation"],
                                           reason: "simulated devices have no privacy stage of their own; use privacy.mode: central")
        }
        if isClusteredHierarchical {
            throw ExperimentError.conflict(keys: ["privacy", "hierarchical.clustered"],
                                           reason: "the clustered hierarchy re-clusters on device sketches the edges take from individual deltas")
        }
        if s.noiseMultiplier == 0, let target = s.targetEpsilon {
            let plan = privacyPlan
            guard let z = RDPAccountant.noiseMultiplier(forEpsilon: target, q: plan.q, rounds: plan.rounds, delta: s.delta) else {
                throw ExperimentError.badValue(key: "privacy.target_epsilon", value: "\(target)",
                                               reason: "no noise multiplier up to 1000 keeps \(plan.rounds) rounds at q = \(plan.q) within it")
            }
            s.noiseMultiplier = z
        }
        privacy = s
    }

    /// The sampling rate and the number of mechanism applications per device the run plans (choosing σ from a
    /// target ε): flat and clustered, ⌈f·N⌉/N for every round; hierarchical, the busiest edge's rate for every edge
    /// round; FedBuff, every buffer a device's update lands in (about one per round, no sampling).
    public var privacyPlan: (q: Double, rounds: Int) {
        func rate(_ n: Int) -> Double {
            let f = min(1, max(0, federation.fraction))
            return n == 0 ? 1 : Double(min(n, max(1, Int((f * Double(n)).rounded(.up))))) / Double(n)
        }
        if federation.paradigm == "async" { return (1, federation.rounds) }
        if isHierarchical {
            let plan = HierarchyPlan(self)
            let q = (0..<plan.edges).map { rate(plan.devices(ofEdge: $0)) }.max() ?? 1
            return (q, plan.edgeRounds)
        }
        return (rate(data.devices), federation.rounds)
    }
}
