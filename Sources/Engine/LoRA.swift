/// A projection LoRA can adapt. Raw values are the module paths inside a GPT-2 block (PEFT suffixes).
public enum LoRATarget: String, CaseIterable, Sendable, Codable {
    case attnQKV = "attn.c_attn"
    case attnProj = "attn.c_proj"
    case mlpFC = "mlp.c_fc"
    case mlpProj = "mlp.c_proj"

    /// (in, out) features of this projection for width C.
    func dims(_ C: Int) -> (inp: Int, out: Int) {
        switch self {
        case .attnQKV: return (C, 3 * C)
        case .attnProj: return (C, C)
        case .mlpFC: return (C, 4 * C)
        case .mlpProj: return (4 * C, C)
        }
    }

    /// Parses PEFT target_modules entries: "c_attn", "c_fc", "c_proj" (both projections) or full suffixes.
    public static func parse(_ names: [String]) throws(EngineError) -> [LoRATarget] {
        var set = Set<LoRATarget>()
        for n in names {
            switch n {
            case "c_attn", "attn.c_attn": set.insert(.attnQKV)
            case "c_fc", "mlp.c_fc": set.insert(.mlpFC)
            case "c_proj": set.insert(.attnProj); set.insert(.mlpProj)
            case "attn.c_proj": set.insert(.attnProj)
            case "mlp.c_proj": set.insert(.mlpProj)
            default: throw .badConfig("unknown LoRA target module '\(n)'; use c_attn, c_proj, c_fc, attn.c_proj or mlp.c_proj")
            }
        }
        return LoRATarget.allCases.filter(set.contains)
    }
}

/// Rank, alpha and which projections carry adapters. Scaling is alpha / rank (PEFT convention).
public struct LoRAConfig: Sendable, Equatable, Codable {
    public var rank: Int
    public var alpha: Float
    public var targets: [LoRATarget]

    public init(rank: Int = 8, alpha: Float = 16, targets: [LoRATarget] = [.attnQKV, .attnProj]) {
        self.rank = rank
        self.alpha = alpha
        self.targets = LoRATarget.allCases.filter(targets.contains)
    }

    public var scaling: Float { alpha / Float(rank) }
}

/// A named float tensor, as adapters travel between devices and aggregators.
public struct NamedTensor: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var values: [Float]
    public init(name: String, shape: [Int], values: [Float]) {
        self.name = name; self.shape = shape; self.values = values
    }
}

/// The LoRA weights of a whole model, in a stable order (layer, target, A then B) with PEFT key names.
/// lora_A is [r, in] and lora_B is [out, r], as PEFT stores them.
public struct LoRAAdapter: Sendable, Equatable {
    public var config: LoRAConfig
    public var layers: Int
    public var tensors: [NamedTensor]

    public init(config: LoRAConfig, layers: Int, tensors: [NamedTensor]) {
        self.config = config; self.layers = layers; self.tensors = tensors
    }

    /// PEFT key of one LoRA matrix.
    public static func key(layer: Int, target: LoRATarget, isA: Bool) -> String {
        "base_model.model.transformer.h.\(layer).\(target.rawValue).lora_\(isA ? "A" : "B").weight"
    }

    /// All values concatenated in tensor order: the vector federation averages.
    public func flatten() -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(parameterCount)
        for t in tensors { out.append(contentsOf: t.values) }
        return out
    }

    public var parameterCount: Int { tensors.reduce(0) { $0 + $1.values.count } }

    /// Replaces all values from a flat vector laid out as `flatten()` returns.
    public mutating func load(flat: [Float]) throws(EngineError) {
        guard flat.count == parameterCount else {
            throw .badInput("flat adapter has \(flat.count) values, this adapter needs \(parameterCount)")
        }
        var at = 0
        for i in tensors.indices {
            let n = tensors[i].values.count
            tensors[i].values = Array(flat[at..<at + n])
            at += n
        }
    }
}

