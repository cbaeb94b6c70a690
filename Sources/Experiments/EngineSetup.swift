import EdgeEnvironment
import Engine
import Federation
import Foundation

// What an experiment file builds for an aggregator: its round engine (config, algorithm) and its virtual-clock cost.

extension Experiment {
    /// How each model's round combines (strategy, weight cap, LoRA mode, server optimizer).
    public func combineRule() throws -> CombineRule {
        CombineRule(strategy: try federation.strategy.make(), maxWeight: federation.maxWeight, loraMode: loraMode,
                    serverOptimizer: federation.serverOptimizer)
    }

    public var localSettings: LocalSettings {
        LocalSettings(steps: federation.localSteps, learningRate: Float(federation.lr), proximalMu: Float(federation.proximalMu),
                      freezeA: loraAggregation == "frozen_a")
    }

    /// The tier of the aggregator `id` in this experiment.
    public func role(tier: String, id: String) -> TierRole {
        guard isHierarchical else { return .flat }
        return tier == "edge" ? .edge(ordinal: deviceOrdinal(id)) : .cloud
    }

    /// The virtual-clock cost of this role's hops: device ↔ cloud (flat), device ↔ its edge, edge ↔ cloud.
    public func costModel(role: TierRole) throws -> any EdgeCostModel {
        let base = try EdgeNetworkCost(scenario: scenario, devices: data.devices)
        switch role {
        case .flat: return base
        case .edge: return EdgeTierCost(base)
        case .cloud: return CloudTierCost(base)
        }
    }

    /// The algorithm of this role: asynchronous, or synchronous with the experiment's cluster policy (an edge follows
    /// its cloud's map).
    public func algorithm(role: TierRole, initial: GlobalModel) throws -> Algorithm {
        let rule = try combineRule()
        if federation.paradigm == "async" {
            var rule = try async.settings.rule(loraMode: loraMode)
            if let p = privacy, var buffer = rule as? FedBuff {
                buffer.privacy = BufferPrivacy(settings: p)
                rule = buffer
            }
            let scheduler = AsyncScheduler(strategy: rule, global: initial,
                                           validator: UpdateValidator(maxNorm: federation.strategy.name == "norm_bounded" ? federation.strategy.maxNorm : nil),
                                           stop: .appliedUpdates(federation.rounds * data.devices), lookahead: asyncLookahead())
            return .asynchronous(AsynchronousAlgorithm(scheduler: scheduler, settings: localSettings))
        }
        var config = try clustered.settings.config(seed: seed, rule: rule)
        config.validator = UpdateValidator(maxStaleness: 0)
        let policy: SynchronousAlgorithm.Clusters
        if case .edge = role {
            policy = .given
        } else if federation.paradigm == "clustered" || isClusteredHierarchical {
            switch clustered.mode {
            case "oracle": policy = .oracle
            case "local": policy = .local
            default: policy = clustered.settings.method == "ifca" ? .ifca(k: clustered.settings.k) : .automatic
            }
        } else {
            policy = .single
        }
        if role == .cloud, policy != .single, policy != .automatic, policy != .oracle, policy != .local {
            throw ExperimentError.badValue(key: "clustered.method", value: clustered.settings.method,
                                           reason: "a clustered hierarchy clusters in the cloud from sketches; IFCA's device choice runs flat only")
        }
        let fraction = role == .cloud ? 1 : federation.fraction
        // DP at the first aggregation tier: flat aggregators and edges (the cloud combines already noised edge models).
        return .synchronous(SynchronousAlgorithm(policy: policy, config: config, initial: initial, settings: localSettings,
                                                 fraction: fraction, minParticipants: 1, seed: seed, privacy: role == .cloud ? nil : privacy))
    }

    /// Async lookahead: the shortest possible task (the fastest device's compute), so updates can be released while
    /// others still train.
    func asyncLookahead() -> Double {
        guard let config = try? LanguageModel.loadConfig(URL(fileURLWithPath: model)), let p = try? LanguageModel(config: config, seed: 0).parameterCount,
              let cost = try? EdgeNetworkCost(scenario: scenario, devices: data.devices) else { return 0 }
        let flops = loraTrainingFLOPs(parameters: p, tokens: federation.localSteps * federation.batch * federation.seq)
        let fastest = (0..<data.devices).map { cost.computeSeconds(flops: flops, device: $0) }.min() ?? 0
        return fastest.isFinite ? fastest * 0.999 : 0
    }

    /// The engine of aggregator `id` at `role`.
    public func engine(id: String, role: TierRole, initial: GlobalModel, modelBytes: Int, evaluate: Bool = true,
                       persistent: Bool = true, heartbeatS: Double = 1) throws -> (config: EngineConfig, algorithm: Algorithm, cost: any EdgeCostModel) {
        let plan = HierarchyPlan(self)
        var rounds = federation.rounds, quorum = federation.quorum, deviceQuorum = 1
        switch role {
        case .flat: break
        case .edge(let k): rounds = plan.cloudRounds; quorum = plan.edgeQuorum(k)
        case .cloud: rounds = plan.cloudRounds; quorum = plan.edges; deviceQuorum = federation.quorum
        }
        let notes = ["name": name, "seed": "\(seed)", "model": model, "scenario": scenarioName, "lora_aggregation": loraAggregation]
        var config = EngineConfig(id: id, role: role, paradigm: federation.paradigm, rounds: rounds, quorum: quorum, deviceQuorum: deviceQuorum,
                                  deadlineS: role == .cloud ? federation.deadlineS * Double(plan.kappa2 + 1) : federation.deadlineS,
                                  heartbeatS: heartbeatS, evaluate: evaluate, kappa1: plan.kappa1, kappa2: plan.kappa2,
                                  evalEvery: async.evalEvery > 0 ? async.evalEvery : data.devices, modelBytes: modelBytes,
                                  persistent: persistent, notes: notes)
        config.evalDevices = federation.evalDevices
        if role == .cloud, let p = privacy {
            config.cloudPrivacy = CloudPrivacy(settings: p, q: privacyPlan.q, edgeRoundsPerCloudRound: plan.kappa2)
        }
        return (config, try algorithm(role: role, initial: initial), try costModel(role: role))
    }
}
