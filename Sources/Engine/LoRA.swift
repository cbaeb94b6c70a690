/// The four weight matrices of a block. Llama's q/k/v are one fused matrix (q rows, then k, then v), and gate and
/// up are one (gate rows, then up), so both architectures share the block code.
public enum Projection: Int, CaseIterable, Sendable {
    case qkv, attnOut, mlpIn, mlpOut

    /// (rows, cols) = (out, in) features of this matrix.
    func dims(_ c: ModelConfig) -> (out: Int, inp: Int) {
        switch self {
        case .qkv: return (c.qkvDim, c.width)
        case .attnOut: return (c.width, c.qDim)
        case .mlpIn: return (c.mlpInDim, c.width)
        case .mlpOut: return (c.width, c.mlpWidth)
        }
    }
}

/// A projection LoRA can adapt. Raw values are the module paths inside a block (PEFT suffixes).
public enum LoRATarget: String, CaseIterable, Sendable, Codable {
    // GPT-2 (transformer.h.<l>.…)
    case attnQKV = "attn.c_attn"
    case attnProj = "attn.c_proj"
    case mlpFC = "mlp.c_fc"
    case mlpProj = "mlp.c_proj"
    // Llama family (model.layers.<l>.…)
    case q = "self_attn.q_proj"
    case k = "self_attn.k_proj"
    case v = "self_attn.v_proj"
    case o = "self_attn.o_proj"
    case gate = "mlp.gate_proj"
    case up = "mlp.up_proj"
    case down = "mlp.down_proj"

    public var architecture: Architecture {
        switch self {
        case .attnQKV, .attnProj, .mlpFC, .mlpProj: return .gpt2
        default: return .llama
        }
    }

    /// The fused matrix this projection is part of, and its rows there.
    func site(_ c: ModelConfig) -> (matrix: Projection, rows: Range<Int>) {
        let q = c.qDim, kv = c.kvDim, m = c.mlpWidth
        switch self {
        case .attnQKV: return (.qkv, 0..<c.qkvDim)
        case .q: return (.qkv, 0..<q)
        case .k: return (.qkv, q..<(q + kv))
        case .v: return (.qkv, (q + kv)..<(q + 2 * kv))
        case .attnProj, .o: return (.attnOut, 0..<c.width)
        case .mlpFC: return (.mlpIn, 0..<m)
        case .gate: return (.mlpIn, 0..<m)
        case .up: return (.mlpIn, m..<(2 * m))
        case .mlpProj, .down: return (.mlpOut, 0..<c.width)
        }
    }

    /// (in, out) features of this projection.
    func dims(_ c: ModelConfig) -> (inp: Int, out: Int) {
        let s = site(c)
        return (s.matrix.dims(c).inp, s.rows.count)
    }

    /// Parses PEFT target_modules entries: GPT-2's "c_attn", "c_fc", "c_proj" (both projections) or full suffixes,
    /// Llama's "q_proj" … "down_proj" (or "self_attn.q_proj" …), and PEFT's "all-linear".
    public static func parse(_ names: [String]) throws(EngineError) -> [LoRATarget] {
        var set = Set<LoRATarget>()
        for n in names {
            switch n {
            case "c_attn", "attn.c_attn": set.insert(.attnQKV)
            case "c_fc", "mlp.c_fc": set.insert(.mlpFC)
            case "c_proj": set.insert(.attnProj); set.insert(.mlpProj)
            case "attn.c_proj": set.insert(.attnProj)
            case "mlp.c_proj": set.insert(.mlpProj)
            case "all-linear": set.formUnion(LoRATarget.allCases)
            default:
                guard let t = LoRATarget.allCases.first(where: { $0.rawValue == n || $0.rawValue.hasSuffix("." + n) }) else {
                    throw .badConfig("unknown LoRA target module '\(n)'; use c_attn, c_proj, c_fc, attn.c_proj, mlp.c_proj (GPT-2), q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj (Llama) or all-linear")
                }
                set.insert(t)
            }
        }
        return LoRATarget.allCases.filter(set.contains)
    }

    /// The targets as `architecture` names them: GPT-2 names map to their Llama counterparts (c_attn → q, k, v;
    /// c_proj → o and down; c_fc → gate and up), so one experiment file serves both; a Llama name on GPT-2 (whose
    /// q/k/v is one Conv1D module in PEFT) is an error. "all-linear" lists both families: each keeps its own.
    public static func resolve(_ targets: [LoRATarget], for architecture: Architecture) throws(EngineError) -> [LoRATarget] {
        let own = targets.filter { $0.architecture == architecture }
        if architecture == .gpt2 {
            if own.isEmpty, let t = targets.first {
                throw .badConfig("LoRA target \(t.rawValue) is a Llama projection; GPT-2 has c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj")
            }
            return own
        }
        var set = Set(own)
        if own.isEmpty {
            for t in targets {
                switch t {
                case .attnQKV: set.formUnion([.q, .k, .v])
                case .attnProj: set.insert(.o)
                case .mlpFC: set.formUnion([.gate, .up])
                case .mlpProj: set.insert(.down)
                default: break
                }
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
        let blocks = target.architecture == .gpt2 ? "transformer.h" : "model.layers"
        return "base_model.model.\(blocks).\(layer).\(target.rawValue).lora_\(isA ? "A" : "B").weight"
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
        let matrix: Projection
        let rows: Range<Int>  // this projection's rows in its fused matrix
        let inp: Int, out: Int
        let a: Int, b: Int  // offsets of A [r,in] and B [out,r]
    }
    let config: LoRAConfig
    let slots: [Slot]
    let params: Arena
    var grads: Arena
    /// slotIndex[layer][target] for the hot path.
    let index: [[Int?]]
    /// Slots adapting each (layer, fused matrix).
    let byMatrix: [[[Int]]]
    /// Training on an fp32 base only: W + s·Σ B·A per adapted fused matrix ([out, in] at `mergedOffset`), refreshed
    /// before each training forward, so the forward and the input gradient are one matmul each instead of three.
    /// Made on first use (a quantized base trains unmerged: an fp32 copy would undo the quantization).
    var merged: Arena?
    let mergedOffset: [[Int?]]
    let mergedCount: Int

    /// `config.targets` must already be resolved for the model's architecture.
    init(config: LoRAConfig, model: ModelConfig) {
        self.config = config
        var slots: [Slot] = []
        let T = LoRATarget.allCases.count, P = Projection.allCases.count
        var index = Array(repeating: [Int?](repeating: nil, count: T), count: model.layers)
        var byMatrix = Array(repeating: Array(repeating: [Int](), count: P), count: model.layers)
        var mergedOffset = Array(repeating: [Int?](repeating: nil, count: P), count: model.layers)
        var at = 0, mat = 0
        let r = config.rank
        for l in 0..<model.layers {
            for (ti, t) in LoRATarget.allCases.enumerated() where config.targets.contains(t) {
                let site = t.site(model), d = t.dims(model)
                index[l][ti] = slots.count
                byMatrix[l][site.matrix.rawValue].append(slots.count)
                if mergedOffset[l][site.matrix.rawValue] == nil {
                    mergedOffset[l][site.matrix.rawValue] = mat
                    let md = site.matrix.dims(model)
                    mat += md.out * md.inp
                }
                slots.append(Slot(layer: l, target: t, matrix: site.matrix, rows: site.rows, inp: d.inp, out: d.out,
                                  a: at, b: at + r * d.inp))
                at += r * d.inp + d.out * r
            }
        }
        self.slots = slots
        self.index = index
        self.byMatrix = byMatrix
        self.mergedOffset = mergedOffset
        mergedCount = mat
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
