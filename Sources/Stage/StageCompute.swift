import Engine
import Messages

/// Why a stage node could not serve an activation; the node answers with an InferenceError of this code.
public struct StageError: Error, Equatable, CustomStringConvertible {
    public var code: ErrorCode
    public var message: String
    public init(_ code: ErrorCode, _ message: String) { self.code = code; self.message = message }

    /// Any error of a stage's compute: the engine's input errors are bad requests, others internal.
    init(_ error: any Error) {
        switch error {
        case let e as StageError: self = e
        case let e as EngineError: self.init(.badRequest, e.description)
        default: self.init(.internal, "\(error)")
        }
    }
    public var description: String { message }
}

/// The compute of a stage node, without sockets: runs the stage a StageActivation names on the base model
/// (with the requesting cluster's adapter), keeping one KV cache per (session, layer range or share).
/// Decode steps of many sessions run as one batch (`runBatch`). Not thread-safe: one owner (the node's compute
/// thread) drives it.
public final class StageCompute {
    public let model: LanguageModel
    public let cost: ComputeCost
    var adapters: [UInt32: LoRAAdapter]
    var activeCluster: UInt32?
    var caches: [String: KVCache] = [:]
    var cacheOrder: [String] = []
    /// Admission control: most sessions holding caches at once (0 = no limit).
    public var maxSessions: Int
    /// Oldest caches are dropped beyond this many (a router that vanished never releases them).
    public var maxCaches: Int { max(256, 4 * maxSessions) }

    public init(model: LanguageModel, adapters: [UInt32: LoRAAdapter] = [:], maxSessions: Int = 0) {
        self.model = model
        self.adapters = adapters
        self.maxSessions = maxSessions
        cost = ComputeCost(config: model.config)
    }

    public var cacheCount: Int { caches.count }
    /// Rows computed in batched forward passes so far (a batch adds all its rows), and the passes.
    public private(set) var batchedRows = 0
    public private(set) var batches = 0

    /// Sessions holding at least one cache.
    public var sessionCount: Int { Set(caches.keys.map(Self.session(ofKey:))).count }

    /// Replaces (or removes, with nil) one cluster's adapter; the next call of that cluster uses it.
    public func setAdapter(_ adapter: LoRAAdapter?, cluster: UInt32) {
        adapters[cluster] = adapter
        if activeCluster == cluster { activeCluster = nil }
    }

    public var clusters: [UInt32] { adapters.keys.sorted() }

    /// Result of one activation: the reply tensor ("hidden" [T, C], "logits" [1, V] or a share's "partial" [T, C]),
    /// or in direct mode after the head the drawn token and the RNG state after the draw; and the FLOPs it took by
    /// the shared cost model (for compute emulation and the measured speed).
    public struct Output: Sendable {
        public var tensor: Tensor?
        public var flops: Double
        public var token: UInt32?
        public var rngState: UInt64 = 0
    }

    /// An activation with neither tokens nor hidden state releases the session's caches.
    public static func isRelease(_ a: StageActivation) -> Bool { a.tokens.isEmpty && a.hidden == nil }

    static func session(ofKey key: String) -> Substring { key[..<(key.firstIndex(of: "|") ?? key.endIndex)] }

    public func release(session: String) {
        let prefix = session + "|"
        for k in caches.keys where k.hasPrefix(prefix) { caches.removeValue(forKey: k) }
        cacheOrder.removeAll { $0.hasPrefix(prefix) }
    }

    public func run(_ a: StageActivation) throws(StageError) -> Output {
        let st = try stage(of: a)
        try useAdapter(cluster: a.cluster)
        let C = model.config.width, pos = Int(a.position)
        do {
            if st.shareEnd > st.shareBegin { return try runShare(a, st, pos: pos) }
            var h = st.embed ? try model.embed(tokens: a.tokens.map { Int32(truncatingIfNeeded: $0) }, startPosition: pos) : try hiddenFloats(a)
            let T = h.count / C
            let range = Int(st.layerBegin)..<Int(st.layerEnd)
            if !range.isEmpty {
                h = try model.forwardBlocks(range: range, hidden: h, cache: try cache(a, range), startPosition: pos)
            }
            let flops = cost.stageFlops(layers: range.count, embed: st.embed, head: st.head, tokens: T, keys: pos + T)
            guard st.head else { return Output(tensor: Tensor(name: "hidden", shape: [T, C], floats: h), flops: flops) }
            return try headOutput(a, logits: model.head(Array(h[(T - 1) * C..<T * C])), flops: flops)
        } catch {
            throw StageError(error)
        }
    }

