import CMessages
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The wire protocol version this build speaks (proto/fi.proto `PROTOCOL_VERSION`). Decoders reject others.
public let protocolVersion: UInt32 = 1

/// Every message on the bus: a header plus one body (proto `Envelope`).
public struct Envelope: Sendable, Equatable {
    public var version: UInt32
    public var sender: String
    /// Per-sender sequence number; gaps tell a subscriber it missed updates.
    public var seq: UInt64
    public var timestampUs: UInt64
    /// `seq` of the request this message answers; 0 = not a reply.
    public var replyTo: UInt64
    public var body: Body

    public init(version: UInt32 = protocolVersion, sender: String, seq: UInt64 = 0, timestampUs: UInt64 = Envelope.nowMicroseconds(),
                replyTo: UInt64 = 0, body: Body) {
        self.version = version; self.sender = sender; self.seq = seq; self.timestampUs = timestampUs
        self.replyTo = replyTo; self.body = body
    }

    /// Wall-clock time in microseconds since 1970, for `timestampUs`.
    public static func nowMicroseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000
    }
}

/// The oneof `Envelope.body`.
public enum Body: Sendable, Equatable {
    case register(Register)
    case heartbeat(Heartbeat)
    case leave(Leave)
    case assignment(Assignment)
    case clusterMap(ClusterMap)
    case snapshotRequest(SnapshotRequest)
    case round(RoundAnnouncement)
    case model(ModelBroadcast)
    case modelRequest(ModelRequest)
    case update(UpdateUpload)
    case ack(UpdateAck)
    case evalRequest(EvalRequest)
    case evalResult(EvalResult)
    case telemetry(Telemetry)
    case inferRequest(InferenceRequest)
    case activation(StageActivation)
    case token(TokenResult)
    case error(InferenceError)
    case probe(Probe)
    case secAggKeys(SecAggKeys)
    case secAggRoster(SecAggRoster)
    case secAggShares(SecAggShares)
    case secAggUnmask(SecAggUnmask)
    case secAggReveal(SecAggReveal)

    /// The proto field name of this case, for logs.
    public var name: String {
        switch self {
        case .register: "register"
        case .heartbeat: "heartbeat"
        case .leave: "leave"
        case .assignment: "assignment"
        case .clusterMap: "cluster_map"
        case .snapshotRequest: "snapshot_request"
        case .round: "round"
        case .model: "model"
        case .modelRequest: "model_request"
        case .update: "update"
        case .ack: "ack"
        case .evalRequest: "eval_request"
        case .evalResult: "eval_result"
        case .telemetry: "telemetry"
        case .inferRequest: "infer_request"
        case .activation: "activation"
        case .token: "token"
        case .error: "error"
        case .probe: "probe"
        case .secAggKeys: "secagg_keys"
        case .secAggRoster: "secagg_roster"
        case .secAggShares: "secagg_shares"
        case .secAggUnmask: "secagg_unmask"
        case .secAggReveal: "secagg_reveal"
        }
    }
}

extension Envelope {
    /// One protobuf frame with every tensor inline.
    public func encode() -> [UInt8] {
        pack(Arena())
    }

    /// Frame 0 is the protobuf header; each tensor with at least `externalThreshold` payload bytes travels
    /// as its own raw little-endian frame (its `frame` field says which). The frames share the tensors'
    /// storage, so nothing large is copied here.
    public func encodeFrames(externalThreshold: Int = 16 << 10) -> [[UInt8]] {
        let arena = Arena(externalThreshold: max(1, externalThreshold))
        let header = pack(arena)
        return [header] + arena.frames
    }

