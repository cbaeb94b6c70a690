/// The two block designs the engine runs. `llama` covers the Hugging Face model types llama, qwen2 and mistral.
public enum Architecture: String, Sendable, Equatable, Codable {
    /// Pre-LayerNorm, learned positions, GELU MLP, biases everywhere, tied head.
    case gpt2
    /// Pre-RMSNorm, rotary positions, SwiGLU MLP, grouped-query attention, optional q/k/v bias, tied or untied head.
    case llama
}

/// Shape of a model. Names follow Hugging Face's config.json where one exists.
public struct ModelConfig: Sendable, Equatable, Codable {
    public var architecture: Architecture
    /// config.json `model_type` (gpt2, llama, qwen2, mistral), written back when saving.
    public var modelType: String
    public var vocabSize: Int
    public var contextLength: Int
    public var layers: Int
    public var heads: Int
    public var width: Int
    /// Key/value heads (grouped-query attention); equals `heads` for multi-head attention.
    public var kvHeads: Int
    /// Per-head size; width / heads unless config.json says `head_dim`.
    public var headSize: Int
    /// MLP hidden width (GPT-2: 4·width; Llama: intermediate_size).
    public var mlpWidth: Int
    /// LayerNorm (GPT-2) or RMSNorm (Llama) epsilon.
    public var layerNormEpsilon: Float
    /// Biases of q/k/v (GPT-2 and Qwen2 have them), of the attention output and of the MLP projections.
    public var qkvBias: Bool
    public var outputBias: Bool
    public var mlpBias: Bool
    /// The LM head reuses the token embedding.
    public var tiedEmbeddings: Bool
    public var rope: RoPEConfig
    /// Mistral's sliding-window attention: a position sees at most this many keys (itself included).
    public var slidingWindow: Int?

    /// GPT-2 shapes (the engine's original model).
    public init(vocabSize: Int, contextLength: Int, layers: Int, heads: Int, width: Int, layerNormEpsilon: Float = 1e-5) {
        architecture = .gpt2; modelType = "gpt2"
        self.vocabSize = vocabSize; self.contextLength = contextLength; self.layers = layers
        self.heads = heads; self.width = width; self.layerNormEpsilon = layerNormEpsilon
        kvHeads = heads; headSize = heads > 0 ? width / heads : 0; mlpWidth = 4 * width
        qkvBias = true; outputBias = true; mlpBias = true; tiedEmbeddings = true
        rope = RoPEConfig(); slidingWindow = nil
    }

    /// Llama-family shapes; `modelType` qwen2 turns the q/k/v biases on (as Qwen2 has them).
    public static func llama(modelType: String = "llama", vocabSize: Int, contextLength: Int, layers: Int, heads: Int,
                             kvHeads: Int, width: Int, mlpWidth: Int, headSize: Int? = nil, rmsNormEpsilon: Float = 1e-5,
                             tiedEmbeddings: Bool = false, qkvBias: Bool? = nil, outputBias: Bool = false, mlpBias: Bool = false,
                             rope: RoPEConfig = RoPEConfig(), slidingWindow: Int? = nil) -> ModelConfig {
        var c = ModelConfig(vocabSize: vocabSize, contextLength: contextLength, layers: layers, heads: heads, width: width,
                            layerNormEpsilon: rmsNormEpsilon)
        c.architecture = .llama; c.modelType = modelType
        c.kvHeads = kvHeads; c.headSize = headSize ?? (heads > 0 ? width / heads : 0); c.mlpWidth = mlpWidth
        c.qkvBias = qkvBias ?? (modelType == "qwen2"); c.outputBias = outputBias; c.mlpBias = mlpBias
        c.tiedEmbeddings = tiedEmbeddings; c.rope = rope; c.slidingWindow = slidingWindow
        return c
    }

