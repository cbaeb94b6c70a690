// Server optimizers (Reddi et al. 2021, "Adaptive Federated Optimization"): the round's combined delta Δ is a
// pseudo-gradient step, and the server applies it with momentum (FedAvgM) or adaptively (FedAdam, FedYogi).
// State (m, v) is per model, kept in the engine snapshot.

public enum ServerOptimizerKind: String, Sendable, Codable, CaseIterable {
    case none, fedavgm, fedadam, fedyogi
}

public struct ServerOptimizerConfig: Sendable, Equatable, Codable {
    public var kind: ServerOptimizerKind
    /// Server learning rate η.
    public var lr: Double
    /// FedAvgM's momentum; FedAdam/FedYogi's β1.
    public var beta1: Double
    public var beta2: Double
    /// Adaptivity τ (ε): how small a second moment still scales the step up.
    public var tau: Double

    public init(kind: ServerOptimizerKind = .none, lr: Double? = nil, beta1: Double = 0.9, beta2: Double = 0.99, tau: Double = 1e-3) {
        self.kind = kind
        self.lr = lr ?? (kind == .fedadam || kind == .fedyogi ? 0.01 : 1)
        self.beta1 = beta1; self.beta2 = beta2; self.tau = tau
    }
}

/// One model's server optimizer state.
public struct ServerOptimizer: Sendable, Equatable, Codable {
    public let config: ServerOptimizerConfig
    public private(set) var m: [Float] = []
    public private(set) var v: [Float] = []

    public init(_ config: ServerOptimizerConfig) { self.config = config }

    /// The step the server applies for combined delta `delta`: x ← x + step.
    public mutating func step(_ delta: [Float]) -> [Float] {
        let c = config
        switch c.kind {
        case .none:
            return c.lr == 1 ? delta : delta.map { Float(c.lr) * $0 }
        case .fedavgm:
            if m.count != delta.count { m = [Float](repeating: 0, count: delta.count) }
            let b = Float(c.beta1), lr = Float(c.lr)
            for i in delta.indices { m[i] = b * m[i] + delta[i] }
            return m.map { lr * $0 }
        case .fedadam, .fedyogi:
            if m.count != delta.count {
                m = [Float](repeating: 0, count: delta.count)
                v = [Float](repeating: Float(c.tau * c.tau), count: delta.count)
            }
            let b1 = Float(c.beta1), b2 = Float(c.beta2), lr = Float(c.lr), tau = Float(c.tau)
            var out = [Float](repeating: 0, count: delta.count)
            for i in delta.indices {
                let g = delta[i], g2 = g * g
                m[i] = b1 * m[i] + (1 - b1) * g
                if c.kind == .fedadam {
                    v[i] = b2 * v[i] + (1 - b2) * g2
                } else {
                    let s: Float = v[i] - g2 > 0 ? 1 : (v[i] - g2 < 0 ? -1 : 0)
                    v[i] = v[i] - (1 - b2) * g2 * s
                }
                out[i] = lr * m[i] / (v[i].squareRoot() + tau)
            }
            return out
        }
    }
}

extension ServerOptimizer {
    /// Restores the moments a snapshot kept.
    public init(_ config: ServerOptimizerConfig, m: [Float], v: [Float]) {
        self.init(config)
        self.m = m; self.v = v
    }
}
