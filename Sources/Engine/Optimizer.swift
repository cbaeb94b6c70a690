import Foundation

/// AdamW hyper-parameters (decoupled weight decay, as in Loshchilov & Hutter).
public struct AdamWConfig: Sendable, Equatable {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.95
    public var epsilon: Float = 1e-8
    public var weightDecay: Float = 0.0
    /// Global-norm gradient clipping threshold (0 disables).
    public var clipNorm: Float = 1.0
    public init(beta1: Float = 0.9, beta2: Float = 0.95, epsilon: Float = 1e-8, weightDecay: Float = 0, clipNorm: Float = 1) {
        self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon; self.weightDecay = weightDecay; self.clipNorm = clipNorm
    }
}

/// Linear warmup to maxLR, then cosine decay to minLR at totalSteps.
public struct LRSchedule: Sendable, Equatable {
    public var maxLR: Float
    public var minLR: Float
    public var warmupSteps: Int
    public var totalSteps: Int
    public init(maxLR: Float, minLR: Float? = nil, warmupSteps: Int = 0, totalSteps: Int) {
        self.maxLR = maxLR; self.minLR = minLR ?? maxLR * 0.1; self.warmupSteps = warmupSteps; self.totalSteps = totalSteps
    }
    public static func constant(_ lr: Float) -> LRSchedule { LRSchedule(maxLR: lr, minLR: lr, totalSteps: 1) }

    /// Learning rate at 0-based step.
    public func rate(at step: Int) -> Float {
        if step < warmupSteps { return maxLR * Float(step + 1) / Float(warmupSteps) }
        if step >= totalSteps || totalSteps <= warmupSteps { return minLR }
        let progress = Float(step - warmupSteps) / Float(totalSteps - warmupSteps)
        return minLR + 0.5 * (maxLR - minLR) * (1 + cos(Float.pi * progress))
    }
}

/// AdamW state over one flat parameter vector (m and v in one arena).
final class AdamW {
    let config: AdamWConfig
    let count: Int
    let state: Arena
    var t = 0
    init(config: AdamWConfig, count: Int) {
        self.config = config; self.count = count
        state = Arena(count: 2 * count)
    }

    /// Clips grads to the global norm, then updates params in place. Returns the pre-clip norm.
    @discardableResult
    func step(params: UnsafeMutablePointer<Float>, grads: UnsafeMutablePointer<Float>, lr: Float) -> Float {
        var sq: Double = 0
        for i in 0..<count { sq += Double(grads[i]) * Double(grads[i]) }
        let norm = Float(sq.squareRoot())
        let clip: Float = (config.clipNorm > 0 && norm > config.clipNorm) ? config.clipNorm / norm : 1
        t += 1
        let b1 = config.beta1, b2 = config.beta2, eps = config.epsilon, wd = config.weightDecay
        let c1 = 1 - pow(b1, Float(t)), c2 = 1 - pow(b2, Float(t))
        let m = state.base, v = state.base + count
        for i in 0..<count {
            let g = grads[i] * clip
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            let mh = m[i] / c1, vh = v[i] / c2
            params[i] -= lr * (mh / (vh.squareRoot() + eps) + wd * params[i])
        }
        return norm
    }
}
