import Foundation

// Checkpoints and journal records as bytes: a JSON header and named little-endian float blobs, with a CRC-32, so a
// torn write (a crash mid-append) is detected and dropped instead of corrupting the state.
//
//   record := magic(4) | u32 json length | json | u32 blob count | { u32 name length | name | u32 floats | f32… } | u32 crc32
//   journal file := { u32 record length | record }…

public enum SnapshotCodingError: Error, Equatable, CustomStringConvertible {
    case truncated(String)
    case badMagic(expected: String)
    case checksum
    case badHeader(String)

    public var description: String {
        switch self {
        case .truncated(let what): return "the checkpoint is truncated (\(what)); it was not written whole"
        case .badMagic(let m): return "not a \(m) record; the file is not a checkpoint of this version"
        case .checksum: return "the checkpoint's checksum does not match: the file is corrupt"
        case .badHeader(let why): return "the checkpoint header does not decode: \(why)"
        }
    }
}

enum BlobRecord {
    static func encode(magic: String, header: Data, blobs: [String: [Float]]) -> [UInt8] {
        var out = [UInt8](magic.utf8)
        out.reserveCapacity(16 + header.count + blobs.values.reduce(0) { $0 + 4 * $1.count + 64 })
        put32(&out, UInt32(header.count))
        out += header
        put32(&out, UInt32(blobs.count))
        for name in blobs.keys.sorted() {
            let v = blobs[name]!
            put32(&out, UInt32(name.utf8.count))
            out += Array(name.utf8)
            put32(&out, UInt32(v.count))
            v.withUnsafeBufferPointer { p in
                p.withMemoryRebound(to: UInt32.self) { w in for x in w { put32(&out, x) } }
            }
        }
        put32(&out, crc32(out))
        return out
    }

    static func decode(_ bytes: [UInt8], magic: String) throws(SnapshotCodingError) -> (header: Data, blobs: [String: [Float]]) {
        guard bytes.count >= 16 else { throw .truncated("\(bytes.count) bytes") }
        guard Array(bytes[0..<4]) == Array(magic.utf8) else { throw .badMagic(expected: magic) }
        let body = bytes.count - 4
        guard read32(bytes, body) == crc32(Array(bytes[0..<body])) else { throw .checksum }
        var at = 4
        func u32() throws(SnapshotCodingError) -> Int {
            guard at + 4 <= body else { throw .truncated("at byte \(at)") }
            defer { at += 4 }
            return Int(read32(bytes, at))
        }
        let hn = try u32()
        guard at + hn <= body else { throw .truncated("header of \(hn) bytes") }
        let header = Data(bytes[at..<(at + hn)])
        at += hn
        let count = try u32()
        var blobs: [String: [Float]] = [:]
        for _ in 0..<count {
            let n = try u32()
            guard at + n <= body else { throw .truncated("blob name") }
            let name = String(decoding: bytes[at..<(at + n)], as: UTF8.self)
            at += n
            let floats = try u32()
            guard floats <= (body - at) / 4 else { throw .truncated("blob \(name) of \(floats) floats") }
            var v = [Float](repeating: 0, count: floats)
            for i in 0..<floats { v[i] = Float(bitPattern: read32(bytes, at + 4 * i)) }
            at += 4 * floats
            blobs[name] = v
        }
        guard at == body else { throw .badHeader("\(body - at) bytes after the last blob") }
        return (header, blobs)
    }

    static func put32(_ out: inout [UInt8], _ v: UInt32) {
        out.append(UInt8(v & 0xff)); out.append(UInt8((v >> 8) & 0xff)); out.append(UInt8((v >> 16) & 0xff)); out.append(UInt8(v >> 24))
    }

    static func read32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }

    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xff)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}

extension EngineSnapshot {
    public func encoded() -> [UInt8] {
        let header = (try? JSONEncoder().encode(meta)) ?? Data()
        return BlobRecord.encode(magic: "FIS1", header: header, blobs: blobs)
    }

    public init(decoding bytes: [UInt8]) throws(SnapshotCodingError) {
        let (header, blobs) = try BlobRecord.decode(bytes, magic: "FIS1")
        do { meta = try JSONDecoder().decode(Meta.self, from: header) } catch { throw .badHeader("\(error)") }
        self.blobs = blobs
    }
}

extension JournalEntry {
    struct Header: Codable {
        var from: String
        var evaluation: Evaluation?
        var sketch: Bool?
        var wire: UInt64?, cluster: Int?, baseWire: UInt64?, samples: Int?, loss: Float?, computeS: Double?, bytes: Int?, clipReport: Float?, epsilon: Double?
    }

    /// One journal record, length-prefixed (append it to the journal file as is).
    public func encoded() -> [UInt8] {
        var h = Header(from: from)
        var blobs: [String: [Float]] = [:]
        switch kind {
        case .evaluation(let e): h.evaluation = e
        case .upload(let u):
            h.sketch = u.kind == .sketch; h.wire = u.wire; h.cluster = u.cluster; h.baseWire = u.baseWire; h.samples = u.samples
            h.loss = u.loss; h.computeS = u.computeS; h.bytes = u.bytes; h.clipReport = u.clipReport; h.epsilon = u.epsilon
            if case .success(let d) = u.delta { blobs["delta"] = d }
        }
        let record = BlobRecord.encode(magic: "FIJ1", header: (try? JSONEncoder().encode(h)) ?? Data(), blobs: blobs)
        var out: [UInt8] = []
        BlobRecord.put32(&out, UInt32(record.count))
        return out + record
    }

    /// Every whole record of a journal file, in order; a torn or corrupt tail (a crash mid-append) ends the journal.
    public static func decodeJournal(_ bytes: [UInt8]) -> (entries: [JournalEntry], droppedBytes: Int) {
        var at = 0
        var out: [JournalEntry] = []
        while at + 4 <= bytes.count {
            let n = Int(BlobRecord.read32(bytes, at))
            guard n <= bytes.count - at - 4, let e = try? JournalEntry(record: Array(bytes[(at + 4)..<(at + 4 + n)])) else { break }
            out.append(e)
            at += 4 + n
        }
        return (out, bytes.count - at)
    }

    init(record: [UInt8]) throws(SnapshotCodingError) {
        let (header, blobs) = try BlobRecord.decode(record, magic: "FIJ1")
        let h: Header
        do { h = try JSONDecoder().decode(Header.self, from: header) } catch { throw .badHeader("\(error)") }
        if let e = h.evaluation { self.init(from: h.from, evaluation: e); return }
        guard let wire = h.wire, let delta = blobs["delta"] else { throw .badHeader("an upload record without its wire or delta") }
        let u = Upload(kind: h.sketch == true ? .sketch : .update, wire: wire, cluster: h.cluster ?? 0, baseWire: h.baseWire ?? wire,
                       samples: h.samples ?? 0, loss: h.loss ?? .nan, delta: .success(delta), computeS: h.computeS ?? 0, bytes: h.bytes ?? 0,
                       clipReport: h.clipReport, epsilon: h.epsilon)
        self.init(from: h.from, upload: u, delta: delta)
    }
}
