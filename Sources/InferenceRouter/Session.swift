import Engine
import Messages
import Stage

/// Where a request's tokens go: back over the router's ROUTER socket, or to an in-process stream.
enum Output {
    case socket(peer: [UInt8], seq: UInt64)
    case stream(AsyncStream<Body>.Continuation)
}

/// One request in flight: its plan, the tokens so far and the sampling RNG (which survives a failover,
/// so a replayed prefix continues with the same random draws). In direct mode the RNG travels with the
/// activations; the session keeps the state after the last token it received.
final class Session {
    let requestId: String
    let device: String
    let cluster: UInt32
    let prompt: [UInt32]
    let maxTokens: Int
    let sampling: Engine.Sampling
    let wireSampling: Messages.Sampling
    /// Runs stage to stage (false: through the router, or a multi-access plan).
    var direct: Bool
    let forcedKind: PlanKind?
    let output: Output
    var rng: SplitMix64
    var plan: InferencePlan
    var generated: [UInt32] = []
    var attempt = 0
    var failovers = 0
    /// Tokens fed in the current forward pass and the position of the first of them.
    var input: [UInt32]
    var position = 0
    /// Chain: index of the stage being run. Multi-access: 0 embed, 1...2L block phases, 2L+1 head.
    var step = 0
    var hidden: [Float] = []
    var partial: [Float] = []
    var awaiting: Set<Int> = []
    /// Seconds spent at each plan stage for the current token (send → reply, links included).
    var stageSeconds: [Double] = []
    var tokenStarted: UInt64 = 0
    var started: UInt64 = 0
    /// Direct mode: when the last token (or the start) arrived, for the progress timeout.
    var lastProgress: UInt64 = 0

    init(requestId: String, device: String, cluster: UInt32, prompt: [UInt32], maxTokens: Int, sampling: Messages.Sampling,
         forcedKind: PlanKind?, output: Output, plan: InferencePlan, direct: Bool) {
        self.requestId = requestId; self.device = device; self.cluster = cluster; self.prompt = prompt
        self.maxTokens = maxTokens; self.sampling = sampling.engine; self.wireSampling = sampling; self.forcedKind = forcedKind
        self.output = output; self.direct = direct
        rng = SplitMix64(seed: sampling.seed)
        self.plan = plan
        input = prompt
        stageSeconds = [Double](repeating: 0, count: plan.stages.count)
    }

    /// The id nodes key their KV caches by; a new attempt starts fresh caches.
    var sessionKey: String { "\(requestId)#\(attempt)" }

    /// Restart from the prefix (prompt + tokens so far) on a new plan.
    func replay(on newPlan: InferencePlan, direct: Bool) {
        attempt += 1
        self.direct = direct
        failovers += 1
        plan = newPlan
        input = prompt + generated
        position = 0
        step = 0
        hidden = []
        partial = []
        awaiting = []
        stageSeconds = [Double](repeating: 0, count: newPlan.stages.count)
    }
}
