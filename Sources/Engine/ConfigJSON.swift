import Foundation

/// Hugging Face config.json <-> ModelConfig. GPT-2 (n_embd, n_layer, …) and the Llama family (model_type llama,
/// qwen2, mistral: hidden_size, num_key_value_heads, rope_theta, rope_scaling, …). Anything the engine cannot run
/// is a typed error naming the file and the field.
extension ModelConfig {
    static let llamaTypes: Set<String> = ["llama", "qwen2", "mistral"]

    /// Parses a config.json object; `file` names it in errors.
    public static func parse(json obj: [String: Any], file: String) throws(EngineError) -> ModelConfig {
        func int(_ keys: [String]) throws(EngineError) -> Int {
            for k in keys { if let v = obj[k] as? NSNumber { return v.intValue } }
            throw .badConfig("\(file) lacks \(keys.joined(separator: " or "))")
        }
        func optInt(_ k: String) throws(EngineError) -> Int? {
            guard let v = obj[k], !(v is NSNull) else { return nil }
            guard let n = v as? NSNumber else { throw .badConfig("\(file): \(k) must be a number") }
            return n.intValue
        }
        func float(_ k: String, _ d: Float) throws(EngineError) -> Float {
            guard let v = obj[k], !(v is NSNull) else { return d }
            guard let n = v as? NSNumber else { throw .badConfig("\(file): \(k) must be a number") }
            return n.floatValue
        }
        func bool(_ k: String, _ d: Bool) throws(EngineError) -> Bool {
            guard let v = obj[k], !(v is NSNull) else { return d }
            guard let b = v as? Bool else { throw .badConfig("\(file): \(k) must be true or false") }
            return b
        }
        let type = (obj["model_type"] as? String) ?? "gpt2"
        let config: ModelConfig
        if type == "gpt2" {
            config = ModelConfig(vocabSize: try int(["vocab_size"]), contextLength: try int(["n_positions", "n_ctx"]),
                                 layers: try int(["n_layer"]), heads: try int(["n_head"]), width: try int(["n_embd"]),
                                 layerNormEpsilon: try float("layer_norm_epsilon", 1e-5))
        } else if llamaTypes.contains(type) {
            if let act = obj["hidden_act"] as? String, act != "silu" {
                throw .badConfig("\(file): hidden_act \(act) is not supported; the Llama family runs SwiGLU (silu)")
            }
            if let f = obj["partial_rotary_factor"] as? NSNumber, f.doubleValue != 1 {
                throw .badConfig("\(file): partial_rotary_factor \(f) is not supported (rotary over the whole head only)")
            }
            if type == "qwen2", try bool("use_sliding_window", false) {
                throw .badConfig("\(file): use_sliding_window true is not supported for qwen2 (per-layer windows)")
            }
            let heads = try int(["num_attention_heads"])
            let attentionBias = try bool("attention_bias", false)
            config = .llama(modelType: type, vocabSize: try int(["vocab_size"]), contextLength: try int(["max_position_embeddings"]),
                            layers: try int(["num_hidden_layers"]), heads: heads,
                            kvHeads: try optInt("num_key_value_heads") ?? heads, width: try int(["hidden_size"]),
                            mlpWidth: try int(["intermediate_size"]), headSize: try optInt("head_dim"),
                            rmsNormEpsilon: try float("rms_norm_eps", 1e-6),
                            tiedEmbeddings: try bool("tie_word_embeddings", false),
                            qkvBias: type == "qwen2" ? true : attentionBias,
                            outputBias: type == "qwen2" ? false : attentionBias, mlpBias: try bool("mlp_bias", false),
                            rope: try rope(obj, file: file),
                            slidingWindow: type == "mistral" ? try optInt("sliding_window") : nil)
        } else {
            throw .badConfig("\(file): model_type \(type) is not supported; use gpt2, llama, qwen2 or mistral")
        }
        do { try config.validate() } catch { throw .badConfig("\(file): \(error.description)") }
        return config
    }

