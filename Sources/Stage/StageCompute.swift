import Engine
import Messages

/// Why a stage node could not serve an activation; the node answers with an InferenceError of this code.
public struct StageError: Error, Equatable, CustomStringConvertible {
    public var code: ErrorCode
    public var message: String
    public init(_ code: ErrorCode, _ message: String) { self.code = code; self.message = message }
    public var description: String { message }
}

/// The compute of a stage node, without sockets: runs the stage a StageActivation names on the base model
/// (with the requesting cluster's adapter), keeping one KV cache per (session, layer range or share).
/// Not thread-safe: one owner (the node's compute queue) drives it.
public final class StageCompute {
    public let model: LanguageModel
    public let cost: ComputeCost
    let adapters: [UInt32: LoRAAdapter]
    var activeCluster: UInt32?
    var caches: [String: KVCache] = [:]
    var cacheOrder: [String] = []
    /// Oldest sessions' caches are dropped beyond this many (a router that vanished never releases them).
    public var maxCaches = 256

    public init(model: LanguageModel, adapters: [UInt32: LoRAAdapter] = [:]) {
        self.model = model
        self.adapters = adapters
        cost = ComputeCost(config: model.config)
    }

    public var cacheCount: Int { caches.count }

    /// Result of one call: the reply tensor ("hidden" [T, C], "logits" [1, V] or a share's "partial" [T, C])
    /// and the FLOPs it took by the shared cost model (for compute emulation).
    public struct Output: Sendable {
        public var tensor: Tensor
        public var flops: Double
    }

    /// An activation with neither tokens nor hidden state releases the session's caches.
    public static func isRelease(_ a: StageActivation) -> Bool { a.tokens.isEmpty && a.hidden == nil }

    public func release(session: String) {
        let prefix = session + "|"
        for k in caches.keys where k.hasPrefix(prefix) { caches.removeValue(forKey: k) }
        cacheOrder.removeAll { $0.hasPrefix(prefix) }
    }

    public func run(_ a: StageActivation) throws -> Output {
        guard Int(a.stageIndex) < a.plan.count else {
            throw StageError(.badRequest, "stage index \(a.stageIndex) outside a plan of \(a.plan.count) stages")
        }
        let st = a.plan[Int(a.stageIndex)]
        try useAdapter(cluster: a.cluster)
        let L = model.config.layers, C = model.config.width, pos = Int(a.position)
        guard st.layerBegin <= st.layerEnd, Int(st.layerEnd) <= L else {
            throw StageError(.badRequest, "stage blocks \(st.layerBegin)..<\(st.layerEnd) outside 0..<\(L)")
        }
        do {
            if st.shareEnd > st.shareBegin { return try runShare(a, st, pos: pos) }
            var h: [Float]
            if st.embed {
                h = try model.embed(tokens: a.tokens.map { Int32(truncatingIfNeeded: $0) }, startPosition: pos)
            } else {
                h = try hiddenFloats(a)
            }
            let T = h.count / C
            let range = Int(st.layerBegin)..<Int(st.layerEnd)
            if !range.isEmpty {
                let cache = self.cache("\(a.sessionId)|\(range)", layers: range, position: pos)
                h = try model.forwardBlocks(range: range, hidden: h, cache: cache, startPosition: pos)
            }
            let flops = cost.stageFlops(layers: range.count, embed: st.embed, head: st.head, tokens: T, keys: pos + T)
            if st.head {
                let logits = try model.head(Array(h[(T - 1) * C..<T * C]))
                return Output(tensor: Tensor(name: "logits", shape: [1, logits.count], floats: logits), flops: flops)
            }
            return Output(tensor: Tensor(name: "hidden", shape: [T, C], floats: h), flops: flops)
        } catch let e as EngineError {
            throw StageError(.badRequest, e.description)
        }
    }

    /// A multi-access share: heads [shareBegin, shareEnd) of block layerBegin; the tensor name says the phase.
    private func runShare(_ a: StageActivation, _ st: Messages.Stage, pos: Int) throws -> Output {
        let units = Int(st.shareBegin)..<Int(st.shareEnd)
        guard units.upperBound <= model.config.heads else {
            throw StageError(.badRequest, "share \(units) outside 0..<\(model.config.heads) heads")
        }
        let l = Int(st.layerBegin), x = try hiddenFloats(a), T = x.count / model.config.width
        let f = cost.shareFraction(units)
        switch a.hidden?.name {
        case "attn":
            let cache = self.cache("\(a.sessionId)|share\(units)", layers: 0..<model.config.layers, position: pos, layer: l)
            let out = try model.partialAttention(layer: l, heads: units, hidden: x, cache: cache, startPosition: pos)
            return Output(tensor: Tensor(name: "partial", shape: [T, model.config.width], floats: out),
                          flops: cost.attentionShareFlops(tokens: T, keys: pos + T, fraction: f))
        case "mlp":
            let out = try model.partialMLP(layer: l, columns: cost.mlpColumns(units), hidden: x)
            return Output(tensor: Tensor(name: "partial", shape: [T, model.config.width], floats: out),
                          flops: cost.mlpShareFlops(tokens: T, fraction: f))
        default:
            throw StageError(.badRequest, "share activation tensor must be named attn or mlp, got \(a.hidden?.name ?? "none")")
        }
    }

    private func hiddenFloats(_ a: StageActivation) throws -> [Float] {
        guard let t = a.hidden else { throw StageError(.badRequest, "stage without embed needs a hidden tensor") }
        let h: [Float]
        do { h = try t.floats() } catch { throw StageError(.badRequest, "bad hidden tensor: \(error)") }
        guard !h.isEmpty, h.count % model.config.width == 0 else {
            throw StageError(.badRequest, "hidden has \(h.count) values, not a multiple of width \(model.config.width)")
        }
        return h
    }

    /// The cache for `key`; position 0 starts the sequence over (a new session or a replayed prefix).
    /// For shares, only block `layer`'s position 0 resets it (every block of a token shares one cache).
    private func cache(_ key: String, layers: Range<Int>, position: Int, layer: Int? = nil) -> KVCache {
        if let c = caches[key] {
            if position == 0 && (layer ?? layers.lowerBound) == layers.lowerBound { c.reset() }
            return c
        }
        let c = KVCache(config: model.config, layers: layers)
        caches[key] = c
        cacheOrder.append(key)
        if cacheOrder.count > maxCaches { caches.removeValue(forKey: cacheOrder.removeFirst()) }
        return c
    }

    private func useAdapter(cluster: UInt32) throws {
        guard activeCluster != cluster else { return }
        do {
            if let adapter = adapters[cluster] { try model.setAdapter(adapter, source: "cluster \(cluster) adapter") } else { model.detachLoRA() }
        } catch { throw StageError(.internal, "cannot apply the cluster \(cluster) adapter: \(error)") }
        activeCluster = cluster
    }
}