    /// Runs many activations: those of the same blocks and cluster (decode steps and prefills of any sessions) share
    /// one batched forward pass (one matrix product per projection for all their rows); multi-access shares run
    /// alone.
    /// Results come back in input order.
    public func runBatch(_ acts: [StageActivation]) -> [Result<Output, StageError>] {
        var results = [Result<Output, StageError>?](repeating: nil, count: acts.count)
        var groups: [String: [Int]] = [:]
        var order: [String] = []
        for (i, a) in acts.enumerated() {
            guard let key = batchKey(a) else { continue }
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(i)
        }
        for key in order {
            let rows = groups[key]!
            // One row per session: a session's second step waits for its first.
            var seen = Set<String>(), batch: [Int] = []
            for i in rows where seen.insert(acts[i].sessionId).inserted { batch.append(i) }
            // A lone activation runs here too: one session and many compute each row the same way.
            do {
                for (i, out) in zip(batch, try runRowBatch(batch.map { acts[$0] })) { results[i] = .success(out) }
            } catch {
                for i in batch { results[i] = .failure(error) }
            }
        }
        for i in acts.indices where results[i] == nil {
            do { results[i] = .success(try run(acts[i])) } catch { results[i] = .failure(error) }
        }
        return results.map { $0! }
    }

    /// Chain stage with blocks to run: what may join a batch (key: blocks, ends, cluster, mode).
    private func batchKey(_ a: StageActivation) -> String? {
        guard let st = a.target, st.shareEnd == st.shareBegin, st.layerEnd > st.layerBegin, Int(st.layerEnd) <= model.config.layers else { return nil }
        let rows = rowCount(a, st)
        guard rows >= 1, Int(a.position) + rows <= model.config.contextLength else { return nil }
        return "\(st.layerBegin)-\(st.layerEnd)-\(st.embed)-\(st.head)-\(a.cluster)-\(a.direct)"
    }

    /// New tokens of an activation: its tokens when the stage embeds, else the rows of its hidden [T, C] (0 if malformed).
    private func rowCount(_ a: StageActivation, _ st: Messages.Stage) -> Int {
        if st.embed { return a.tokens.count }
        guard let shape = a.hidden?.shape, shape.count == 2, shape[1] == model.config.width else { return 0 }
        return shape[0]
    }

    /// Activations of several sessions as one forward pass: all their rows (a decode step's one token, a prefill's
    /// several) through every projection at once, attention per row over its session's cache.
    private func runRowBatch(_ acts: [StageActivation]) throws(StageError) -> [Output] {
        let st = try stage(of: acts[0])
        try useAdapter(cluster: acts[0].cluster)
        let C = model.config.width, range = Int(st.layerBegin)..<Int(st.layerEnd)
        do {
            var hidden: [Float] = [], caches: [KVCache] = [], positions: [Int] = [], rows: [Int] = []
            for a in acts {
                let h = st.embed ? try model.embed(tokens: a.tokens.map { Int32(truncatingIfNeeded: $0) }, startPosition: Int(a.position))
                                 : try hiddenFloats(a)
                let T = h.count / C, cache = try cache(a, range)
                hidden += h
                caches += [KVCache](repeating: cache, count: T)
                positions += (0..<T).map { Int(a.position) + $0 }
                rows.append(T)
            }
            let h = try model.forwardBlocksBatched(range: range, hidden: hidden, caches: caches, positions: positions)
            batchedRows += hidden.count / C
            batches += 1
            let ends = rows.reduce(into: [Int]()) { $0.append(($0.last ?? 0) + $1) }
            let flops = acts.indices.map { cost.stageFlops(layers: range.count, embed: st.embed, head: st.head, tokens: rows[$0], keys: Int(acts[$0].position) + rows[$0]) }
            guard st.head else {
                return acts.indices.map { i in
                    Output(tensor: Tensor(name: "hidden", shape: [rows[i], C], floats: Array(h[(ends[i] - rows[i]) * C..<ends[i] * C])), flops: flops[i])
                }
            }
            // The head on each activation's last row only: that is all sampling needs.
            let last = ends.flatMap { h[($0 - 1) * C..<$0 * C] }
            let logits = try model.head(last), V = model.config.vocabSize
            return try acts.indices.map { b throws(StageError) in try headOutput(acts[b], logits: Array(logits[b * V..<(b + 1) * V]), flops: flops[b]) }
        } catch {
            throw StageError(error)
        }
    }

