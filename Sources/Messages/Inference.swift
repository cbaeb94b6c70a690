import CMessages

// Split inference: client -> router -> stage nodes over DEALER/ROUTER.

public struct Sampling: Sendable, Equatable {
    /// 0 = greedy.
    public var temperature: Float
    public var topK: UInt32
    public var seed: UInt64

    public init(temperature: Float = 0, topK: UInt32 = 0, seed: UInt64 = 0) { self.temperature = temperature; self.topK = topK; self.seed = seed }

    init(c: UnsafeMutablePointer<Fi__V1__Sampling>) { self.init(temperature: c.pointee.temperature, topK: c.pointee.top_k, seed: c.pointee.seed) }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__Sampling> {
        let q: UnsafeMutablePointer<Fi__V1__Sampling> = arena.message(fi__v1__sampling__init)
        q.pointee.temperature = temperature; q.pointee.top_k = topK; q.pointee.seed = seed
        return q
    }
}

public struct InferenceRequest: Sendable, Equatable {
    public var requestId: String
    public var deviceId: String
    /// Token ids.
    public var prompt: [UInt32]
    /// Used when `prompt` is empty.
    public var promptText: String
    public var maxTokens: UInt32
    public var sampling: Sampling?

    public init(requestId: String, deviceId: String = "", prompt: [UInt32] = [], promptText: String = "", maxTokens: UInt32 = 0,
                sampling: Sampling? = nil) {
        self.requestId = requestId; self.deviceId = deviceId; self.prompt = prompt; self.promptText = promptText
        self.maxTokens = maxTokens; self.sampling = sampling
    }

    init(c: UnsafeMutablePointer<Fi__V1__InferenceRequest>) {
        let m = c.pointee
        self.init(requestId: readString(m.request_id), deviceId: readString(m.device_id), prompt: readScalars(m.prompt, m.n_prompt),
                  promptText: readString(m.prompt_text), maxTokens: m.max_tokens,
                  sampling: m.sampling.map(Sampling.init(c:)))
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__InferenceRequest> {
        let p: UnsafeMutablePointer<Fi__V1__InferenceRequest> = arena.message(fi__v1__inference_request__init)
        p.pointee.request_id = arena.string(requestId); p.pointee.device_id = arena.string(deviceId)
        p.pointee.n_prompt = prompt.count; p.pointee.prompt = arena.array(prompt)
        p.pointee.prompt_text = arena.string(promptText); p.pointee.max_tokens = maxTokens
        p.pointee.sampling = sampling?.c(arena)
        return p
    }
}

/// One node's part of an inference plan.
public struct Stage: Sendable, Equatable {
    public var nodeId: String
    public var endpoint: String
    /// Blocks [layerBegin, layerEnd).
    public var layerBegin: UInt32
    public var layerEnd: UInt32
    /// Runs the embedding before its blocks.
    public var embed: Bool
    /// Runs the final norm and LM head after its blocks.
    public var head: Bool
    /// Multi-access: this node's share [shareBegin, shareEnd) of heads / MLP columns / batch rows.
    public var shareBegin: UInt32
    public var shareEnd: UInt32

    public init(nodeId: String, endpoint: String = "", layerBegin: UInt32 = 0, layerEnd: UInt32 = 0, embed: Bool = false,
                head: Bool = false, shareBegin: UInt32 = 0, shareEnd: UInt32 = 0) {
        self.nodeId = nodeId; self.endpoint = endpoint; self.layerBegin = layerBegin; self.layerEnd = layerEnd
        self.embed = embed; self.head = head; self.shareBegin = shareBegin; self.shareEnd = shareEnd
    }

