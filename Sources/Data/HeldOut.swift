import Foundation

/// Which documents of a domain are held out, before any partition is drawn.
///
/// The rule that keeps test sets clean: every domain's documents are shuffled with a fixed seed
/// (independent of the partition seed) and dealt, by bytes, into three disjoint groups:
/// `test` (the domain's held-out test set), `general` (a slice that only the pretraining
/// corpus sees) and `pool` (what partitions hand to devices). Splitting whole documents, then
/// chunking each group apart, means no document, and no chunk, is in two groups. The general
/// (pretraining) corpus is `general` of every domain plus `Corpus.generalOnly`, so it never holds
/// test or device text.
public struct HeldOutRule: Sendable, Codable, Equatable {
    public var testFraction: Double
    public var generalFraction: Double
    public var seed: UInt64

    public init(testFraction: Double = 0.1, generalFraction: Double = 0.1, seed: UInt64 = 0x4845_4C44_4F55_5431) {
        self.testFraction = testFraction
        self.generalFraction = generalFraction
        self.seed = seed
    }
}

/// A piece of one domain's text of about `chunkBytes`: the unit that partitions assign.
public struct Chunk: Sendable, Equatable {
    public var id: Int
    public var domain: String
    public var text: String
}

public enum ChunkRole: String, Sendable, Codable { case test, general, pool }

/// The corpus cut into chunks, with every chunk's held-out role.
public struct ChunkedCorpus: Sendable {
    public struct DomainChunks: Sendable {
        public var name: String
        public var test: [Int]
        public var general: [Int]
        public var pool: [Int]
    }

    /// Indexed by chunk id; the ids of a domain are contiguous (test, general, pool in order).
    public var chunks: [Chunk]
    public var domains: [DomainChunks]
    /// Chunks of `Corpus.generalOnly` (domain name `general-extra`).
    public var generalExtra: [Int]
    /// Test documents' and general documents' texts, for the leak checks.
    public var testDocumentTexts: [String: [String]]
    public var generalDocumentTexts: [String]

    public static let generalExtraDomain = "general-extra"

    public init(corpus: Corpus, rule: HeldOutRule = HeldOutRule(), chunkBytes: Int = 1536) throws {
        guard chunkBytes >= 64 else { throw DataError.invalidPartition("chunk size \(chunkBytes) is below 64 bytes") }
        guard rule.testFraction >= 0, rule.generalFraction >= 0, rule.testFraction + rule.generalFraction < 1 else {
            throw DataError.invalidPartition("test fraction + general fraction must be in [0, 1)")
        }
        chunks = []
        domains = []
        generalExtra = []
        testDocumentTexts = [:]
        generalDocumentTexts = []
        for domain in corpus.domains {
            var docs = domain.documents.map(\.text).filter { !$0.isEmpty }
            guard !docs.isEmpty else { throw DataError.emptyInput("domain '\(domain.name)' has no text") }
            if docs.count < 10 {
                // Too few documents to hold whole ones out: cut them into ~4-chunk pieces first.
                docs = docs.flatMap { Self.pieces(of: $0, maxBytes: chunkBytes * 4) }
            }
            var rng = SplitMix64(seed: rule.seed ^ fnv1a64(Array(domain.name.utf8)))
            var order = Array(docs.indices)
            rng.shuffle(&order)
            let total = Double(docs.reduce(0) { $0 + $1.utf8.count })
            var role = [ChunkRole](repeating: .pool, count: docs.count)
            var testBytes = 0.0, generalBytes = 0.0
            for i in order {
                let b = Double(docs[i].utf8.count)
                if testBytes < rule.testFraction * total { role[i] = .test; testBytes += b }
                else if generalBytes < rule.generalFraction * total { role[i] = .general; generalBytes += b }
            }
            // Within each group keep the original order, so chunks hold neighbouring text.
            let test = append(docs.indices.filter { role[$0] == .test }.map { docs[$0] }, domain: domain.name, chunkBytes: chunkBytes)
            let general = append(docs.indices.filter { role[$0] == .general }.map { docs[$0] }, domain: domain.name, chunkBytes: chunkBytes)
            let pool = append(docs.indices.filter { role[$0] == .pool }.map { docs[$0] }, domain: domain.name, chunkBytes: chunkBytes)
            testDocumentTexts[domain.name] = docs.indices.filter { role[$0] == .test }.map { docs[$0] }
            generalDocumentTexts += docs.indices.filter { role[$0] == .general }.map { docs[$0] }
            domains.append(DomainChunks(name: domain.name, test: test, general: general, pool: pool))
        }
        let extraDocs = corpus.generalOnly.map(\.text).filter { !$0.isEmpty }
        generalExtra = append(extraDocs, domain: Self.generalExtraDomain, chunkBytes: chunkBytes)
        generalDocumentTexts += extraDocs
    }

    /// Greedily packs documents (joined by a blank line) into chunks of at most `chunkBytes`;
    /// a longer document is cut at line breaks first. Returns the new chunk ids.
    private mutating func append(_ docs: [String], domain: String, chunkBytes: Int) -> [Int] {
        var ids: [Int] = []
        var current = ""
        func emit() {
            guard !current.isEmpty else { return }
            ids.append(chunks.count)
            chunks.append(Chunk(id: chunks.count, domain: domain, text: current))
            current = ""
        }
        for doc in docs {
            for piece in Self.pieces(of: doc, maxBytes: chunkBytes) {
                if !current.isEmpty, current.utf8.count + 2 + piece.utf8.count > chunkBytes { emit() }
                current += current.isEmpty ? piece : "\n\n" + piece
            }
        }
        emit()
        return ids
    }

    /// Cuts text into pieces of at most `maxBytes`, at line breaks where possible
    /// (else at character boundaries).
    static func pieces(of text: String, maxBytes: Int) -> [String] {
        guard text.utf8.count > maxBytes else { return [text] }
        var result: [String] = []
        var lines: [Substring] = []
        var bytes = 0
        func flush() {
            let piece = lines.joined(separator: "\n")
            if !piece.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { result.append(piece) }
            lines.removeAll(keepingCapacity: true)
            bytes = 0
        }
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            var rest = Substring(line)
            while rest.utf8.count > maxBytes {
                flush()
                var cut = rest.startIndex
                var used = 0
                for ch in rest {
                    if used + ch.utf8.count > maxBytes { break }
                    used += ch.utf8.count
                    cut = rest.index(after: cut)
                }
                if cut == rest.startIndex { cut = rest.index(after: cut) }
                result.append(String(rest[..<cut]))
                rest = rest[cut...]
            }
            let n = rest.utf8.count + (lines.isEmpty ? 0 : 1)
            if !lines.isEmpty, bytes + n > maxBytes { flush() }
            bytes += rest.utf8.count + (lines.isEmpty ? 0 : 1)
            lines.append(rest)
        }
        flush()
        return result
    }
}
