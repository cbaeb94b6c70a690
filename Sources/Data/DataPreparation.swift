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