    init(c: UnsafeMutablePointer<Fi__V1__Stage>) {
        let m = c.pointee
        self.init(nodeId: readString(m.node_id), endpoint: readString(m.endpoint), layerBegin: m.layer_begin, layerEnd: m.layer_end,
                  embed: m.embed != 0, head: m.head != 0, shareBegin: m.share_begin, shareEnd: m.share_end)
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__Stage> {
        let p: UnsafeMutablePointer<Fi__V1__Stage> = arena.message(fi__v1__stage__init)
        p.pointee.node_id = arena.string(nodeId); p.pointee.endpoint = arena.string(endpoint)
        p.pointee.layer_begin = layerBegin; p.pointee.layer_end = layerEnd
        p.pointee.embed = embed ? 1 : 0; p.pointee.head = head ? 1 : 0
        p.pointee.share_begin = shareBegin; p.pointee.share_end = shareEnd
        return p
    }
}

public struct StageActivation: Sendable, Equatable {
    public var sessionId: String
    /// First position of these tokens in the sequence.
    public var position: UInt32
    public var tokens: [UInt32]
    /// [T, C] hidden state; usually sent as frame 1 (see `Envelope.encodeFrames`).
    public var hidden: Tensor?
    public var plan: [Stage]
    public var stageIndex: UInt32
    /// Whose adapter to apply.
    public var cluster: UInt32
    /// Direct forwarding: each stage sends its output to the next stage; the last draws the token, reports it to
    /// the router and feeds it back to the first stage.
    public var direct: Bool
    /// Direct: how the last stage draws the token, and the RNG state before the draw.
    public var sampling: Sampling?
    public var rngState: UInt64
    /// Direct: tokens still to draw, this one included.
    public var remaining: UInt32
    /// Direct: index of the token this pass draws.
    public var tokenIndex: UInt32
    /// Non-zero: the receiver echoes a Probe with this send time (a link measurement riding on the activation).
    public var probeSentUs: UInt64
    /// Device the tokens are for.
    public var requester: String

    public init(sessionId: String, position: UInt32 = 0, tokens: [UInt32] = [], hidden: Tensor? = nil, plan: [Stage] = [],
                stageIndex: UInt32 = 0, cluster: UInt32 = 0, direct: Bool = false, sampling: Sampling? = nil, rngState: UInt64 = 0,
                remaining: UInt32 = 0, tokenIndex: UInt32 = 0, probeSentUs: UInt64 = 0, requester: String = "") {
        self.sessionId = sessionId; self.position = position; self.tokens = tokens; self.hidden = hidden
        self.plan = plan; self.stageIndex = stageIndex; self.cluster = cluster
        self.direct = direct; self.sampling = sampling; self.rngState = rngState; self.remaining = remaining
        self.tokenIndex = tokenIndex; self.probeSentUs = probeSentUs; self.requester = requester
    }

    init(c: UnsafeMutablePointer<Fi__V1__StageActivation>, _ ctx: inout DecodeContext) throws {
        let m = c.pointee
        self.init(sessionId: readString(m.session_id), position: m.position, tokens: readScalars(m.tokens, m.n_tokens),
                  hidden: try m.hidden.map { try Tensor(c: $0, &ctx) },
                  plan: try readMessages(m.plan, m.n_plan, field: "StageActivation.plan", Stage.init(c:)),
                  stageIndex: m.stage_index, cluster: m.cluster, direct: m.direct != 0, sampling: m.sampling.map(Sampling.init(c:)),
                  rngState: m.rng_state, remaining: m.remaining, tokenIndex: m.token_index, probeSentUs: m.probe_sent_us,
                  requester: readString(m.requester))
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__StageActivation> {
        let p: UnsafeMutablePointer<Fi__V1__StageActivation> = arena.message(fi__v1__stage_activation__init)
        p.pointee.session_id = arena.string(sessionId); p.pointee.position = position
        p.pointee.n_tokens = tokens.count; p.pointee.tokens = arena.array(tokens)
        p.pointee.hidden = hidden?.c(arena)
        p.pointee.n_plan = plan.count; p.pointee.plan = arena.messages(plan) { $0.c(arena) }
        p.pointee.stage_index = stageIndex; p.pointee.cluster = cluster
        p.pointee.direct = direct ? 1 : 0; p.pointee.sampling = sampling?.c(arena); p.pointee.rng_state = rngState
        p.pointee.remaining = remaining; p.pointee.token_index = tokenIndex; p.pointee.probe_sent_us = probeSentUs
        p.pointee.requester = arena.string(requester)
        return p
    }
}

public struct TokenResult: Sendable, Equatable {
    public var requestId: String
    public var token: UInt32
    public var index: UInt32
    public var done: Bool
    public var text: String
    /// Plan kind, e.g. "vertical".
    public var plan: String
    public var stageSeconds: [Double]
    /// Direct: the sampling RNG's state after this draw (a failover replays from it).
    public var rngState: UInt64
    /// The planner's estimate of the whole generation under this plan, seconds.
    public var expectedS: Double
    /// e.g. "vertical d0[0,2)+e0[2,6)+c0[6,8)".
    public var planSummary: String

