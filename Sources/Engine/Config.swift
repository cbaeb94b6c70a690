/// Shape of a GPT-2 model. Names follow Hugging Face's config.json where one exists.
public struct ModelConfig: Sendable, Equatable, Codable {
    public var vocabSize: Int
    public var contextLength: Int
    public var layers: Int
    public var heads: Int
    public var width: Int
    public var layerNormEpsilon: Float

    public init(vocabSize: Int, contextLength: Int, layers: Int, heads: Int, width: Int,
                layerNormEpsilon: Float = 1e-5) {
        self.vocabSize = vocabSize
        self.contextLength = contextLength
        self.layers = layers
        self.heads = heads
        self.width = width
        self.layerNormEpsilon = layerNormEpsilon
    }

    public var headSize: Int { width / heads }

    /// Unit tests: a few thousand parameters, byte vocabulary.
    public static let tiny = ModelConfig(vocabSize: 256, contextLength: 32, layers: 2, heads: 2, width: 32)
    /// The federated demo's base model: byte-level, 4 layers, 256 wide, context 128 (~3.2M parameters).
    public static let small = ModelConfig(vocabSize: 256, contextLength: 128, layers: 4, heads: 4, width: 256)
    /// A 6-layer 384-wide byte model, for a stronger base if time allows (~10.7M parameters).
    public static let medium = ModelConfig(vocabSize: 256, contextLength: 256, layers: 6, heads: 6, width: 384)
    /// OpenAI GPT-2 small (124M).
    public static let gpt2Small = ModelConfig(vocabSize: 50257, contextLength: 1024, layers: 12, heads: 12, width: 768)

    public static func preset(named name: String) -> ModelConfig? {
        switch name {
        case "tiny": return .tiny
        case "small": return .small
        case "medium": return .medium
        case "gpt2", "gpt2-small": return .gpt2Small
        default: return nil
        }
    }

    /// Checks the shape is usable; loaders call it on untrusted config.json.
    public func validate() throws(EngineError) {
        guard vocabSize > 0, contextLength > 0, layers > 0, heads > 0, width > 0 else {
            throw .badConfig("all sizes must be positive (got vocab \(vocabSize), context \(contextLength), layers \(layers), heads \(heads), width \(width))")
        }
        guard width % heads == 0 else {
            throw .badConfig("width \(width) is not divisible by heads \(heads)")
        }
        guard layerNormEpsilon > 0 else { throw .badConfig("layer_norm_epsilon must be positive") }
    }

    /// Number of base parameters (tied LM head counted once).
    public var parameterCount: Int { ParameterLayout(self).count }
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
        case .unsupportedDType(let n, let d): return "tensor '\(n)' has dtype \(d); only F32 and F16 are supported"
        case .io(let f, let d): return "cannot access \(f): \(d)"
        case .badInput(let s): return "bad input: \(s)"
        case .tokenizerUnavailable(let s): return s
        }
    }
}
