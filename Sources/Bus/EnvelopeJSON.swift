import Messages

// Every message type as JSON, in one place (the tap prints these). Keys are the proto field names and
// enum values their proto names, as protobuf's JSON mapping prints them (examples/tap.py shows the same
// keys), except: every field is printed, defaults too; 64-bit integers are numbers, not strings; tensors
// are summarized as name/shape/dtype/bytes, never their data. The switches are exhaustive, so a new
// Body or Telemetry case does not compile until it has a JSON form here.

extension Envelope {
    /// The envelope as a JSON object: header fields, then one key named after the body (`"round": {...}`).
    public var json: JSONValue {
        .object([
            ("version", .uint(UInt64(version))),
            ("sender", .string(sender)),
            ("seq", .uint(seq)),
            ("timestamp_us", .uint(timestampUs)),
            ("reply_to", .uint(replyTo)),
            (body.name, body.json),
        ])
    }
}

extension Body {
    /// The body's fields as a JSON object.
    public var json: JSONValue {
        switch self {
        case .register(let m):
            return .object([
                ("role", .string(protoName(m.role))), ("node_id", .string(m.nodeId)),
                ("caps", m.caps.map { c in
                    .object([("flops", .double(c.flops)), ("memory_bytes", .uint(c.memoryBytes)),
                             ("layers_capacity", .uint(UInt64(c.layersCapacity)))])
                } ?? .null),
                ("domain_hint", .string(m.domainHint)), ("endpoint", .string(m.endpoint)),
            ])
        case .heartbeat(let m):
            var pairs: [(String, JSONValue)] = [("round", .uint(m.round)), ("load", .double(m.load))]
            if let l = m.live {
                pairs.append(("live", .object([("busy", .double(l.busy)), ("queue", .uint(UInt64(l.queue))),
                                               ("flops_measured", .double(l.flopsMeasured)), ("sessions", .uint(UInt64(l.sessions))),
                                               ("max_sessions", .uint(UInt64(l.maxSessions))), ("window_s", .double(l.windowS))])))
            }
            if !m.links.isEmpty {
                pairs.append(("links", .array(m.links.map { r in
                    .object([("peer", .string(r.peer)), ("rtt_s", .double(r.rttS)), ("rate_bps", .double(r.rateBps)),
                             ("snr_db", .double(r.snrDb)), ("radio", .bool(r.radio)), ("samples", .uint(UInt64(r.samples))),
                             ("reverse_rate_bps", .double(r.reverseRateBps))])
                })))
            }
            return .object(pairs)
        case .leave(let m):
            return .object([("reason", .string(m.reason))])
        case .assignment(let m):
            return .object([
                ("node_id", .string(m.nodeId)), ("partition", .uint(UInt64(m.partition))),
                ("aggregator", .string(m.aggregator)), ("aggregator_endpoint", .string(m.aggregatorEndpoint)),
                ("cluster", .uint(UInt64(m.cluster))), ("edge", .uint(UInt64(m.edge))),
            ])
        case .clusterMap(let m):
            return .object([
                ("map_seq", .uint(m.mapSeq)),
                ("members", .array(m.members.map { c in
                    .object([("node_id", .string(c.nodeId)), ("role", .string(protoName(c.role))),
                             ("cluster", .uint(UInt64(c.cluster))), ("edge", .uint(UInt64(c.edge))),
                             ("alive", .bool(c.alive)), ("endpoint", .string(c.endpoint))])
                })),
                ("snapshot", .bool(m.snapshot)),
            ])
        case .snapshotRequest(let m):
            return .object([("topic", .string(m.topic))])
        case .round(let m):
            return .object([
                ("round", .uint(m.round)), ("paradigm", .string(protoName(m.paradigm))), ("tier", .string(protoName(m.tier))),
                ("cluster", .uint(UInt64(m.cluster))), ("local_steps", .uint(UInt64(m.localSteps))),
                ("learning_rate", .float(m.learningRate)), ("participants", .array(m.participants.map(JSONValue.string))),
                ("deadline_s", .double(m.deadlineS)), ("model_version", .uint(m.modelVersion)),
            ])
        case .model(let m):
            return .object([
                ("round", .uint(m.round)), ("cluster", .uint(UInt64(m.cluster))), ("tier", .string(protoName(m.tier))),
                ("model_version", .uint(m.modelVersion)), ("tensors", .array(m.tensors.map(\.summaryJSON))),
            ])
        case .modelRequest(let m):
            return .object([("cluster", .uint(UInt64(m.cluster))), ("tier", .string(protoName(m.tier)))])
        case .update(let m):
            return .object([
                ("round", .uint(m.round)), ("cluster", .uint(UInt64(m.cluster))), ("base_version", .uint(m.baseVersion)),
                ("samples", .uint(m.samples)), ("train_loss", .float(m.trainLoss)),
                ("delta", .array(m.delta.map(\.summaryJSON))), ("tier", .string(protoName(m.tier))),
                ("compute_s", .double(m.computeS)),
            ])
        case .ack(let m):
            return .object([("round", .uint(m.round)), ("accepted", .bool(m.accepted)), ("reason", .string(m.reason)),
                            ("duplicate", .bool(m.duplicate))])
        case .evalRequest(let m):
            return .object([("round", .uint(m.round)), ("cluster", .uint(UInt64(m.cluster)))])
        case .evalResult(let m):
            return .object([("round", .uint(m.round)), ("domain", .string(m.domain)), ("val_loss", .float(m.valLoss)),
                            ("tokens", .uint(m.tokens))])
        case .telemetry(let t):
            return t.json
        case .inferRequest(let m):
            return .object([
                ("request_id", .string(m.requestId)), ("device_id", .string(m.deviceId)),
                ("prompt", .array(m.prompt.map { .uint(UInt64($0)) })), ("prompt_text", .string(m.promptText)),
                ("max_tokens", .uint(UInt64(m.maxTokens))),
                ("sampling", m.sampling.map { s in
                    .object([("temperature", .float(s.temperature)), ("top_k", .uint(UInt64(s.topK))), ("seed", .uint(s.seed))])
                } ?? .null),
            ])
        case .activation(let m):
            return .object([
                ("session_id", .string(m.sessionId)), ("position", .uint(UInt64(m.position))),
                ("tokens", .array(m.tokens.map { .uint(UInt64($0)) })), ("hidden", m.hidden?.summaryJSON ?? .null),
                ("plan", .array(m.plan.map { s in
                    .object([("node_id", .string(s.nodeId)), ("endpoint", .string(s.endpoint)),
                             ("layer_begin", .uint(UInt64(s.layerBegin))), ("layer_end", .uint(UInt64(s.layerEnd))),
                             ("embed", .bool(s.embed)), ("head", .bool(s.head)),
                             ("share_begin", .uint(UInt64(s.shareBegin))), ("share_end", .uint(UInt64(s.shareEnd)))])
                })),
                ("stage_index", .uint(UInt64(m.stageIndex))), ("cluster", .uint(UInt64(m.cluster))),
                ("direct", .bool(m.direct)), ("rng_state", .uint(m.rngState)), ("remaining", .uint(UInt64(m.remaining))),
                ("token_index", .uint(UInt64(m.tokenIndex))), ("requester", .string(m.requester)),
            ])
        case .token(let m):
            return .object([
                ("request_id", .string(m.requestId)), ("token", .uint(UInt64(m.token))), ("index", .uint(UInt64(m.index))),
                ("done", .bool(m.done)), ("text", .string(m.text)), ("plan", .string(m.plan)),
                ("stage_seconds", .array(m.stageSeconds.map(JSONValue.double))),
                ("rng_state", .uint(m.rngState)), ("expected_s", .double(m.expectedS)), ("plan_summary", .string(m.planSummary)),
            ])
        case .error(let m):
            return .object([("request_id", .string(m.requestId)), ("code", .string(protoName(m.code))),
                            ("message", .string(m.message)), ("node_id", .string(m.nodeId))])
        case .probe(let m):
            return .object([("id", .uint(m.id)), ("sent_us", .uint(m.sentUs)), ("size", .uint(UInt64(m.size))),
                            ("echo", .bool(m.echo)), ("padding", .int(Int64(m.padding.count)))])
        case .secAggKeys(let m):
            return .object([("round", .uint(m.round)), ("cluster", .uint(UInt64(m.cluster))), ("cipher_public", .int(Int64(m.cipherPublic.count))),
                            ("mask_public", .int(Int64(m.maskPublic.count))), ("samples", .uint(m.samples))])
        case .secAggRoster(let m):
            return .object([
                ("round", .uint(m.round)), ("group", .uint(UInt64(m.group))), ("index", .uint(UInt64(m.index))),
                ("threshold", .uint(UInt64(m.threshold))),
                ("neighbours", .array(m.neighbours.map { .object([("node_id", .string($0.nodeId)), ("index", .uint(UInt64($0.index)))]) })),
                ("weight", .double(m.weight)), ("step", .double(m.step)), ("bound", .double(m.bound)), ("length", .uint(UInt64(m.length))),
            ])
        case .secAggShares(let m):
            return .object([("round", .uint(m.round)), ("group", .uint(UInt64(m.group))),
                            ("shares", .array(m.shares.map { .object([("peer", .string($0.peer)), ("ciphertext", .int(Int64($0.ciphertext.count)))]) }))])
        case .secAggUnmask(let m):
            return .object([("round", .uint(m.round)), ("group", .uint(UInt64(m.group))),
                            ("survivors", .array(m.survivors.map(JSONValue.string))), ("dropped", .array(m.dropped.map(JSONValue.string)))])
        case .secAggReveal(let m):
            return .object([("round", .uint(m.round)), ("group", .uint(UInt64(m.group))),
                            ("shares", .array(m.shares.map { .object([("owner", .string($0.owner)), ("self_mask", .bool($0.selfMask)),
                                                                      ("x", .uint(UInt64($0.x)))]) }))])
        }
    }
}

