import Federation

// The paradigm sections of an experiment file: clustered, async, lora_aggregation, compression.
// Every bad value is an ExperimentError naming the dotted key.

extension Experiment {
    static func parseParadigms(_ r: Keys, into e: inout Experiment) throws {
        if let c = try r.section("clustered") {
            try c.only(["mode", "warmup_rounds", "recluster_every", "method", "k", "sketch_dim", "init", "merge"])
            e.clustered.mode = try c.string("mode") ?? e.clustered.mode
            guard clusteredModes.contains(e.clustered.mode) else {
                throw ExperimentError.badValue(key: "clustered.mode", value: e.clustered.mode, reason: "use \(clusteredModes.joined(separator: ", "))")
            }
            var s = e.clustered.settings
            s.warmupRounds = try c.int("warmup_rounds", min: 1) ?? s.warmupRounds
            s.reclusterEvery = try c.int("recluster_every", min: 0) ?? s.reclusterEvery
            s.method = try c.string("method") ?? s.method
            guard ["cosine", "cfl", "ifca"].contains(s.method) else {
                throw ExperimentError.badValue(key: "clustered.method", value: s.method, reason: "use cosine, cfl or ifca")
            }
            s.k = try c.int("k", min: 2) ?? s.k
            s.sketchDim = try c.int("sketch_dim", min: 0) ?? s.sketchDim
            s.initialisation = try c.string("init") ?? s.initialisation
            s.merge = try c.bool("merge") ?? s.merge
            do { _ = try s.config(seed: e.seed) } catch {
                throw ExperimentError.badValue(key: "clustered", value: s.method + "/" + s.initialisation, reason: "\(error)")
            }
            e.clustered.settings = s
        }
        if let a = try r.section("async") {
            try a.only(["mode", "alpha", "staleness", "buffer", "eval_every"])
            var s = e.async.settings
            s.mode = try a.string("mode") ?? s.mode
            guard ["fedasync", "fedbuff"].contains(s.mode) else {
                throw ExperimentError.badValue(key: "async.mode", value: s.mode, reason: "use fedasync or fedbuff")
            }
            s.alpha = try a.double("alpha", positive: true) ?? s.alpha
            guard s.alpha <= 1 else { throw ExperimentError.badValue(key: "async.alpha", value: "\(s.alpha)", reason: "must be in (0, 1]") }
            if let st = try a.section("staleness") {
                try st.only(["kind", "a", "b"])
                s.stalenessKind = try st.string("kind") ?? s.stalenessKind
                guard ["constant", "polynomial", "hinge"].contains(s.stalenessKind) else {
                    throw ExperimentError.badValue(key: "async.staleness.kind", value: s.stalenessKind, reason: "use constant, polynomial or hinge")
                }
                s.stalenessA = try st.double("a") ?? s.stalenessA
                guard s.stalenessA >= 0 else { throw ExperimentError.badValue(key: "async.staleness.a", value: "\(s.stalenessA)", reason: "must be ≥ 0") }
                s.stalenessB = try st.double("b") ?? s.stalenessB
            }
            s.buffer = try a.int("buffer", min: 1) ?? s.buffer
            e.async.evalEvery = try a.int("eval_every", min: 0) ?? e.async.evalEvery
            do { _ = try s.rule() } catch {
                throw ExperimentError.badValue(key: "async", value: s.mode, reason: "\(error)")
            }
            e.async.settings = s
        }
        if let l = try r.string("lora_aggregation") {
            guard loraAggregations.contains(l) else {
                throw ExperimentError.badValue(key: "lora_aggregation", value: l, reason: "use \(loraAggregations.joined(separator: ", "))")
            }
            e.loraAggregation = l
        }
        if let c = try r.section("compression") {
            try c.only(["codec", "topk_fraction", "error_feedback"])
            e.compression.codec = try c.string("codec") ?? e.compression.codec
            guard codecs.contains(e.compression.codec) else {
                throw ExperimentError.badValue(key: "compression.codec", value: e.compression.codec, reason: "use \(codecs.joined(separator: ", "))")
            }
            e.compression.topkFraction = try c.double("topk_fraction", positive: true) ?? e.compression.topkFraction
            guard e.compression.topkFraction <= 1 else {
                throw ExperimentError.badValue(key: "compression.topk_fraction", value: "\(e.compression.topkFraction)", reason: "must be in (0, 1]")
            }
            e.compression.errorFeedback = try c.bool("error_feedback") ?? e.compression.errorFeedback
        }
        // `hierarchical` is parsed by Experiment.parse (Hierarchy.swift).
    }
}
