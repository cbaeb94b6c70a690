import CMessages

/// What tensor decoders need besides the C struct: the other frames and the limits.
struct DecodeContext {
    let frames: [[UInt8]]
    let limits: DecodeLimits

    func frame(_ index: Int) throws -> [UInt8] {
        guard index >= 1, index < frames.count else { throw MessageError.missingFrame(index: index) }
        return frames[index]  // shares storage, no copy
    }
}

extension Envelope {
    /// Decodes one protobuf frame (tensors inline). Throws `MessageError`; failures are counted in `decodeErrors`.
    public static func decode(_ bytes: [UInt8], limits: DecodeLimits = .default) throws -> Envelope {
        try decode(frames: [bytes], limits: limits)
    }

    /// Decodes a multipart message: frame 0 is the Envelope, tensors with `frame` = N take frame N as payload.
    public static func decode(frames: [[UInt8]], limits: DecodeLimits = .default) throws -> Envelope {
        do {
            return try decodeUncounted(frames: frames, limits: limits)
        } catch let error as MessageError {
            decodeErrors.record(error)
            throw error
        }
    }

    private static func decodeUncounted(frames: [[UInt8]], limits: DecodeLimits) throws -> Envelope {
        guard let header = frames.first, !header.isEmpty else { throw MessageError.truncated }
        guard frames.count <= limits.maxFrames else { throw MessageError.tooManyFrames(count: frames.count, cap: limits.maxFrames) }
        var total = 0
        for f in frames {
            total += f.count  // cannot overflow: each count is bounded by memory
            guard total <= limits.maxBytes else { throw MessageError.overCap(size: frames.reduce(0) { $0 + $1.count }, cap: limits.maxBytes) }
        }
        // The size check above runs before protobuf-c allocates anything.
        let unpacked = header.withUnsafeBufferPointer { buf in
            fi__v1__envelope__unpack(nil, buf.count, buf.baseAddress)
        }
        guard let env = unpacked else {
            throw wireIsTruncated(header) ? MessageError.truncated : MessageError.invalidProtobuf
        }
        defer { fi__v1__envelope__free_unpacked(env, nil) }
        var ctx = DecodeContext(frames: frames, limits: limits)
        return try Envelope(c: env, &ctx)
    }

    init(c: UnsafeMutablePointer<Fi__V1__Envelope>, _ ctx: inout DecodeContext) throws {
        let m = c.pointee
        guard m.version == protocolVersion else { throw MessageError.unsupportedVersion(m.version) }
        func need<T>(_ p: UnsafeMutablePointer<T>?) throws -> UnsafeMutablePointer<T> {
            guard let p else { throw MessageError.missingBody }
            return p
        }
        let body: Body
        switch m.body_case {
        case FI__V1__ENVELOPE__BODY_REGISTER: body = .register(try Register(c: need(m.register_)))
        case FI__V1__ENVELOPE__BODY_HEARTBEAT: body = .heartbeat(try Heartbeat(c: need(m.heartbeat)))
        case FI__V1__ENVELOPE__BODY_LEAVE: body = .leave(Leave(c: try need(m.leave)))
        case FI__V1__ENVELOPE__BODY_ASSIGNMENT: body = .assignment(Assignment(c: try need(m.assignment)))
        case FI__V1__ENVELOPE__BODY_CLUSTER_MAP: body = .clusterMap(try ClusterMap(c: need(m.cluster_map)))
        case FI__V1__ENVELOPE__BODY_SNAPSHOT_REQUEST: body = .snapshotRequest(SnapshotRequest(c: try need(m.snapshot_request)))
        case FI__V1__ENVELOPE__BODY_ROUND: body = .round(try RoundAnnouncement(c: need(m.round)))
        case FI__V1__ENVELOPE__BODY_MODEL: body = .model(try ModelBroadcast(c: need(m.model), &ctx))
        case FI__V1__ENVELOPE__BODY_MODEL_REQUEST: body = .modelRequest(try ModelRequest(c: need(m.model_request)))
        case FI__V1__ENVELOPE__BODY_UPDATE: body = .update(try UpdateUpload(c: need(m.update), &ctx))
        case FI__V1__ENVELOPE__BODY_ACK: body = .ack(UpdateAck(c: try need(m.ack)))
        case FI__V1__ENVELOPE__BODY_EVAL_REQUEST: body = .evalRequest(EvalRequest(c: try need(m.eval_request)))
        case FI__V1__ENVELOPE__BODY_EVAL_RESULT: body = .evalResult(EvalResult(c: try need(m.eval_result)))
        case FI__V1__ENVELOPE__BODY_TELEMETRY: body = .telemetry(try Telemetry(c: need(m.telemetry)))
        case FI__V1__ENVELOPE__BODY_INFER_REQUEST: body = .inferRequest(InferenceRequest(c: try need(m.infer_request)))
        case FI__V1__ENVELOPE__BODY_ACTIVATION: body = .activation(try StageActivation(c: need(m.activation), &ctx))
        case FI__V1__ENVELOPE__BODY_TOKEN: body = .token(TokenResult(c: try need(m.token)))
        case FI__V1__ENVELOPE__BODY_ERROR: body = .error(try InferenceError(c: need(m.error)))
        case FI__V1__ENVELOPE__BODY_PROBE: body = .probe(Probe(c: try need(m.probe)))
        case FI__V1__ENVELOPE__BODY_SECAGG_KEYS: body = .secAggKeys(try SecAggKeys(c: need(m.secagg_keys)))
        case FI__V1__ENVELOPE__BODY_SECAGG_ROSTER: body = .secAggRoster(try SecAggRoster(c: need(m.secagg_roster)))
        case FI__V1__ENVELOPE__BODY_SECAGG_SHARES: body = .secAggShares(try SecAggShares(c: need(m.secagg_shares)))
        case FI__V1__ENVELOPE__BODY_SECAGG_UNMASK: body = .secAggUnmask(try SecAggUnmask(c: need(m.secagg_unmask)))
        case FI__V1__ENVELOPE__BODY_SECAGG_REVEAL: body = .secAggReveal(try SecAggReveal(c: need(m.secagg_reveal)))
        default: throw MessageError.missingBody
        }
        self.init(version: m.version, sender: readString(m.sender), seq: m.seq, timestampUs: m.timestamp_us,
                  replyTo: m.reply_to, body: body)
    }
}

/// True when a top-level field of `bytes` runs past the end: tells `.truncated` from `.invalidProtobuf`
/// after protobuf-c has rejected the input.
func wireIsTruncated(_ bytes: [UInt8]) -> Bool {
    var i = 0
    func varint() -> UInt64? {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while i < bytes.count {
            let b = bytes[i]; i += 1
            if shift < 64 { v |= UInt64(b & 0x7f) << shift }
            if b & 0x80 == 0 { return v }
            shift += 7
            if shift > 70 { return nil }
        }
        return nil
    }
    while i < bytes.count {
        let start = i
        guard let tag = varint() else { return i >= bytes.count && start < bytes.count }
        switch tag & 7 {
        case 0: if varint() == nil { return i >= bytes.count }
        case 1: i += 8
        case 2:
            guard let len = varint() else { return i >= bytes.count }
            if len > UInt64(bytes.count - i) { return true }
            i += Int(len)
        case 5: i += 4
        default: return false
        }
        if i > bytes.count { return true }
    }
    return false
}

/// Messages between services are bounded: adapters up to 64 MB.
public let serviceDecodeLimits = DecodeLimits(maxBytes: 64 << 20, maxFrames: 4096)