extension Telemetry {
    /// The report under its oneof name: `{"load": {...}}`.
    public var json: JSONValue {
        switch self {
        case .load(let r):
            return .object([("load", .object([("load", .double(r.load)), ("flops", .double(r.flops)),
                                              ("queue", .uint(UInt64(r.queue)))]))])
        case .channel(let r):
            return .object([("channel", .object([("link", .string(r.link)), ("rate_bps", .double(r.rateBps)),
                                                 ("snr_db", .double(r.snrDb)), ("rtt_s", .double(r.rttS))]))])
        case .metric(let r):
            let labels = r.labels.keys.sorted().map { ($0, JSONValue.string(r.labels[$0] ?? "")) }
            return .object([("metric", .object([("name", .string(r.name)), ("value", .double(r.value)),
                                                ("labels", .object(labels))]))])
        case .event(let r):
            return .object([("event", .object([("severity", .string(protoName(r.severity))), ("kind", .string(r.kind)),
                                               ("text", .string(r.text))]))])
        }
    }
}

extension Tensor {
    /// name, shape, dtype and payload size; `indices` (count) when sparse, `scale` when int8. Never the data.
    public var summaryJSON: JSONValue {
        var pairs: [(String, JSONValue)] = [
            ("name", .string(name)), ("shape", .array(shape.map { .int(Int64($0)) })),
            ("dtype", .string(protoName(dtype))), ("bytes", .int(Int64(bytes.count))),
        ]
        if !indices.isEmpty { pairs.append(("indices", .int(Int64(indices.count)))) }
        if dtype == .int8 { pairs.append(("scale", .float(scale))) }
        return .object(pairs)
    }
}

