import Engine

/// Where a stage node sits; the planner treats each tier differently (vertical: device → edge → cloud).
public enum NodeRole: String, Sendable, CaseIterable, Codable {
    case device, edge, cloud
}

/// FLOPs and bytes of the pieces of a GPT-2 forward pass, shared by the planner (expected cost) and the
/// stage nodes (emulated compute time), so both count the same work.
public struct ComputeCost: Sendable, Equatable {
    public var config: ModelConfig
    /// Protobuf header, plan and framing bytes added to every activation message.
    public var headerBytes: Int

    public init(config: ModelConfig, headerBytes: Int = 160) { self.config = config; self.headerBytes = headerBytes }

    var C: Double { Double(config.width) }

    /// One block on T new tokens attending over Tk keys: 2·12C² per token (qkv 3C², proj C², fc 4C², proj 4C²)
    /// plus 2·2·T·Tk·C for scores and the weighted sum.
    public func blockFlops(tokens T: Int, keys Tk: Int) -> Double {
        Double(T) * 24 * C * C + 4 * Double(T) * Double(Tk) * C
    }

    /// A head share's attention work: its fraction of qkv/proj and of the score/value products.
    public func attentionShareFlops(tokens T: Int, keys Tk: Int, fraction f: Double) -> Double {
        f * (Double(T) * 8 * C * C + 4 * Double(T) * Double(Tk) * C)
    }

    /// An MLP column share: its fraction of fc and proj.
    public func mlpShareFlops(tokens T: Int, fraction f: Double) -> Double { f * Double(T) * 16 * C * C }

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

    /// MLP columns of a head-unit share: unit u owns columns u·4C/NH ..< (u+1)·4C/NH.
    public func mlpColumns(_ units: Range<Int>) -> Range<Int> {
        let per = 4 * config.width, nh = config.heads
        return (units.lowerBound * per / nh)..<(units.upperBound * per / nh)
    }
}
