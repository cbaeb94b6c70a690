import CMessages
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Owns every C allocation made while building a protobuf-c message tree for packing,
/// so one `deinit` frees the whole tree. Also collects tensors sent as external frames.
final class Arena {
    private var blocks: [UnsafeMutableRawPointer] = []
    /// Tensors with at least this many payload bytes travel as separate frames; nil keeps all inline.
    let externalThreshold: Int?
    /// Frames 1... (frame 0 is the protobuf header).
    var frames: [[UInt8]] = []

    init(externalThreshold: Int? = nil) { self.externalThreshold = externalThreshold }

    deinit { for b in blocks { free(b) } }

    private func raw(_ bytes: Int) -> UnsafeMutableRawPointer {
        // calloc(…, 0) may return nil; always ask for at least one byte.
        guard let p = calloc(1, max(bytes, 1)) else { fatalError("out of memory") }
        blocks.append(p)
        return p
    }

    /// A zeroed C message, initialised by its protoc-c `__init` function.
    func message<T>(_ initialise: (UnsafeMutablePointer<T>) -> Void) -> UnsafeMutablePointer<T> {
        let p = raw(MemoryLayout<T>.stride).bindMemory(to: T.self, capacity: 1)
        initialise(p)
        return p
    }

    func string(_ s: String) -> UnsafeMutablePointer<CChar> {
        let utf8 = Array(s.utf8)
        let p = raw(utf8.count + 1).bindMemory(to: CChar.self, capacity: utf8.count + 1)
        utf8.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { memcpy(p, base, utf8.count) }
        }
        p[utf8.count] = 0
        return p
    }

    func array<T>(_ xs: [T]) -> UnsafeMutablePointer<T>? {
        guard !xs.isEmpty else { return nil }
        let p = raw(MemoryLayout<T>.stride * xs.count).bindMemory(to: T.self, capacity: xs.count)
        xs.withUnsafeBufferPointer { src in p.update(from: src.baseAddress!, count: xs.count) }
        return p
    }

    func strings(_ xs: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? {
        array(xs.map { Optional(string($0)) })
    }

    func bytes(_ b: [UInt8]) -> ProtobufCBinaryData {
        ProtobufCBinaryData(len: b.count, data: array(b))
    }

    /// A C array of message pointers for a repeated message field.
    func messages<S, T>(_ items: [S], _ build: (S) -> UnsafeMutablePointer<T>) -> UnsafeMutablePointer<UnsafeMutablePointer<T>?>? {
        array(items.map { Optional(build($0)) })
    }
}

// Reading helpers: protobuf-c output is structurally valid, but pointers may be nil for empty fields.

func readString(_ p: UnsafeMutablePointer<CChar>?) -> String {
    guard let p else { return "" }
    return String(cString: p)
}

func readScalars<T>(_ p: UnsafeMutablePointer<T>?, _ n: Int) -> [T] {
    guard let p, n > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: p, count: n))
}

func readStrings(_ p: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ n: Int) -> [String] {
    readScalars(p, n).map(readString)
}

func readBytes(_ b: ProtobufCBinaryData) -> [UInt8] {
    guard let data = b.data, b.len > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: b.len))
}

func readMessages<T, R>(_ p: UnsafeMutablePointer<UnsafeMutablePointer<T>?>?, _ n: Int, field: String,
                        _ convert: (UnsafeMutablePointer<T>) throws -> R) throws -> [R] {
    try readScalars(p, n).map { item in
        guard let item else { throw MessageError.missingField(field) }
        return try convert(item)
    }
}

/// Checks a wire enum value against the Swift enum; proto3 enums are open, so any UInt32 can arrive.
func readEnum<E: RawRepresentable>(_ raw: UInt32, field: String) throws -> E where E.RawValue == UInt32 {
    guard let value = E(rawValue: raw) else { throw MessageError.unknownEnum(field: field, value: raw) }
    return value
}
