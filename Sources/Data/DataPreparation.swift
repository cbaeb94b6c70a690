import Foundation

/// Corpus → held-out split → chunks → partition → manifest plus chunk files.
public enum DataPreparation {
    /// Builds the manifest and the chunk files' bytes without touching disk.
    public static func build(corpus: Corpus, spec: PartitionSpec, heldOut: HeldOutRule = HeldOutRule(),
                             chunkBytes: Int = 1536) throws -> (manifest: PartitionManifest, files: [String: [UInt8]]) {
        let chunked = try ChunkedCorpus(corpus: corpus, rule: heldOut, chunkBytes: chunkBytes)
        guard spec.validationFraction >= 0, spec.validationFraction < 1 else {
            throw DataError.invalidPartition("validation fraction must be in [0, 1)")
        }
        var files: [String: [UInt8]] = [:]
        var fingerprint: UInt64 = 0xCBF2_9CE4_8422_2325
        func entry(index: Int, name: String, ids: [Int], test: [Int], general: [Int], pool: [Int]) -> PartitionManifest.DomainEntry {
            let file = "chunks/" + String(format: "%02d", index) + "-" + fileSafe(name) + ".txt"
            var bytes: [UInt8] = []
            var offsets = [0]
            for id in ids {
                bytes += chunked.chunks[id].text.utf8
                offsets.append(bytes.count)
            }
            fingerprint = fnv1a64(bytes, seed: fingerprint)
            files[file] = bytes
            return .init(name: name, file: file, firstChunk: ids.first ?? 0, offsets: offsets,
                         testChunks: test, generalChunks: general, poolChunks: pool)
        }
        let domains = chunked.domains.enumerated().map { k, d in
            entry(index: k, name: d.name, ids: d.test + d.general + d.pool, test: d.test, general: d.general, pool: d.pool)
        }
        let extra = chunked.generalExtra.isEmpty ? nil
            : entry(index: domains.count, name: ChunkedCorpus.generalExtraDomain, ids: chunked.generalExtra,
                    test: [], general: [], pool: chunked.generalExtra)

        let (assigned, unused) = try Partitioner.assign(pools: chunked.domains.map(\.pool), spec: spec)
        var rng = SplitMix64(seed: spec.seed ^ 0x5641_4C49_4441_5445)
        let devices = assigned.enumerated().map { id, chunks in
            let (train, validation) = Partitioner.trainValidation(chunks, fraction: spec.validationFraction, rng: &rng)
            var mix: [String: Double] = [:]
            var total = 0
            for c in chunks {
                let n = chunked.chunks[c].text.utf8.count
                mix[chunked.chunks[c].domain, default: 0] += Double(n)
                total += n
            }
            mix = mix.mapValues { $0 / Double(max(total, 1)) }
            let dominant = mix.max { ($0.value, $1.key) < ($1.value, $0.key) }?.key ?? ""
            return PartitionManifest.DeviceEntry(
                id: id, train: train, validation: validation,
                trainBytes: train.reduce(0) { $0 + chunked.chunks[$1].text.utf8.count },
                validationBytes: validation.reduce(0) { $0 + chunked.chunks[$1].text.utf8.count },
                domainMix: mix, dominantDomain: dominant)
        }
        let manifest = PartitionManifest(
            format: PartitionManifest.currentFormat, corpusVersion: corpus.version,
            corpusFingerprint: String(fingerprint, radix: 16), seed: spec.seed, scheme: spec.scheme,
            alpha: spec.scheme == .dirichlet ? spec.alpha : nil, chunkBytes: chunkBytes, heldOut: heldOut,
            validationFraction: spec.validationFraction, domains: domains, generalExtra: extra, devices: devices,
            unusedDomains: unused.map { chunked.domains[$0].name }, directory: nil)
        return (manifest, files)
    }

    /// Writes `manifest.json` and `chunks/*.txt` into `directory` and returns the loaded manifest.
    @discardableResult
    public static func prepare(corpus: Corpus, spec: PartitionSpec, heldOut: HeldOutRule = HeldOutRule(),
                               chunkBytes: Int = 1536, into directory: URL) throws -> PartitionManifest {
        var (manifest, files) = try build(corpus: corpus, spec: spec, heldOut: heldOut, chunkBytes: chunkBytes)
        let fm = FileManager.default
        do {
            try fm.createDirectory(at: directory.appendingPathComponent("chunks"), withIntermediateDirectories: true)
            for (name, bytes) in files.sorted(by: { $0.key < $1.key }) {
                try Foundation.Data(bytes).write(to: directory.appendingPathComponent(name), options: .atomic)
            }
            try manifest.write(to: directory)
        } catch {
            throw DataError.unreadableFile(path: directory.path, reason: "cannot write the prepared data: \(error.localizedDescription)")
        }
        // The same form `load` gives, so a written and a loaded manifest compare equal.
        manifest.directory = directory.appendingPathComponent(PartitionManifest.fileName).deletingLastPathComponent()
        return manifest
    }

