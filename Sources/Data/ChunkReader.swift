import Foundation

/// Reads chunk texts of a prepared partition, keeping each chunk file (memory-mapped) after its first use: a device
/// host loads its many devices' data lazily, task by task, without reading a domain's file again each time.
/// Thread-safe.
public final class ChunkReader: @unchecked Sendable {  // safe: `files` only under `lock`
    public let manifest: PartitionManifest
    let directory: URL
    let entries: [PartitionManifest.DomainEntry]
    private let lock = NSLock()
    private var files: [String: Foundation.Data] = [:]

    public init(_ manifest: PartitionManifest, directory: URL) {
        self.manifest = manifest
        self.directory = directory
        entries = manifest.domains + (manifest.generalExtra.map { [$0] } ?? [])
    }

    /// The texts of the given chunks, in the given order.
    public func texts(_ ids: [Int]) throws -> [String] {
        try ids.map { id in
            guard let e = entries.first(where: { id >= $0.firstChunk && id < $0.firstChunk + $0.chunkCount }) else {
                throw DataError.malformedManifest(path: directory.path, reason: "chunk \(id) is in no domain")
            }
            let bytes = try file(e)
            let i = id - e.firstChunk
            return String(decoding: bytes[e.offsets[i]..<e.offsets[i + 1]], as: UTF8.self)
        }
    }

    /// A device's training and validation text (chunks joined by a blank line), as `PartitionManifest` gives them.
    public func deviceTexts(_ id: Int) throws -> (train: String, validation: String) {
        let d = try manifest.device(id)
        return (try texts(d.train).joined(separator: "\n\n"), try texts(d.validation).joined(separator: "\n\n"))
    }

    func file(_ e: PartitionManifest.DomainEntry) throws -> Foundation.Data {
        lock.lock(); defer { lock.unlock() }
        if let f = files[e.file] { return f }
        let url = directory.appendingPathComponent(e.file)
        guard let read = try? Foundation.Data(contentsOf: url, options: .alwaysMapped) else {
            throw DataError.unreadableFile(path: url.path, reason: "chunk file missing; re-run `fi data prepare`")
        }
        guard read.count == e.bytes else {
            throw DataError.malformedManifest(path: url.path, reason: "has \(read.count) bytes, manifest says \(e.bytes)")
        }
        files[e.file] = read
        return read
    }
}
