import Foundation

/// Why a frame or frame set could not be decoded. Every decoder failure is one of these, never a crash.
public enum MessageError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input ends inside a field (or is empty).
    case truncated
    /// protobuf-c rejected the bytes as not a valid `fi.v1.Envelope`.
    case invalidProtobuf
    /// The envelope's `version` is not `Messages.protocolVersion`.
    case unsupportedVersion(UInt32)
    /// An enum field holds a value this build does not know.
    case unknownEnum(field: String, value: UInt32)
    /// A tensor's payload size does not match its shape and dtype.
    case shapeMismatch(name: String, expected: Int, actual: Int)
    /// A sparse tensor names an element outside its shape.
    case indexOutOfRange(name: String, index: UInt32, count: Int)
    /// The message (all frames, or a tensor's declared size) exceeds `DecodeLimits.maxBytes`.
    case overCap(size: Int, cap: Int)
    /// More frames than `DecodeLimits.maxFrames`.
    case tooManyFrames(count: Int, cap: Int)
    /// The envelope has no body (oneof not set).
    case missingBody
    /// A required sub-message or oneof is absent.
    case missingField(String)
    /// A tensor refers to multipart frame `index`, which was not received.
    case missingFrame(index: Int)
    /// A field's value violates the contract in proto/fi.proto.
    case invalidField(field: String, reason: String)

    /// Short stable name, used as the key of the decode-error counter.
    public var kind: String {
        switch self {
        case .truncated: "truncated"
        case .invalidProtobuf: "invalidProtobuf"
        case .unsupportedVersion: "unsupportedVersion"
        case .unknownEnum: "unknownEnum"
        case .shapeMismatch: "shapeMismatch"
        case .indexOutOfRange: "indexOutOfRange"
        case .overCap: "overCap"
        case .tooManyFrames: "tooManyFrames"
        case .missingBody: "missingBody"
        case .missingField: "missingField"
        case .missingFrame: "missingFrame"
        case .invalidField: "invalidField"
        }
    }

    public var description: String {
        switch self {
        case .truncated:
            "message truncated: the bytes end inside a field; check the sender and the frame boundaries"
        case .invalidProtobuf:
            "not a valid fi.v1.Envelope protobuf; is the sender speaking proto/fi.proto?"
        case .unsupportedVersion(let v):
            "protocol version \(v) is not supported (this build speaks \(protocolVersion)); upgrade the older side"
        case .unknownEnum(let field, let value):
            "\(field) has unknown enum value \(value); the sender uses a newer proto/fi.proto"
        case .shapeMismatch(let name, let expected, let actual):
            "tensor '\(name)': shape and dtype need \(expected) payload bytes but \(actual) arrived"
        case .indexOutOfRange(let name, let index, let count):
            "sparse tensor '\(name)': index \(index) is outside its \(count) elements"
        case .overCap(let size, let cap):
            "message of \(size) bytes exceeds the cap of \(cap) bytes; raise DecodeLimits.maxBytes if this is expected"
        case .tooManyFrames(let count, let cap):
            "\(count) frames exceed the cap of \(cap); raise DecodeLimits.maxFrames if this is expected"
        case .missingBody:
            "envelope has no body; every message must set one of Envelope.body"
        case .missingField(let f):
            "required field \(f) is missing"
        case .missingFrame(let index):
            "a tensor refers to multipart frame \(index), which is not in the message; send tensor frames with the header"
        case .invalidField(let field, let reason):
            "\(field) is invalid: \(reason)"
        }
    }
}

/// Bounds a decoder enforces before and while decoding.
public struct DecodeLimits: Sendable, Equatable {
    /// Cap on the total bytes of all frames, and on any tensor's declared payload size.
    public var maxBytes: Int
    /// Cap on the number of multipart frames.
    public var maxFrames: Int

    public init(maxBytes: Int = 256 << 20, maxFrames: Int = 1024) {
        self.maxBytes = maxBytes
        self.maxFrames = maxFrames
    }

    public static let `default` = DecodeLimits()
}

/// Counts decode failures by kind, process-wide (telemetry reports it; tests read it).
public final class DecodeErrorCounter: @unchecked Sendable {  // safe: all state behind `lock`
    private let lock = NSLock()
    private var counts: [String: Int] = [:]

    public init() {}

    public func record(_ error: MessageError) {
        lock.lock(); defer { lock.unlock() }
        counts[error.kind, default: 0] += 1
    }

    public var total: Int {
        lock.lock(); defer { lock.unlock() }
        return counts.values.reduce(0, +)
    }

    public func count(_ kind: String) -> Int {
        lock.lock(); defer { lock.unlock() }
        return counts[kind] ?? 0
    }

    public func snapshot() -> [String: Int] {
        lock.lock(); defer { lock.unlock() }
        return counts
    }
}

/// Every failed `Envelope.decode` is counted here.
public let decodeErrors = DecodeErrorCounter()