    private func pack(_ arena: Arena) -> [UInt8] {
        let env = c(arena)
        let size = fi__v1__envelope__get_packed_size(env)
        guard size > 0 else { return [] }
        return [UInt8](unsafeUninitializedCapacity: size) { buf, count in
            count = fi__v1__envelope__pack(env, buf.baseAddress!)
        }
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__Envelope> {
        let p: UnsafeMutablePointer<Fi__V1__Envelope> = arena.message(fi__v1__envelope__init)
        p.pointee.version = version
        p.pointee.sender = arena.string(sender)
        p.pointee.seq = seq
        p.pointee.timestamp_us = timestampUs
        p.pointee.reply_to = replyTo
        switch body {
        case .register(let m): p.pointee.body_case = FI__V1__ENVELOPE__BODY_REGISTER; p.pointee.register_ = m.c(arena)
        case .heartbeat(let m): p.pointee.body_case = FI__V1__ENVELOPE__BODY_HEARTBEAT; p.pointee.heartbeat = m.c(arena)
        case .leave(let m): p.pointee.body_case = FI__V1__ENVELOPE__BODY_LEAVE; p.pointee.leave = m.c(arena)
        case .assignment(let m): p.pointee.body_case = FI__V1__ENVELOPE__BODY_ASSIGNMENT; p.pointee.assignment = m.c(arena)
        case .clusterMap(let m): p.pointee.body_case = FI__V1__ENVELOPE__BODY_CLUSTER_MAP; p.pointee.cluster_map = m.c(arena)
        case .snapshotRequest(let m):
            p.pointee.body_case = FI__V1__ENVELOPE__BODY_SNAPSHOT_REQUEST; p.pointee.snapshot_request = m.c(arena)
        case .round(let m): p.pointee.body_case = FI__V1__ENVELOPE__BODY_ROUND; p.pointee.round = m.c(arena)
        case .model(let m): p.pointee.body_case = FI__V1__ENVELOPE__BODY_MODEL; p.pointee.model = m.c(arena)
        case .modelRequest(let m): p.pointee.body_case = FI__V1__ENVELOPE__BODY_MODEL_REQUEST; p.pointee.model_request = m.c(arena)
        case .update(let m): p.pointee.body_case = FI__V1__ENVELOPE__BODY_UPDATE; p.pointee.update = m.c(arena)
        case .ack(let m): p.pointee.body_case = FI__V1__ENVELOPE__BODY_ACK; p.pointee.ack = m.c(arena)
        case .evalRequest(let m): p.pointee.body_case = FI__V1__ENVELOPE__BODY_EVAL_REQUEST; p.pointee.eval_request = m.c(arena)
        case .evalResult(let m): p.pointee.body_case = FI__V1__ENVELOPE__BODY_EVAL_RESULT; p.pointee.eval_result = m.c(arena)
        case .telemetry(let m): p.pointee.body_case = FI__V1__ENVELOPE__BODY_TELEMETRY; p.pointee.telemetry = m.c(arena)
        case .inferRequest(let m): p.pointee.body_case = FI__V1__ENVELOPE__BODY_INFER_REQUEST; p.pointee.infer_request = m.c(arena)
        case .activation(let m): p.pointee.body_case = FI__V1__ENVELOPE__BODY_ACTIVATION; p.pointee.activation = m.c(arena)
        case .token(let m): p.pointee.body_case = FI__V1__ENVELOPE__BODY_TOKEN; p.pointee.token = m.c(arena)
        case .error(let m): p.pointee.body_case = FI__V1__ENVELOPE__BODY_ERROR; p.pointee.error = m.c(arena)
        case .probe(let m): p.pointee.body_case = FI__V1__ENVELOPE__BODY_PROBE; p.pointee.probe = m.c(arena)
        case .secAggKeys(let m): p.pointee.body_case = FI__V1__ENVELOPE__BODY_SECAGG_KEYS; p.pointee.secagg_keys = m.c(arena)
        case .secAggRoster(let m): p.pointee.body_case = FI__V1__ENVELOPE__BODY_SECAGG_ROSTER; p.pointee.secagg_roster = m.c(arena)
        case .secAggShares(let m): p.pointee.body_case = FI__V1__ENVELOPE__BODY_SECAGG_SHARES; p.pointee.secagg_shares = m.c(arena)
        case .secAggUnmask(let m): p.pointee.body_case = FI__V1__ENVELOPE__BODY_SECAGG_UNMASK; p.pointee.secagg_unmask = m.c(arena)
        case .secAggReveal(let m): p.pointee.body_case = FI__V1__ENVELOPE__BODY_SECAGG_REVEAL; p.pointee.secagg_reveal = m.c(arena)
        }
        return p
    }
}
