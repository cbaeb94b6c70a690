import Foundation

public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    case missingFile(path: String)
    case malformedVocab(path: String, reason: String)
    /// `line` is 1-based.
    case malformedMerges(path: String, line: Int, reason: String)
    /// tokenizer.json: `field` (a JSON path such as pre_tokenizer.pretokenizers[0].type) is malformed or unsupported.
    case badTokenizerJSON(path: String, field: String, reason: String)

    public var description: String {
        switch self {
        case let .missingFile(path):
            return "tokenizer file \(path) is missing: a BPE tokenizer needs both vocab.json and merges.txt "
                + "(GPT-2 format); remove the other one to use the byte tokenizer"
        case let .malformedVocab(path, reason):
            return "\(path) is not a GPT-2 vocab.json: \(reason). It must be a JSON object from token strings to ids."
        case let .malformedMerges(path, line, reason):
            return "\(path):\(line): malformed merge: \(reason). Each line must hold two space-separated symbols."
        case let .badTokenizerJSON(path, field, reason):
            return "\(path): \(field): \(reason)"
        }
    }
}

/// Byte-level BPE (GPT-2, and Hugging Face tokenizer.json models such as Llama 3, Qwen2, SmolLM): added tokens cut
/// out whole → normalizer → pre-tokenizer → bytes mapped to printable characters → merges applied by rank → vocab
/// ids. Decoding maps back to bytes, so any UTF-8 text round-trips (up to the normalizer).
public struct BPETokenizer: Tokenizer {
    /// GPT-2's bytes_to_unicode: every byte gets a printable character (printable Latin-1 bytes
    /// keep their own; the rest take U+0100 onwards, so a space is "Ġ" and a newline "Ċ").
    public static let byteToUnicode: [Character] = {
        var printable = Array(33...126) + Array(161...172) + Array(174...255)
        var chars = printable
        var n = 0
        for b in 0..<256 where !printable.contains(b) {
            printable.append(b)
            chars.append(256 + n)
            n += 1
        }
        var table = [Character](repeating: " ", count: 256)
        for (b, c) in zip(printable, chars) { table[b] = Character(Unicode.Scalar(UInt32(c))!) }  // c < 512: valid scalars
        return table
    }()

    let encoder: [String: Int32]
    let decoder: [Int32: String]
    let ranks: [Pair: Int]
    let byteDecoder: [Character: UInt8]
    /// Tokens such as `<|endoftext|>` (tokenizer.json: added_tokens): matched in text as a whole, never split.
    public let specialTokens: [String: Int32]
    let specials: [AddedToken]
    let preTokenizer: PreTokenizer
    let normalizer: Normalizer
    /// A pre-token already in the vocabulary is one token (Llama 3's ignore_merges).
    let ignoreMerges: Bool
    let cache = WordCache()
    public let vocabSize: Int

    struct Pair: Hashable {
        let a: String
        let b: String
    }

    /// - Parameters:
    ///   - vocab: token string (in byte-to-unicode form) → id; must hold all 256 byte symbols.
    ///   - merges: merge pairs, highest priority first.
    public init(vocab: [String: Int32], merges: [(String, String)]) throws {
        let specials = vocab.filter { $0.key.hasPrefix("<|") && $0.key.hasSuffix("|>") && $0.key.count > 4 }
            .map { AddedToken(content: $0.key, id: $0.value) }
        try self.init(vocab: vocab, merges: merges, added: specials, preTokenizer: .gpt2, normalizer: .none, ignoreMerges: false)
    }

