import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A read-only memory map of a whole file. Pages are read from disk when first touched, so a process that uses
/// a few tensors of a large checkpoint holds only those pages.
final class MappedFile: @unchecked Sendable {  // immutable after init
    let path: String
    let base: UnsafeRawPointer
    let count: Int

    init(_ path: String) throws(EngineError) {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .io(file: path, detail: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .io(file: path, detail: String(cString: strerror(errno))) }
        count = Int(st.st_size)
        if count == 0 {
            base = UnsafeRawPointer(UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 16))
            return
        }
        guard let p = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw .io(file: path, detail: "cannot map: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p)
    }

    deinit {
        if count == 0 { UnsafeMutableRawPointer(mutating: base).deallocate() } else { munmap(UnsafeMutableRawPointer(mutating: base), count) }
    }
}

/// safetensors files: 8-byte little-endian header length, JSON header
/// {name: {dtype, shape, data_offsets: [begin, end]}}, then the raw little-endian data.
public enum SafeTensors {
    /// One tensor's header entry; `offset` is from the start of the buffer.
    struct Entry {
        let name: String
        let dtype: String
        let shape: [Int]
        let offset: Int
        let byteCount: Int
        var count: Int { shape.reduce(1, *) }
    }

    static let widths: [String: Int] = ["F32": 4, "F16": 2, "BF16": 2, "I8": 1, "U8": 1]

