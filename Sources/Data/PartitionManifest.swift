import Foundation

/// Who holds what: written once by `fi data prepare`, read by every service, so all agree.
/// The chunk texts live next to it in `chunks/<nn>-<domain>.txt`; a domain's chunk
/// `firstChunk + i` is bytes `offsets[i]..<offsets[i+1]` of its file.
public struct PartitionManifest: Sendable, Codable, Equatable {
    public static let currentFormat = 1
    public static let fileName = "manifest.json"

    public struct DomainEntry: Sendable, Codable, Equatable {
        public var name: String
        /// Path of the chunk file, relative to the manifest's folder.
        public var file: String
        public var firstChunk: Int
        /// `chunkCount + 1` byte offsets into `file`.
        public var offsets: [Int]
        /// The domain's held-out test set.
        public var testChunks: [Int]
        /// The domain's slice of the general (pretraining) corpus.
        public var generalChunks: [Int]
        /// Chunks handed to devices.
        public var poolChunks: [Int]

        public var chunkCount: Int { offsets.count - 1 }
        public var bytes: Int { offsets.last ?? 0 }
    }

    public struct DeviceEntry: Sendable, Codable, Equatable {
        public var id: Int
        public var train: [Int]
        public var validation: [Int]
        public var trainBytes: Int
        public var validationBytes: Int
        /// Byte share of each domain in train + validation.
        public var domainMix: [String: Double]
        /// The domain with the largest share: the "true cluster" for ARI.
        public var dominantDomain: String
    }

    public var format: Int
    public var corpusVersion: String
    /// FNV-1a 64 over all chunk texts, in hex: services can check they read the same text.
    public var corpusFingerprint: String
    public var seed: UInt64
    public var scheme: PartitionScheme
    public var alpha: Double?
    public var chunkBytes: Int
    public var heldOut: HeldOutRule
    public var validationFraction: Double
    public var domains: [DomainEntry]
    /// Text only the general corpus sees (license texts for the built-in corpus).
    public var generalExtra: DomainEntry?
    public var devices: [DeviceEntry]
    /// Domains the `.domain` scheme left out (fewer devices than domains).
    public var unusedDomains: [String]

    /// Folder the chunk files are read from (set by `load` and `write`; not stored).
    public var directory: URL?

    enum CodingKeys: String, CodingKey {
        case format, corpusVersion, corpusFingerprint, seed, scheme, alpha, chunkBytes, heldOut, validationFraction
        case domains, generalExtra, devices, unusedDomains
    }

    public var deviceCount: Int { devices.count }
    public var domainNames: [String] { domains.map(\.name) }
    /// Each device's dominant domain: the ground truth for clustering (ARI).
    public var deviceDomains: [String] { devices.map(\.dominantDomain) }

    /// Loads `manifest.json` from a folder, or the file itself.
    public static func load(_ url: URL) throws -> PartitionManifest {
        var isDir: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir)
        let file = exists && isDir.boolValue ? url.appendingPathComponent(fileName) : url
        guard let bytes = FileManager.default.contents(atPath: file.path) else {
            throw DataError.unreadableFile(path: file.path, reason: "no partition manifest here; run `fi data prepare --out DIR` first")
        }
        var manifest: PartitionManifest
        do { manifest = try JSONDecoder().decode(PartitionManifest.self, from: bytes) } catch {
            throw DataError.malformedManifest(path: file.path, reason: "\(error)")
        }
        guard manifest.format == currentFormat else {
            throw DataError.malformedManifest(path: file.path, reason: "format \(manifest.format), this build reads \(currentFormat)")
        }
        manifest.directory = file.deletingLastPathComponent()
        try manifest.validate(path: file.path)
        return manifest
    }

    /// Checks what a reader relies on: ids in range, offsets ascending.
    func validate(path: String) throws {
        let entries = domains + (generalExtra.map { [$0] } ?? [])
        for e in entries {
            guard e.offsets.first == 0, zip(e.offsets, e.offsets.dropFirst()).allSatisfy({ $0 <= $1 }) else {
                throw DataError.malformedManifest(path: path, reason: "domain '\(e.name)' has bad chunk offsets")
            }
            let range = e.firstChunk..<(e.firstChunk + e.chunkCount)
            for id in e.testChunks + e.generalChunks + e.poolChunks where !range.contains(id) {
                throw DataError.malformedManifest(path: path, reason: "chunk \(id) is outside domain '\(e.name)'")
            }
        }
        let total = entries.reduce(0) { $0 + $1.chunkCount }
        for d in devices {
            for id in d.train + d.validation where id < 0 || id >= total {
                throw DataError.malformedManifest(path: path, reason: "device \(d.id) names chunk \(id), there are \(total)")
            }
        }
    }

    public func write(to directory: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let bytes = try encoder.encode(self)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try bytes.write(to: directory.appendingPathComponent(Self.fileName), options: .atomic)
    }

    // MARK: Text

    public func device(_ id: Int) throws -> DeviceEntry {
        guard devices.indices.contains(id) else { throw DataError.unknownDevice(id, deviceCount: devices.count) }
        return devices[id]
    }

    public func domain(_ name: String) throws -> DomainEntry {
        guard let d = domains.first(where: { $0.name == name }) else {
            throw DataError.unknownDomain(name, known: domainNames)
        }
        return d
    }

    /// The texts of the given chunks, in the given order (a `ChunkReader` that keeps the files for later calls).
    public func chunkTexts(_ ids: [Int]) throws -> [String] {
        guard let directory else {
            throw DataError.malformedManifest(path: "(in memory)", reason: "no folder to read chunks from; use PartitionManifest.load")
        }
        return try ChunkReader(self, directory: directory).texts(ids)
    }

    public func trainChunks(device id: Int) throws -> [String] { try chunkTexts(device(id).train) }
    public func validationChunks(device id: Int) throws -> [String] { try chunkTexts(device(id).validation) }
    public func testChunks(domain name: String) throws -> [String] { try chunkTexts(domain(name).testChunks) }
    /// The pretraining corpus: every domain's general slice plus the general-only text.
    public func generalChunks() throws -> [String] {
        try chunkTexts(domains.flatMap(\.generalChunks) + (generalExtra?.poolChunks ?? []))
    }

    /// Chunks joined by a blank line: the text a device trains on.
    public func trainText(device id: Int) throws -> String { try trainChunks(device: id).joined(separator: "\n\n") }
    public func validationText(device id: Int) throws -> String { try validationChunks(device: id).joined(separator: "\n\n") }
    public func testText(domain name: String) throws -> String { try testChunks(domain: name).joined(separator: "\n\n") }
    public func generalText() throws -> String { try generalChunks().joined(separator: "\n\n") }
}