/// LoRA parameters and gradients inside the model: one arena each, slots in adapter order.
final class LoRAWeights {
    struct Slot {
        let layer: Int
        let target: LoRATarget
        let inp: Int, out: Int
        let a: Int, b: Int  // offsets of A [r,in] and B [out,r]
        let merged: Int  // offset of W + s·B·A in the merged arena
    }
    let config: LoRAConfig
    let slots: [Slot]
    let params: Arena
    var grads: Arena
    /// Training only: W + s·B·A per slot ([out, in] at slot.merged), refreshed before each training forward,
    /// so the forward and the input gradient are one matmul each instead of three.
    let merged: Arena
    /// slotIndex[layer][target] for the hot path.
    let index: [[Int?]]

    init(config: LoRAConfig, model: ModelConfig) {
        self.config = config
        var slots: [Slot] = []
        var index = Array(repeating: [Int?](repeating: nil, count: LoRATarget.allCases.count), count: model.layers)
        var at = 0, mat = 0
        let r = config.rank
        for l in 0..<model.layers {
            for (ti, t) in LoRATarget.allCases.enumerated() where config.targets.contains(t) {
                let d = t.dims(model.width)
                index[l][ti] = slots.count
                slots.append(Slot(layer: l, target: t, inp: d.inp, out: d.out, a: at, b: at + r * d.inp, merged: mat))
                at += r * d.inp + d.out * r
                mat += d.inp * d.out
            }
        }
        merged = Arena(count: mat)
        self.slots = slots
        self.index = index
        params = Arena(count: at)
        grads = Arena(count: at)
    }

    func slot(_ layer: Int, _ target: LoRATarget) -> Slot? {
        guard let ti = LoRATarget.allCases.firstIndex(of: target), let i = index[layer][ti] else { return nil }
        return slots[i]
    }

    /// A ~ U(−1/√in, 1/√in) from the seed (PEFT's Kaiming default), B = 0: the adapter starts as identity.
    func reset(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        params.zero()
        let r = config.rank
        for s in slots {
            let bound = 1 / Float(s.inp).squareRoot()
            let a = params.base + s.a
            for i in 0..<(r * s.inp) { a[i] = (2 * rng.nextFloat() - 1) * bound }
        }
    }

    func adapter(layers: Int) -> LoRAAdapter {
        let r = config.rank
        let tensors = slots.flatMap { s -> [NamedTensor] in
            [NamedTensor(name: LoRAAdapter.key(layer: s.layer, target: s.target, isA: true), shape: [r, s.inp],
                         values: Array(UnsafeBufferPointer(start: params.base + s.a, count: r * s.inp))),
             NamedTensor(name: LoRAAdapter.key(layer: s.layer, target: s.target, isA: false), shape: [s.out, r],
                         values: Array(UnsafeBufferPointer(start: params.base + s.b, count: s.out * r)))]
        }
        return LoRAAdapter(config: config, layers: layers, tensors: tensors)
    }

    /// Copies values in by name, checking every tensor is present with the right shape.
    func load(_ adapter: LoRAAdapter, source: String) throws(EngineError) {
        var byName: [String: NamedTensor] = [:]
        for t in adapter.tensors { byName[t.name] = t }
        let r = config.rank
        for s in slots {
            for isA in [true, false] {
                let name = LoRAAdapter.key(layer: s.layer, target: s.target, isA: isA)
                guard let t = byName[name] else { throw .missingTensor(name: name, file: source) }
                let shape = isA ? [r, s.inp] : [s.out, r]
                guard t.shape == shape, t.values.count == shape.reduce(1, *) else {
                    throw .shapeMismatch(name: name, expected: shape, got: t.shape)
                }
                t.values.withUnsafeBufferPointer { (params.base + (isA ? s.a : s.b)).update(from: $0.baseAddress!, count: $0.count) }
            }
        }
    }
}