    /// Parses and checks the header of a safetensors buffer of `count` bytes: every entry's dtype, shape and
    /// byte range (inside the data section, matching the shape).
    static func entries(_ base: UnsafeRawPointer, count: Int, file: String) throws(EngineError) -> [String: Entry] {
        guard count >= 8 else { throw .truncatedFile(file: file, detail: "\(count) bytes, the 8-byte header length is missing") }
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(base.load(fromByteOffset: i, as: UInt8.self)) << (8 * UInt64(i)) }
        guard n <= UInt64(count - 8) else {
            throw .truncatedFile(file: file, detail: "header claims \(n) bytes, only \(count - 8) follow")
        }
        let headerEnd = 8 + Int(n)
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: Data(bytes: base + 8, count: Int(n))) } catch {
            throw .badHeader(file: file, detail: "header is not valid JSON")
        }
        guard let header = json as? [String: Any] else { throw .badHeader(file: file, detail: "header is not a JSON object") }
        let dataCount = count - headerEnd
        var out: [String: Entry] = [:]
        for (name, value) in header where name != "__metadata__" {
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                  let shape = (entry["shape"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                  let offs = (entry["data_offsets"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }), offs.count == 2
            else { throw .badHeader(file: file, detail: "entry '\(name)' needs dtype, shape and data_offsets [begin, end]") }
            guard shape.allSatisfy({ $0 >= 0 && $0 < 1 << 40 }) else {
                throw .badHeader(file: file, detail: "tensor '\(name)' has a negative or absurd dimension \(shape)")
            }
            guard let width = widths[dtype] else { throw .unsupportedDType(name: name, dtype: dtype) }
            let (elements, overflow) = shape.reduce((1, false)) { acc, d in
                let m = acc.0.multipliedReportingOverflow(by: d)
                return (m.partialValue, acc.1 || m.overflow)
            }
            guard !overflow, offs[0] >= 0, offs[1] >= offs[0], offs[1] - offs[0] == elements * width else {
                throw .badHeader(file: file, detail: "tensor '\(name)' offsets \(offs) do not match shape \(shape) of \(dtype)")
            }
            guard offs[1] <= dataCount else {
                throw .truncatedFile(file: file, detail: "tensor '\(name)' ends at byte \(offs[1]) of a \(dataCount)-byte data section")
            }
            out[name] = Entry(name: name, dtype: dtype, shape: shape, offset: headerEnd + offs[0], byteCount: offs[1] - offs[0])
        }
        return out
    }

    /// Widens a float tensor (F32, F16, BF16) at `src` into `dst`.
    static func widen(_ e: Entry, from base: UnsafeRawPointer, into dst: UnsafeMutablePointer<Float>) throws(EngineError) {
        let src = base + e.offset
        switch e.dtype {
        case "F32":
            for i in 0..<e.count { dst[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        case "F16":
            for i in 0..<e.count { dst[i] = Float(Float16(bitPattern: UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))) }
        case "BF16":
            for i in 0..<e.count { dst[i] = Float(bitPattern: UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16) }
        default:
            throw .unsupportedDType(name: e.name, dtype: e.dtype)
        }
    }

    /// Reads every float tensor (F32, F16, BF16) as Float, keyed by name.
    public static func read(_ url: URL) throws(EngineError) -> [String: NamedTensor] {
        let file = try MappedFile(url.path)
        return try decode(file.base, count: file.count, file: url.path)
    }

    public static func decode(_ data: Data, file: String) throws(EngineError) -> [String: NamedTensor] {
        let copy = UnsafeMutableRawPointer.allocate(byteCount: max(data.count, 1), alignment: 16)
        defer { copy.deallocate() }
        data.copyBytes(to: copy.assumingMemoryBound(to: UInt8.self), count: data.count)
        return try decode(UnsafeRawPointer(copy), count: data.count, file: file)
    }

    static func decode(_ base: UnsafeRawPointer, count: Int, file: String) throws(EngineError) -> [String: NamedTensor] {
        var out: [String: NamedTensor] = [:]
        for (name, e) in try entries(base, count: count, file: file) {
            let values = Arena(count: e.count)
            try widen(e, from: base, into: values.base)
            out[name] = NamedTensor(name: name, shape: e.shape, values: Array(values.buffer))
        }
        return out
    }

    /// Encodes tensors as F32 in the given order.
    public static func encode(_ tensors: [NamedTensor], metadata: [String: String] = [:]) -> Data {
        var out = Data()
        let header = headerBytes(tensors.map { ($0.name, "F32", $0.shape, 4 * $0.values.count) }, metadata: metadata)
        out.append(contentsOf: header)
        for t in tensors {
            t.values.withUnsafeBufferPointer { out.append(contentsOf: UnsafeRawBufferPointer($0)) }  // host is little-endian
        }
        return out
    }

    public static func write(_ tensors: [NamedTensor], to url: URL, metadata: [String: String] = [:]) throws(EngineError) {
        do { try encode(tensors, metadata: metadata).write(to: url) } catch {
            throw .io(file: url.path, detail: "\(error.localizedDescription)")
        }
    }

    /// The 8-byte length and the JSON header (padded with spaces so data starts 8-byte aligned) for tensors laid
    /// out back to back in the given order.
    static func headerBytes(_ tensors: [(name: String, dtype: String, shape: [Int], bytes: Int)], metadata: [String: String]) -> [UInt8] {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for t in tensors {
            header[t.name] = ["dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, offset + t.bytes]] as [String: Any]
            offset += t.bytes
        }
        var json = [UInt8]((try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) ?? Data("{}".utf8))
        while json.count % 8 != 0 { json.append(0x20) }
        var out = [UInt8](repeating: 0, count: 8)
        for i in 0..<8 { out[i] = UInt8(truncatingIfNeeded: UInt64(json.count) >> (8 * UInt64(i))) }
        return out + json
    }
}

/// Writes one safetensors file tensor by tensor, so a checkpoint larger than memory streams to disk.
final class SafeTensorsWriter {
    struct Planned { let name: String; let dtype: String; let shape: [Int]; let bytes: Int }
    let url: URL
    let handle: FileHandle
    private var pending: [Planned]

    init(url: URL, tensors: [Planned], metadata: [String: String]) throws(EngineError) {
        self.url = url
        pending = tensors
        guard FileManager.default.createFile(atPath: url.path, contents: nil), let h = FileHandle(forWritingAtPath: url.path) else {
            throw .io(file: url.path, detail: "cannot create the file")
        }
        handle = h
        try write(SafeTensors.headerBytes(tensors.map { ($0.name, $0.dtype, $0.shape, $0.bytes) }, metadata: metadata))
    }

    /// Appends the next planned tensor's bytes (in plan order).
    func append(_ name: String, _ bytes: UnsafeRawBufferPointer) throws(EngineError) {
        guard let next = pending.first, next.name == name, next.bytes == bytes.count else {
            throw .io(file: url.path, detail: "tensor '\(name)' (\(bytes.count) bytes) written out of plan order")
        }
        pending.removeFirst()
        try write(bytes)
    }

    func close() throws(EngineError) {
        guard pending.isEmpty else { throw .io(file: url.path, detail: "\(pending.count) planned tensors were never written") }
        do { try handle.close() } catch { throw .io(file: url.path, detail: "\(error.localizedDescription)") }
    }

    private func write<B: ContiguousBytes>(_ b: B) throws(EngineError) {
        do { try b.withUnsafeBytes { try handle.write(contentsOf: $0) } } catch {
            throw .io(file: url.path, detail: "write failed: \(error.localizedDescription)")
        }
    }
}