    init(vocab: [String: Int32], merges: [(String, String)], added: [AddedToken], preTokenizer: PreTokenizer,
         normalizer: Normalizer, ignoreMerges: Bool) throws {
        for (b, c) in Self.byteToUnicode.enumerated() where vocab[String(c)] == nil {
            throw TokenizerError.malformedVocab(path: "vocab", reason: "no token for byte \(b) ('\(c)'); a byte-level vocab needs all 256")
        }
        if let bad = vocab.first(where: { $0.value < 0 }) {
            throw TokenizerError.malformedVocab(path: "vocab", reason: "token '\(bad.key)' has negative id \(bad.value)")
        }
        self.preTokenizer = preTokenizer
        self.normalizer = normalizer
        self.ignoreMerges = ignoreMerges
        specials = added.sorted { $0.content.count > $1.content.count }
        var all = vocab
        for t in added { all[t.content] = t.id }
        encoder = all
        decoder = Dictionary(all.map { ($0.value, $0.key) }, uniquingKeysWith: { a, _ in a })
        var r: [Pair: Int] = [:]
        for (rank, m) in merges.enumerated() where r[Pair(a: m.0, b: m.1)] == nil {
            r[Pair(a: m.0, b: m.1)] = rank
        }
        ranks = r
        byteDecoder = Dictionary(uniqueKeysWithValues: Self.byteToUnicode.enumerated().map { ($0.element, UInt8($0.offset)) })
        specialTokens = Dictionary(added.map { ($0.content, $0.id) }, uniquingKeysWith: { a, _ in a })
        vocabSize = Int(all.values.max() ?? 0) + 1
    }