    /// rope_theta + rope_scaling (transformers 4) or rope_parameters {rope_theta, rope_type, …} (transformers 5).
    static func rope(_ obj: [String: Any], file: String) throws(EngineError) -> RoPEConfig {
        if let raw = obj["rope_parameters"], !(raw is NSNull) {
            guard let params = raw as? [String: Any], let theta = params["rope_theta"] as? NSNumber else {
                throw .badConfig("\(file): rope_parameters must be an object with rope_theta")
            }
            return RoPEConfig(theta: theta.floatValue, scaling: try ropeScaling(params, obj, field: "rope_parameters", file: file))
        }
        var theta: Float = 10000
        if let v = obj["rope_theta"], !(v is NSNull) {
            guard let n = v as? NSNumber else { throw .badConfig("\(file): rope_theta must be a number") }
            theta = n.floatValue
        }
        guard let raw = obj["rope_scaling"], !(raw is NSNull) else { return RoPEConfig(theta: theta) }
        guard let s = raw as? [String: Any] else { throw .badConfig("\(file): rope_scaling must be an object or null") }
        return RoPEConfig(theta: theta, scaling: try ropeScaling(s, obj, field: "rope_scaling", file: file))
    }

    static func ropeScaling(_ s: [String: Any], _ obj: [String: Any], field: String, file: String) throws(EngineError) -> RoPEConfig.Scaling? {
        let kind = (s["rope_type"] as? String) ?? (s["type"] as? String) ?? "default"
        func num(_ k: String) -> Float? { (s[k] as? NSNumber)?.floatValue }
        func need(_ k: String) throws(EngineError) -> Float {
            guard let v = num(k) else { throw .badConfig("\(file): \(field) \(kind) needs \(k)") }
            return v
        }
        let context = (s["original_max_position_embeddings"] as? NSNumber)?.intValue
            ?? (obj["max_position_embeddings"] as? NSNumber)?.intValue ?? 0
        switch kind {
        case "default": return nil
        case "linear": return .linear(factor: try need("factor"))
        case "dynamic": return .dynamic(factor: try need("factor"), originalContext: context)
        case "llama3":
            return .llama3(factor: try need("factor"), lowFreqFactor: try need("low_freq_factor"),
                           highFreqFactor: try need("high_freq_factor"), originalContext: context)
        case "yarn":
            return .yarn(factor: try need("factor"), originalContext: context, betaFast: num("beta_fast") ?? 32,
                         betaSlow: num("beta_slow") ?? 1, attentionFactor: num("attention_factor"))
        default:
            throw .badConfig("\(file): \(field) type \(kind) is not supported; use default, linear, dynamic, llama3 or yarn")
        }
    }

    /// config.json for this shape (Hugging Face keys).
    public var json: [String: Any] {
        switch architecture {
        case .gpt2:
            return ["model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
                    "vocab_size": vocabSize, "n_positions": contextLength, "n_ctx": contextLength,
                    "n_embd": width, "n_layer": layers, "n_head": heads, "layer_norm_epsilon": Double(layerNormEpsilon),
                    "activation_function": "gelu_new", "tie_word_embeddings": true]
        case .llama:
            let arch = ["qwen2": "Qwen2ForCausalLM", "mistral": "MistralForCausalLM"][modelType] ?? "LlamaForCausalLM"
            var o: [String: Any] = [
                "model_type": modelType, "architectures": [arch], "vocab_size": vocabSize, "hidden_size": width,
                "intermediate_size": mlpWidth, "num_hidden_layers": layers, "num_attention_heads": heads,
                "num_key_value_heads": kvHeads, "head_dim": headSize, "max_position_embeddings": contextLength,
                "rms_norm_eps": Double(layerNormEpsilon), "rope_theta": Double(rope.theta), "hidden_act": "silu",
                "tie_word_embeddings": tiedEmbeddings, "torch_dtype": "float32",
            ]
            if modelType != "qwen2" { o["attention_bias"] = qkvBias; o["mlp_bias"] = mlpBias }
            if let w = slidingWindow { o["sliding_window"] = w }
            switch rope.scaling {
            case nil: o["rope_scaling"] = NSNull()
            case .linear(let f): o["rope_scaling"] = ["rope_type": "linear", "factor": Double(f)]
            case .dynamic(let f, let c): o["rope_scaling"] = ["rope_type": "dynamic", "factor": Double(f), "original_max_position_embeddings": c]
            case .llama3(let f, let lo, let hi, let c):
                o["rope_scaling"] = ["rope_type": "llama3", "factor": Double(f), "low_freq_factor": Double(lo),
                                     "high_freq_factor": Double(hi), "original_max_position_embeddings": c]
            case .yarn(let f, let c, let fast, let slow, let a):
                var y: [String: Any] = ["rope_type": "yarn", "factor": Double(f), "original_max_position_embeddings": c,
                                        "beta_fast": Double(fast), "beta_slow": Double(slow)]
                if let a { y["attention_factor"] = Double(a) }
                o["rope_scaling"] = y
            }
            return o
        }
    }
}
