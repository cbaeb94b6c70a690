import Federation
import Foundation

/// The round engine's persistence in `--checkpoint DIR`: `engine.snapshot` (replaced atomically by rename) and
/// `engine-<generation>.journal` (appended before every acknowledgement). A new snapshot starts a new generation,
/// so a crash between writing it and removing the old journal cannot replay entries twice.
final class EngineStore {
    enum StoreError: Error, CustomStringConvertible {
        case unreadable(file: String, reason: String)
        var description: String {
            switch self {
            case let .unreadable(f, r): return "cannot resume from \(f): \(r); move the checkpoint folder away to start over"
            }
        }
    }

    let directory: URL
    private(set) var generation: UInt64 = 0
    private var journal: FileHandle?

    init(directory: URL) { self.directory = directory }

    var snapshotURL: URL { directory.appendingPathComponent("engine.snapshot") }
    func journalURL(_ g: UInt64) -> URL { directory.appendingPathComponent("engine-\(g).journal") }

    /// The newest snapshot and its journal; nil when the folder holds none (a fresh run).
    func load() throws -> (snapshot: EngineSnapshot, journal: [JournalEntry], droppedBytes: Int)? {
        guard let data = FileManager.default.contents(atPath: snapshotURL.path) else { return nil }
        let bytes = [UInt8](data)
        guard bytes.count > 8 else { throw StoreError.unreadable(file: snapshotURL.path, reason: "\(bytes.count) bytes") }
        generation = bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        let snapshot: EngineSnapshot
        do { snapshot = try EngineSnapshot(decoding: Array(bytes[8...])) } catch {
            throw StoreError.unreadable(file: snapshotURL.path, reason: "\(error)")
        }
        let j = FileManager.default.contents(atPath: journalURL(generation).path).map { [UInt8]($0) } ?? []
        let (entries, dropped) = JournalEntry.decodeJournal(j)
        return (snapshot, entries, dropped)
    }

    /// Writes a snapshot as the next generation, then drops the previous journal.
    func save(_ s: EngineSnapshot) throws {
        let fm = FileManager.default
        try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        let next = generation + 1
        var bytes = (0..<8).map { UInt8((next >> (8 * UInt64($0))) & 0xff) }
        bytes += s.encoded()
        let temp = directory.appendingPathComponent(".engine.snapshot.\(getpid()).tmp")
        try Data(bytes).write(to: temp)
        if rename(temp.path, snapshotURL.path) != 0 { throw StoreError.unreadable(file: snapshotURL.path, reason: "rename failed: errno \(errno)") }
        try? journal?.close()
        journal = nil
        try? fm.removeItem(at: journalURL(generation))
        generation = next
    }

    func append(_ e: JournalEntry) throws {
        if journal == nil {
            let url = journalURL(generation)
            if !FileManager.default.fileExists(atPath: url.path) {
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                FileManager.default.createFile(atPath: url.path, contents: nil)
            }
            journal = try FileHandle(forWritingTo: url)
            try journal?.seekToEnd()
        }
        try journal?.write(contentsOf: Data(e.encoded()))
    }

    func close() { try? journal?.close(); journal = nil }
}
