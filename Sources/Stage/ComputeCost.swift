import Engine

/// Where a stage node sits; the planner treats each tier differently (vertical: device → edge → cloud).
public enum NodeRole: String, Sendable, CaseIterable, Codable {
    case device, edge, cloud
}

/// FLOPs and bytes of the pieces of a forward pass (GPT-2 or Llama family), shared by the planner (expected cost) and the
/// stage nodes (emulated compute time), so both count the same work.
public struct ComputeCost: Sendable, Equatable {
    public var config: ModelConfig
    /// Protobuf header, plan and framing bytes added to every activation message.
    public var headerBytes: Int

    public init(config: ModelConfig, headerBytes: Int = 160) { self.config = config; self.headerBytes = headerBytes }

    var C: Double { Double(config.width) }

    /// Multiply-adds per token of the attention matrices (q/k/v and output) and of the MLP matrices
    /// (GPT-2: 4C² and 8C²; Llama: grouped-query q/k/v, gate, up and down).
    var attentionWeights: Double { C * Double(config.qkvDim) + Double(config.qDim) * C }
    var mlpWeights: Double { C * Double(config.mlpInDim) + Double(config.mlpWidth) * C }

    /// One block on T new tokens attending over Tk keys: 2 FLOPs per weight per token (GPT-2: 2·12C²)
    /// plus 2·2·T·Tk·(heads·headSize) for scores and the weighted sum.
    public func blockFlops(tokens T: Int, keys Tk: Int) -> Double {
        attentionShareFlops(tokens: T, keys: Tk, fraction: 1) + mlpShareFlops(tokens: T, fraction: 1)
    }

    /// A head share's attention work: its fraction of q/k/v/output and of the score/value products.
    public func attentionShareFlops(tokens T: Int, keys Tk: Int, fraction f: Double) -> Double {
        f * (Double(T) * 2 * attentionWeights + 4 * Double(T) * Double(Tk) * Double(config.qDim))
    }

    /// An MLP column share: its fraction of the MLP matrices.
    public func mlpShareFlops(tokens T: Int, fraction f: Double) -> Double { f * Double(T) * 2 * mlpWeights }

    /// Final LayerNorm + LM head on the last position only (that is all sampling needs).
    public var headFlops: Double { 2 * C * Double(config.vocabSize) }

    public func embedFlops(tokens T: Int) -> Double { Double(T) * C }

    /// Hidden state [T, C] as f32 plus the header.
    public func activationBytes(tokens T: Int) -> Int { T * config.width * 4 + headerBytes }
    public func tokenBytes(tokens T: Int) -> Int { 4 * T + headerBytes }
    public var logitBytes: Int { 4 * config.vocabSize + headerBytes }

    /// Work of a chain stage: embed?, blocks [begin, end), head?.
    public func stageFlops(layers: Int, embed: Bool, head: Bool, tokens T: Int, keys Tk: Int) -> Double {
        (embed ? embedFlops(tokens: T) : 0) + Double(layers) * blockFlops(tokens: T, keys: Tk) + (head ? headFlops : 0)
    }

    /// Head share [begin, end) in units of heads: the fraction of heads and of MLP columns it owns.
    public func shareFraction(_ units: Range<Int>) -> Double { Double(units.count) / Double(config.heads) }

    /// MLP columns of a head-unit share: unit u owns columns u·M/NH ..< (u+1)·M/NH (M = MLP width, 4C for GPT-2).
    public func mlpColumns(_ units: Range<Int>) -> Range<Int> {
        let per = config.mlpWidth, nh = config.heads
        return (units.lowerBound * per / nh)..<(units.upperBound * per / nh)
    }
}