    public init(requestId: String, token: UInt32 = 0, index: UInt32 = 0, done: Bool = false, text: String = "", plan: String = "",
                stageSeconds: [Double] = [], rngState: UInt64 = 0, expectedS: Double = 0, planSummary: String = "") {
        self.requestId = requestId; self.token = token; self.index = index; self.done = done; self.text = text
        self.plan = plan; self.stageSeconds = stageSeconds; self.rngState = rngState; self.expectedS = expectedS
        self.planSummary = planSummary
    }

    init(c: UnsafeMutablePointer<Fi__V1__TokenResult>) {
        let m = c.pointee
        self.init(requestId: readString(m.request_id), token: m.token, index: m.index, done: m.done != 0, text: readString(m.text),
                  plan: readString(m.plan), stageSeconds: readScalars(m.stage_seconds, m.n_stage_seconds), rngState: m.rng_state,
                  expectedS: m.expected_s, planSummary: readString(m.plan_summary))
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__TokenResult> {
        let p: UnsafeMutablePointer<Fi__V1__TokenResult> = arena.message(fi__v1__token_result__init)
        p.pointee.request_id = arena.string(requestId); p.pointee.token = token; p.pointee.index = index
        p.pointee.done = done ? 1 : 0; p.pointee.text = arena.string(text); p.pointee.plan = arena.string(plan)
        p.pointee.n_stage_seconds = stageSeconds.count; p.pointee.stage_seconds = arena.array(stageSeconds)
        p.pointee.rng_state = rngState; p.pointee.expected_s = expectedS; p.pointee.plan_summary = arena.string(planSummary)
        return p
    }
}

public enum ErrorCode: UInt32, Sendable, Equatable, CaseIterable {
    case unspecified = 0, unknownDevice, noRoute, promptTooLong, badRequest, nodeFailed, `internal`
    /// Admission control: every node that could serve is at its session limit.
    case overloaded = 100
}

public struct InferenceError: Sendable, Equatable {
    public var requestId: String
    public var code: ErrorCode
    public var message: String
    /// `.nodeFailed`: the stage node that could not be reached.
    public var nodeId: String

    public init(requestId: String, code: ErrorCode, message: String = "", nodeId: String = "") {
        self.requestId = requestId; self.code = code; self.message = message; self.nodeId = nodeId
    }

    init(c: UnsafeMutablePointer<Fi__V1__InferenceError>) throws {
        let m = c.pointee
        self.init(requestId: readString(m.request_id), code: try readEnum(m.code.rawValue, field: "InferenceError.code"),
                  message: readString(m.message), nodeId: readString(m.node_id))
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__InferenceError> {
        let p: UnsafeMutablePointer<Fi__V1__InferenceError> = arena.message(fi__v1__inference_error__init)
        p.pointee.request_id = arena.string(requestId); p.pointee.code = Fi__V1__ErrorCode(rawValue: code.rawValue)
        p.pointee.message = arena.string(message); p.pointee.node_id = arena.string(nodeId)
        return p
    }
}