    /// Hub mode returns the logits; direct mode draws the token here with the session's RNG state.
    private func headOutput(_ a: StageActivation, logits: [Float], flops: Double) throws(StageError) -> Output {
        guard a.direct else { return Output(tensor: Tensor(name: "logits", shape: [1, logits.count], floats: logits), flops: flops) }
        var rng = SplitMix64(seed: a.rngState)
        let token = UInt32(LanguageModel.sample(logits, (a.sampling ?? Sampling()).engine, &rng))
        return Output(tensor: nil, flops: flops, token: token, rngState: rng.state)
    }

    private func stage(of a: StageActivation) throws(StageError) -> Messages.Stage {
        guard Int(a.stageIndex) < a.plan.count else {
            throw StageError(.badRequest, "stage index \(a.stageIndex) outside a plan of \(a.plan.count) stages")
        }
        let st = a.plan[Int(a.stageIndex)]
        guard st.layerBegin <= st.layerEnd, Int(st.layerEnd) <= model.config.layers else {
            throw StageError(.badRequest, "stage blocks \(st.layerBegin)..<\(st.layerEnd) outside 0..<\(model.config.layers)")
        }
        return st
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
            let cache = try self.cache("\(a.sessionId)|share\(units)", layers: 0..<model.config.layers, position: pos, reset: l == 0)
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

    private func hiddenFloats(_ a: StageActivation) throws(StageError) -> [Float] {
        guard let t = a.hidden else { throw StageError(.badRequest, "stage without embed needs a hidden tensor") }
        let h: [Float]
        do { h = try t.floats() } catch { throw StageError(.badRequest, "bad hidden tensor: \(error)") }
        guard !h.isEmpty, h.count % model.config.width == 0 else {
            throw StageError(.badRequest, "hidden has \(h.count) values, not a multiple of width \(model.config.width)")
        }
        return h
    }

    private func cache(_ a: StageActivation, _ range: Range<Int>) throws(StageError) -> KVCache {
        try cache("\(a.sessionId)|\(range)", layers: range, position: Int(a.position), reset: true)
    }

    /// The cache for `key`; position 0 starts the sequence over (a new session or a replayed prefix) when `reset`
    /// (for shares only block 0 resets it: every block of a token shares one cache). A new session beyond
    /// `maxSessions` is refused.
    private func cache(_ key: String, layers: Range<Int>, position: Int, reset: Bool) throws(StageError) -> KVCache {
        if let c = caches[key] {
            if position == 0 && reset { c.reset() }
            return c
        }
        let session = Self.session(ofKey: key)
        if maxSessions > 0, !caches.keys.contains(where: { Self.session(ofKey: $0) == session }), sessionCount >= maxSessions {
            throw StageError(.overloaded, "all \(maxSessions) session slots are taken; retry when a session ends")
        }
        let c = KVCache(config: model.config, layers: layers)
        caches[key] = c
        cacheOrder.append(key)
        if cacheOrder.count > maxCaches { caches.removeValue(forKey: cacheOrder.removeFirst()) }
        return c
    }

    private func useAdapter(cluster: UInt32) throws(StageError) {
        guard activeCluster != cluster else { return }
        do {
            if let adapter = adapters[cluster] { try model.setAdapter(adapter, source: "cluster \(cluster) adapter") } else { model.detachLoRA() }
        } catch { throw StageError(.internal, "cannot apply the cluster \(cluster) adapter: \(error)") }
        activeCluster = cluster
    }
}

extension Messages.Sampling {
    /// The engine's sampling rule for these wire settings.
    public var engine: Engine.Sampling {
        if temperature <= 0 { return .greedy }
        return topK > 0 ? .topK(k: Int(topK), temperature: temperature) : .temperature(temperature)
    }
}

extension StageCompute {
    /// Measures the compute speed when the node is idle: block 0 on four positions of a scratch cache (no session
    /// is touched). Returns the FLOPs it did by the shared cost model.
    public func speedProbe() -> Double {
        let T = min(4, model.config.contextLength), C = model.config.width
        let hidden = [Float](repeating: 0.01, count: T * C)
        _ = try? model.forwardBlocks(range: 0..<1, hidden: hidden, cache: KVCache(config: model.config, layers: 0..<1), startPosition: 0)
        return cost.blockFlops(tokens: T, keys: T)
    }
}
