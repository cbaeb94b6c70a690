import Foundation

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