    /// Query rows (heads · headSize) and key or value rows (kvHeads · headSize) of the fused q/k/v projection.
    public var qDim: Int { heads * headSize }
    public var kvDim: Int { kvHeads * headSize }
    public var qkvDim: Int { qDim + 2 * kvDim }
    /// Rows of the fused first MLP projection: c_fc (GPT-2) or gate and up stacked (Llama).
    public var mlpInDim: Int { architecture == .llama ? 2 * mlpWidth : mlpWidth }

    /// Unit tests: a few thousand parameters, byte vocabulary.
    public static let tiny = ModelConfig(vocabSize: 256, contextLength: 32, layers: 2, heads: 2, width: 32)
    /// The federated demo's base model: byte-level, 4 layers, 256 wide, context 128 (~3.2M parameters).
    public static let small = ModelConfig(vocabSize: 256, contextLength: 128, layers: 4, heads: 4, width: 256)
    /// A 6-layer 384-wide byte model, for a stronger base if time allows (~10.7M parameters).
    public static let medium = ModelConfig(vocabSize: 256, contextLength: 256, layers: 6, heads: 6, width: 384)
    /// OpenAI GPT-2 small (124M).
    public static let gpt2Small = ModelConfig(vocabSize: 50257, contextLength: 1024, layers: 12, heads: 12, width: 768)
    /// A byte-vocabulary Llama the size of `small` (4 layers, 256 wide, 2 KV heads), for federated runs on Llama blocks.
    public static let llamaSmall = ModelConfig.llama(vocabSize: 256, contextLength: 128, layers: 4, heads: 4, kvHeads: 2,
                                                     width: 256, mlpWidth: 704, tiedEmbeddings: true)
    /// SmolLM-135M's shape (HuggingFaceTB): 30 layers, 576 wide, 9 heads over 3 KV heads, MLP 1536, vocabulary 49,152.
    public static let smolLM135M = ModelConfig.llama(vocabSize: 49152, contextLength: 2048, layers: 30, heads: 9, kvHeads: 3,
                                                     width: 576, mlpWidth: 1536, tiedEmbeddings: true,
                                                     rope: RoPEConfig(theta: 10000))
    /// LLaMA-7B's shape: 32 layers, 4096 wide, 32 heads, MLP 11,008, vocabulary 32,000.
    public static let llama7B = ModelConfig.llama(vocabSize: 32000, contextLength: 2048, layers: 32, heads: 32, kvHeads: 32,
                                                  width: 4096, mlpWidth: 11008, rmsNormEpsilon: 1e-6)

    public static func preset(named name: String) -> ModelConfig? {
        switch name {
        case "tiny": return .tiny
        case "small": return .small
        case "medium": return .medium
        case "gpt2", "gpt2-small": return .gpt2Small
        case "llama-small": return .llamaSmall
        case "smollm-135m": return .smolLM135M
        case "llama-7b": return .llama7B
        default: return nil
        }
    }

    /// Checks the shape is usable; loaders call it on untrusted config.json.
    public func validate() throws(EngineError) {
        guard vocabSize > 0, contextLength > 0, layers > 0, heads > 0, width > 0, kvHeads > 0, headSize > 0, mlpWidth > 0 else {
            throw .badConfig("all sizes must be positive (got vocab \(vocabSize), context \(contextLength), layers \(layers), heads \(heads), kv heads \(kvHeads), width \(width), head size \(headSize), mlp \(mlpWidth))")
        }
        guard heads % kvHeads == 0 else { throw .badConfig("heads \(heads) is not a multiple of num_key_value_heads \(kvHeads)") }
        guard layerNormEpsilon > 0 else { throw .badConfig("layer_norm_epsilon / rms_norm_eps must be positive") }
        switch architecture {
        case .gpt2:
            guard width % heads == 0, headSize * heads == width, kvHeads == heads else {
                throw .badConfig("GPT-2 needs width \(width) divisible by heads \(heads) and no grouped-query attention")
            }
        case .llama:
            guard headSize % 2 == 0 else { throw .badConfig("head_dim \(headSize) must be even for rotary embeddings") }
            try rope.validate(headSize: headSize)
            if let w = slidingWindow, w <= 0 { throw .badConfig("sliding_window must be positive, got \(w)") }
        }
        // Parameter counts must fit the engine's Int arithmetic and the 32-bit BLAS dimensions.
        guard vocabSize < Int(Int32.max) / max(width, 1), mlpInDim < Int(Int32.max) / max(width, 1) else {
            throw .badConfig("matrices of \(vocabSize)×\(width) or \(mlpInDim)×\(width) exceed 32-bit BLAS dimensions")
        }
    }