// Proto enum value names (proto/fi.proto), indexed by raw value.
private func name(_ raw: UInt32, _ names: [String], prefix: String) -> String {
    raw < names.count ? names[Int(raw)] : "\(prefix)_\(raw)"
}

public func protoName(_ v: Role) -> String {
    name(v.rawValue, ["ROLE_UNSPECIFIED", "ROLE_DEVICE", "ROLE_EDGE_AGGREGATOR", "ROLE_CLOUD_AGGREGATOR",
                      "ROLE_EDGE_SERVER", "ROLE_CLOUD_SERVER", "ROLE_ROUTER"], prefix: "ROLE")
}

public func protoName(_ v: Paradigm) -> String {
    name(v.rawValue, ["PARADIGM_UNSPECIFIED", "PARADIGM_FEDAVG", "PARADIGM_CLUSTERED", "PARADIGM_HIERARCHICAL",
                      "PARADIGM_ASYNC"], prefix: "PARADIGM")
}

public func protoName(_ v: Tier) -> String {
    name(v.rawValue, ["TIER_UNSPECIFIED", "TIER_DEVICE", "TIER_EDGE", "TIER_CLOUD"], prefix: "TIER")
}

public func protoName(_ v: DType) -> String {
    name(v.rawValue, ["DTYPE_UNSPECIFIED", "DTYPE_F32", "DTYPE_F16", "DTYPE_INT8"], prefix: "DTYPE")
}

public func protoName(_ v: Severity) -> String {
    name(v.rawValue, ["SEVERITY_UNSPECIFIED", "SEVERITY_DEBUG", "SEVERITY_INFO", "SEVERITY_WARN", "SEVERITY_ERROR"],
         prefix: "SEVERITY")
}

public func protoName(_ v: ErrorCode) -> String {
    if v == .overloaded { return "ERROR_OVERLOADED" }
    return name(v.rawValue, ["ERROR_UNSPECIFIED", "ERROR_UNKNOWN_DEVICE", "ERROR_NO_ROUTE", "ERROR_PROMPT_TOO_LONG",
                      "ERROR_BAD_REQUEST", "ERROR_NODE_FAILED", "ERROR_INTERNAL"], prefix: "ERROR")
}
