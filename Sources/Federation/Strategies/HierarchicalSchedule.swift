/// HierFAVG (Liu et al. 2020): edges aggregate their devices every κ1 local rounds,
/// the cloud aggregates the edges every κ2 edge aggregations (every κ1·κ2 local rounds).
public struct HierarchicalSchedule: Sendable, Equatable {
    public let kappa1: Int
    public let kappa2: Int
    /// Local rounds done so far (t).
    public private(set) var localRounds = 0
    public private(set) var edgeRounds = 0
    public private(set) var cloudRounds = 0

    public init(kappa1: Int, kappa2: Int) {
        self.kappa1 = max(1, kappa1); self.kappa2 = max(1, kappa2)
    }

    /// After local round t (t ≥ 1), do edges aggregate?
    public func edgeAggregates(afterLocalRound t: Int) -> Bool { t > 0 && t % kappa1 == 0 }
    /// After local round t, does the cloud aggregate (right after the edges do)?
    public func cloudAggregates(afterLocalRound t: Int) -> Bool { t > 0 && t % cloudPeriod == 0 }

    /// κ1·κ2 local rounds (saturating, so absurd configs cannot overflow).
    public var cloudPeriod: Int {
        let (p, overflow) = kappa1.multipliedReportingOverflow(by: kappa2)
        return overflow ? Int.max : p
    }

    public struct Step: Sendable, Equatable {
        public var localRound: Int
        public var edge: Bool
        public var cloud: Bool
    }

    /// Counts one local round and says which tiers aggregate after it.
    public mutating func advance() -> Step {
        localRounds += 1
        let step = Step(localRound: localRounds, edge: edgeAggregates(afterLocalRound: localRounds),
                        cloud: cloudAggregates(afterLocalRound: localRounds))
        if step.edge { edgeRounds += 1 }
        if step.cloud { cloudRounds += 1 }
        return step
    }
}

/// A model with the number of samples behind it: what one tier hands to the next.
public struct WeightedModel: Sendable, Equatable {
    public var parameters: [Float]
    public var samples: Int
    public init(parameters: [Float], samples: Int) { self.parameters = parameters; self.samples = samples }
}

/// HierFAVG's combine at either tier: the sample-weighted mean, carrying the total samples upward.
/// Edge: devices' models → edge model. Cloud: edge models (weighted by their devices' samples) → global.
/// Throws `.wrongLength` when the models differ in length.
public func hierarchicalCombine(_ models: [WeightedModel]) throws(UpdateRejection) -> WeightedModel {
    let w = sampleWeights(models.map(\.samples))
    return WeightedModel(parameters: try weightedSum(models.map(\.parameters), weights: w),
                         samples: models.reduce(0) { $0 + $1.samples })
}