    static func fileSafe(_ name: String) -> String {
        String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") ? $0 : "_" })
    }
}

/// What `fi data stats` prints.
public struct ManifestStats: Sendable, Codable {
    public struct DomainRow: Sendable, Codable {
        public var name: String
        public var bytes: Int
        public var chunks: Int
        public var testBytes: Int
        public var generalBytes: Int
        public var poolBytes: Int
    }

    public struct DeviceRow: Sendable, Codable {
        public var id: Int
        public var trainBytes: Int
        public var validationBytes: Int
        public var trainChunks: Int
        public var validationChunks: Int
        public var dominantDomain: String
        public var domainMix: [String: Double]
    }

    public var corpusVersion: String
    public var scheme: PartitionScheme
    public var alpha: Double?
    public var seed: UInt64
    public var domains: [DomainRow]
    public var generalBytes: Int
    public var devices: [DeviceRow]

    public init(_ m: PartitionManifest) {
        func bytes(_ e: PartitionManifest.DomainEntry, _ ids: [Int]) -> Int {
            ids.reduce(0) { $0 + e.offsets[$1 - e.firstChunk + 1] - e.offsets[$1 - e.firstChunk] }
        }
        corpusVersion = m.corpusVersion
        scheme = m.scheme
        alpha = m.alpha
        seed = m.seed
        domains = m.domains.map {
            DomainRow(name: $0.name, bytes: $0.bytes, chunks: $0.chunkCount, testBytes: bytes($0, $0.testChunks),
                      generalBytes: bytes($0, $0.generalChunks), poolBytes: bytes($0, $0.poolChunks))
        }
        generalBytes = domains.reduce(0) { $0 + $1.generalBytes } + (m.generalExtra?.bytes ?? 0)
        devices = m.devices.map {
            DeviceRow(id: $0.id, trainBytes: $0.trainBytes, validationBytes: $0.validationBytes, trainChunks: $0.train.count,
                      validationChunks: $0.validation.count, dominantDomain: $0.dominantDomain, domainMix: $0.domainMix)
        }
    }

    /// A plain-text table: one row per domain, then one per device with its domain shares in %.
    public var table: String {
        func kb(_ b: Int) -> String { String(format: "%.1f", Double(b) / 1024) }
        func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }
        func padRight(_ s: String, _ w: Int) -> String { s.count >= w ? s : s + String(repeating: " ", count: w - s.count) }
        var lines: [String] = []
        let alphaText = alpha.map { String(format: " α=%g", $0) } ?? ""
        lines.append("corpus \(corpusVersion), scheme \(scheme.rawValue)\(alphaText), seed \(seed)")
        let w = max(18, (domains.map(\.name.count).max() ?? 0) + 2)
        lines.append(padRight("domain", w) + pad("KB", 9) + pad("chunks", 8) + pad("test KB", 9) + pad("general KB", 11) + pad("pool KB", 9))
        for d in domains {
            lines.append(padRight(d.name, w) + pad(kb(d.bytes), 9) + pad("\(d.chunks)", 8) + pad(kb(d.testBytes), 9)
                + pad(kb(d.generalBytes), 11) + pad(kb(d.poolBytes), 9))
        }
        lines.append("general (pretraining) corpus: \(kb(generalBytes)) KB")
        lines.append("")
        let names = domains.map(\.name)
        let shortNames = names.map { String($0.prefix(8)) }
        lines.append(pad("device", 6) + pad("train KB", 10) + pad("val KB", 8) + "  " + padRight("dominant", w)
            + shortNames.map { pad($0, 9) }.joined())
        for d in devices {
            let shares = names.map { pad(String(format: "%.1f%%", 100 * (d.domainMix[$0] ?? 0)), 9) }.joined()
            lines.append(pad("\(d.id)", 6) + pad(kb(d.trainBytes), 10) + pad(kb(d.validationBytes), 8) + "  "
                + padRight(d.dominantDomain, w) + shares)
        }
        return lines.joined(separator: "\n")
    }
}