    /// Loads Hugging Face / OpenAI GPT-2 `vocab.json` and `merges.txt`.
    public init(vocabURL: URL, mergesURL: URL) throws {
        guard let vocabBytes = FileManager.default.contents(atPath: vocabURL.path) else {
            throw TokenizerError.missingFile(path: vocabURL.path)
        }
        guard let mergesBytes = FileManager.default.contents(atPath: mergesURL.path) else {
            throw TokenizerError.missingFile(path: mergesURL.path)
        }
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: vocabBytes) } catch {
            throw TokenizerError.malformedVocab(path: vocabURL.path, reason: "not valid JSON")
        }
        guard let dict = object as? [String: Any] else {
            throw TokenizerError.malformedVocab(path: vocabURL.path, reason: "not a JSON object")
        }
        var vocab: [String: Int32] = [:]
        for (token, value) in dict {
            guard let number = value as? NSNumber, let id = Int32(exactly: number.doubleValue), id >= 0 else {
                throw TokenizerError.malformedVocab(path: vocabURL.path, reason: "token '\(token)' has id \(value), not a non-negative integer")
            }
            vocab[token] = id
        }
        var merges: [(String, String)] = []
        let lines = String(decoding: mergesBytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        for (index, rawLine) in lines.enumerated() {
            let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine
            if line.isEmpty || (index == 0 && line.hasPrefix("#version")) { continue }
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw TokenizerError.malformedMerges(path: mergesURL.path, line: index + 1, reason: "'\(line)'")
            }
            merges.append((String(parts[0]), String(parts[1])))
        }
        do { try self.init(vocab: vocab, merges: merges) } catch let TokenizerError.malformedVocab(_, reason) {
            throw TokenizerError.malformedVocab(path: vocabURL.path, reason: reason)
        }
    }

    public func encode(_ text: String) -> [Int32] {
        var ids: [Int32] = []
        for (segment, special) in splitSpecial(text) {
            if let special { ids.append(special); continue }
            for piece in preTokenizer.split(normalizer.apply(segment)) { ids += encodeWord(piece) }
        }
        return ids
    }

    public func decode(_ tokens: [Int32]) -> String {
        var bytes: [UInt8] = []
        for t in tokens {
            guard let token = decoder[t] else { continue }  // unknown ids decode to nothing
            if specialTokens[token] != nil { bytes += token.utf8; continue }
            for c in token { if let b = byteDecoder[c] { bytes.append(b) } }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Cuts out added/special tokens: the leftmost occurrence, the longest there; lstrip/rstrip tokens take the
    /// whitespace beside them.
    func splitSpecial(_ text: String) -> [(String, Int32?)] {
        guard !specials.isEmpty else { return [(text, nil)] }
        let firsts = Set(specials.compactMap { $0.content.unicodeScalars.first })
        let u = Array(text.unicodeScalars)
        var out: [(String, Int32?)] = []
        var plain = String.UnicodeScalarView()
        var i = 0
        func flush() { if !plain.isEmpty { out.append((String(plain), nil)); plain = String.UnicodeScalarView() } }
        scan: while i < u.count {
            if firsts.contains(u[i]) {
                for t in specials where t.scalars.count <= u.count - i && u[i..<(i + t.scalars.count)].elementsEqual(t.scalars) {
                    if t.lstrip { while let last = plain.last, last.properties.isWhitespace { plain.removeLast() } }
                    flush()
                    out.append((t.content, t.id))
                    i += t.scalars.count
                    if t.rstrip { while i < u.count, u[i].properties.isWhitespace { i += 1 } }
                    continue scan
                }
            }
            plain.append(u[i])
            i += 1
        }
        flush()
        return out
    }

    /// BPE on one pre-token: repeatedly merge the adjacent pair with the lowest rank.
    func encodeWord(_ word: String) -> [Int32] {
        if let hit = cache.get(word) { return hit }
        if ignoreMerges, let id = encoder[String(word.utf8.map { Self.byteToUnicode[Int($0)] })] {
            cache.set(word, [id])
            return [id]
        }
        var symbols = word.utf8.map { String(Self.byteToUnicode[Int($0)]) }
        while symbols.count > 1 {
            var best: (rank: Int, index: Int)?
            for i in 0..<(symbols.count - 1) {
                if let r = ranks[Pair(a: symbols[i], b: symbols[i + 1])], r < (best?.rank ?? Int.max) { best = (r, i) }
            }
            guard let best else { break }
            let (a, b) = (symbols[best.index], symbols[best.index + 1])
            var next: [String] = []
            next.reserveCapacity(symbols.count)
            var i = 0
            while i < symbols.count {
                if i + 1 < symbols.count, symbols[i] == a, symbols[i + 1] == b {
                    next.append(a + b)
                    i += 2
                } else {
                    next.append(symbols[i])
                    i += 1
                }
            }
            symbols = next
        }
        var ids: [Int32] = []
        for s in symbols {
            if let id = encoder[s] {
                ids.append(id)
            } else {
                // A merge result missing from the vocab: fall back to its bytes (always present).
                for c in s { if let id = encoder[String(c)] { ids.append(id) } }
            }
        }
        cache.set(word, ids)
        return ids
    }
}

/// Pre-token → ids memo. A class behind a lock so `BPETokenizer` stays a Sendable value.
final class WordCache: @unchecked Sendable {  // every access to `entries` holds `lock`
    private let lock = NSLock()
    private var entries: [String: [Int32]] = [:]
    private let limit = 100_000

    func get(_ key: String) -> [Int32]? {
        lock.lock()
        defer { lock.unlock() }
        return entries[key]
    }

    func set(_ key: String, _ value: [Int32]) {
        lock.lock()
        defer { lock.unlock() }
        if entries.count >= limit { entries.removeAll(keepingCapacity: true) }
        entries[key] = value
    }
}

/// The tokenizer of a model folder: Hugging Face tokenizer.json when present, else GPT-2 BPE when it holds
/// vocab.json and merges.txt, the byte tokenizer when it holds neither. One without the other is an error
/// (a half-copied model).
public func loadTokenizer(modelDir: URL) throws -> any Tokenizer {
    let json = modelDir.appendingPathComponent("tokenizer.json")
    if FileManager.default.fileExists(atPath: json.path) { return try BPETokenizer(tokenizerJSON: json) }
    let vocab = modelDir.appendingPathComponent("vocab.json")
    let merges = modelDir.appendingPathComponent("merges.txt")
    let fm = FileManager.default
    switch (fm.fileExists(atPath: vocab.path), fm.fileExists(atPath: merges.path)) {
    case (true, true): return try BPETokenizer(vocabURL: vocab, mergesURL: merges)
    case (false, false): return ByteTokenizer()
    case (true, false): throw TokenizerError.missingFile(path: merges.path)
    case (false, true): throw TokenizerError.missingFile(path: vocab.path)
    }
}