    /// Number of base parameters (tied LM head counted once).
    public var parameterCount: Int { ParameterLayout(self).count }
}

/// Rotary position embeddings: base frequency and the scaling variants Hugging Face configs name (`rope_scaling`).
public struct RoPEConfig: Sendable, Equatable, Codable {
    public enum Scaling: Sendable, Equatable, Codable {
        /// Positions divided by `factor` (position interpolation).
        case linear(factor: Float)
        /// NTK-aware: beyond the original context the base grows with the sequence length.
        case dynamic(factor: Float, originalContext: Int)
        /// Llama 3.1: low frequencies divided by `factor`, high ones kept, a smooth blend between.
        case llama3(factor: Float, lowFreqFactor: Float, highFreqFactor: Float, originalContext: Int)
        /// YaRN: per-frequency blend of interpolation and extrapolation, cos/sin scaled by `attentionFactor`.
        case yarn(factor: Float, originalContext: Int, betaFast: Float, betaSlow: Float, attentionFactor: Float?)
    }
    public var theta: Float
    public var scaling: Scaling?
    public init(theta: Float = 10000, scaling: Scaling? = nil) { self.theta = theta; self.scaling = scaling }

    func validate(headSize: Int) throws(EngineError) {
        guard theta > 1 else { throw .badConfig("rope_theta must be > 1, got \(theta)") }
        switch scaling {
        case nil: break
        case .linear(let f), .dynamic(let f, _): guard f >= 1 else { throw .badConfig("rope_scaling.factor must be ≥ 1, got \(f)") }
        case .llama3(let f, let lo, let hi, let ctx):
            guard f >= 1, lo > 0, hi > lo, ctx > 0 else {
                throw .badConfig("rope_scaling llama3 needs factor ≥ 1, 0 < low_freq_factor < high_freq_factor, original_max_position_embeddings > 0")
            }
        case .yarn(let f, let ctx, let fast, let slow, _):
            guard f >= 1, ctx > 0, fast > slow, slow > 0 else {
                throw .badConfig("rope_scaling yarn needs factor ≥ 1, original_max_position_embeddings > 0, beta_fast > beta_slow > 0")
            }
        }
    }
}

/// Errors from the engine: each names the file or tensor at fault and what to do.
public enum EngineError: Error, Equatable, CustomStringConvertible {
    case badConfig(String)
    case missingTensor(name: String, file: String)
    case shapeMismatch(name: String, expected: [Int], got: [Int])
    case truncatedFile(file: String, detail: String)
    case badHeader(file: String, detail: String)
    case unsupportedDType(name: String, dtype: String)
    case io(file: String, detail: String)
    case badInput(String)
    case tokenizerUnavailable(String)

    public var description: String {
        switch self {
        case .badConfig(let s): return "bad model config: \(s)"
        case .missingTensor(let n, let f): return "tensor '\(n)' is missing from \(f); check the checkpoint matches the config"
        case .shapeMismatch(let n, let e, let g): return "tensor '\(n)' has shape \(g), expected \(e); check config.json matches the weights"
        case .truncatedFile(let f, let d): return "file \(f) is truncated (\(d)); re-download or re-save it"
        case .badHeader(let f, let d): return "bad header in \(f): \(d)"
        case .unsupportedDType(let n, let d): return "tensor '\(n)' has dtype \(d); only F32, F16 and BF16 (and I8/U8 in quantized folders) are supported"
        case .io(let f, let d): return "cannot access \(f): \(d)"
        case .badInput(let s): return "bad input: \(s)"
        case .tokenizerUnavailable(let s): return s
        }
    }
}
