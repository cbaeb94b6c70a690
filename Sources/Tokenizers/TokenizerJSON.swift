import Foundation

/// An added token of tokenizer.json (special tokens, chat template markers): matched in text as a whole.
struct AddedToken: Sendable {
    let content: String
    let id: Int32
    var lstrip = false
    var rstrip = false
    var scalars: [Unicode.Scalar] { Array(content.unicodeScalars) }
}

/// The normalizers byte-level models use: none, or Unicode NFC / NFKC.
enum Normalizer: Sendable {
    case none, nfc, nfkc
    indirect case sequence([Normalizer])

    func apply(_ s: String) -> String {
        switch self {
        case .none: return s
        case .nfc: return s.precomposedStringWithCanonicalMapping
        case .nfkc: return s.precomposedStringWithCompatibilityMapping
        case .sequence(let list): return list.reduce(s) { $1.apply($0) }
        }
    }
}

/// A compiled Split pattern; NSRegularExpression (ICU) matches by code point, as the Rust library's regex does.
final class SplitPattern: @unchecked Sendable {  // NSRegularExpression is immutable and thread-safe for matching
    let regex: NSRegularExpression
    init(_ regex: NSRegularExpression) { self.regex = regex }
}

/// How tokenizer.json cuts text into pre-tokens before BPE.
enum PreTokenizer: Sendable {
    /// GPT-2's pattern (ByteLevel with use_regex, and vocab.json/merges.txt models).
    case gpt2
    case split(SplitPattern, SplitBehavior)
    case digits(individual: Bool)
    case prefixSpace
    indirect case sequence([PreTokenizer])

    enum SplitBehavior: String, Sendable { case isolated = "Isolated", removed = "Removed", mergedWithPrevious = "MergedWithPrevious", mergedWithNext = "MergedWithNext" }

    func split(_ text: String) -> [String] { apply([text]) }

    func apply(_ pieces: [String]) -> [String] {
        switch self {
        case .gpt2: return pieces.flatMap { GPT2PreTokenizer.split($0) }
        case .sequence(let list): return list.reduce(pieces) { $1.apply($0) }
        case .prefixSpace: return pieces.map { $0.hasPrefix(" ") ? $0 : " " + $0 }
        case .digits(let individual): return pieces.flatMap { Self.digits($0, individual: individual) }
        case .split(let pattern, let behavior): return pieces.flatMap { Self.split($0, pattern.regex, behavior) }
        }
    }

    static func split(_ text: String, _ regex: NSRegularExpression, _ behavior: SplitBehavior) -> [String] {
        let ns = text as NSString
        var out: [String] = []
        var at = 0
        var pendingMatch: String?  // MergedWithNext: a match waiting for the text after it
        func emit(_ piece: String, isMatch: Bool) {
            guard !piece.isEmpty else { return }
            switch behavior {
            case .isolated: out.append(piece)
            case .removed: if !isMatch { out.append(piece) }
            case .mergedWithPrevious:
                if isMatch, !out.isEmpty { out[out.count - 1] += piece } else { out.append(piece) }
            case .mergedWithNext:
                if isMatch { pendingMatch = (pendingMatch ?? "") + piece } else { out.append((pendingMatch ?? "") + piece); pendingMatch = nil }
            }
        }
        for m in regex.matches(in: text, range: NSRange(location: 0, length: ns.length)) where m.range.length > 0 {
            emit(ns.substring(with: NSRange(location: at, length: m.range.location - at)), isMatch: false)
            emit(ns.substring(with: m.range), isMatch: true)
            at = m.range.location + m.range.length
        }
        emit(ns.substring(from: at), isMatch: false)
        if let p = pendingMatch { out.append(p) }
        return out
    }

    /// Digits isolated from the rest: each on its own, or runs of them.
    static func digits(_ text: String, individual: Bool) -> [String] {
        var out: [String] = []
        var cur = String.UnicodeScalarView()
        var curIsDigit = false
        for s in text.unicodeScalars {
            let d: Bool
            switch s.properties.generalCategory {
            case .decimalNumber, .letterNumber, .otherNumber: d = true
            default: d = false
            }
            if !cur.isEmpty && (d != curIsDigit || (d && individual)) { out.append(String(cur)); cur = String.UnicodeScalarView() }
            cur.append(s)
            curIsDigit = d
        }
        if !cur.isEmpty { out.append(String(cur)) }
        return out
    }
}

extension BPETokenizer {
    /// Loads a Hugging Face tokenizer.json with a byte-level BPE model: added tokens, NFC/NFKC normalizers, Split
    /// (regex, Isolated/Removed/Merged*), Digits and ByteLevel pre-tokenizers, ignore_merges. Anything else is a
    /// typed error naming the field.
    public init(tokenizerJSON url: URL) throws {
        let path = url.path
        func bad(_ field: String, _ reason: String) -> TokenizerError { .badTokenizerJSON(path: path, field: field, reason: reason) }
        guard let data = FileManager.default.contents(atPath: path) else { throw TokenizerError.missingFile(path: path) }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw bad("(root)", "not a JSON object")
        }
        guard let model = root["model"] as? [String: Any] else { throw bad("model", "missing") }
        let type = model["type"] as? String ?? "BPE"
        guard type == "BPE" else { throw bad("model.type", "\(type) is not supported; only byte-level BPE models are") }
        if model["byte_fallback"] as? Bool == true {
            throw bad("model.byte_fallback", "true is not supported (SentencePiece-style BPE); only byte-level BPE models are")
        }
        guard let rawVocab = model["vocab"] as? [String: Any] else { throw bad("model.vocab", "must be an object of token → id") }
        var vocab: [String: Int32] = [:]
        for (token, value) in rawVocab {
            guard let n = value as? NSNumber, let id = Int32(exactly: n.doubleValue), id >= 0 else {
                throw bad("model.vocab", "token '\(token)' has id \(value), not a non-negative integer")
            }
            vocab[token] = id
        }
        var merges: [(String, String)] = []
        for (i, m) in ((model["merges"] as? [Any]) ?? []).enumerated() {
            if let s = m as? String {
                let parts = s.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { throw bad("model.merges[\(i)]", "'\(s)' is not two space-separated symbols") }
                merges.append((String(parts[0]), String(parts[1])))
            } else if let pair = m as? [String], pair.count == 2 {
                merges.append((pair[0], pair[1]))
            } else {
                throw bad("model.merges[\(i)]", "must be \"a b\" or [\"a\", \"b\"]")
            }
        }
        var added: [AddedToken] = []
        for (i, t) in ((root["added_tokens"] as? [Any]) ?? []).enumerated() {
            guard let o = t as? [String: Any], let content = o["content"] as? String, !content.isEmpty,
                  let n = o["id"] as? NSNumber, let id = Int32(exactly: n.doubleValue), id >= 0 else {
                throw bad("added_tokens[\(i)]", "needs a non-empty content and a non-negative integer id")
            }
            added.append(AddedToken(content: content, id: id, lstrip: o["lstrip"] as? Bool ?? false, rstrip: o["rstrip"] as? Bool ?? false))
        }
        let normalizer = try Self.normalizer(root["normalizer"], field: "normalizer", bad)
        let pre = try Self.preTokenizer(root["pre_tokenizer"], field: "pre_tokenizer", bad)
        if let dec = root["decoder"] as? [String: Any], let t = dec["type"] as? String, !["ByteLevel", "Sequence"].contains(t) {
            throw bad("decoder.type", "\(t) is not supported; byte-level models decode with ByteLevel")
        }
        do {
            try self.init(vocab: vocab, merges: merges, added: added, preTokenizer: pre ?? .gpt2, normalizer: normalizer,
                          ignoreMerges: model["ignore_merges"] as? Bool ?? false)
        } catch let TokenizerError.malformedVocab(_, reason) {
            throw bad("model.vocab", reason)
        }
    }

    static func normalizer(_ raw: Any?, field: String, _ bad: (String, String) -> TokenizerError) throws -> Normalizer {
        guard let raw, !(raw is NSNull) else { return .none }
        guard let o = raw as? [String: Any], let type = o["type"] as? String else { throw bad(field, "must be an object with a type") }
        switch type {
        case "NFC": return .nfc
        case "NFKC": return .nfkc
        case "Sequence":
            let list = (o["normalizers"] as? [Any]) ?? []
            return .sequence(try list.enumerated().map { try normalizer($1, field: "\(field).normalizers[\($0)]", bad) })
        default: throw bad("\(field).type", "\(type) is not supported; use NFC, NFKC or none")
        }
    }

    static func preTokenizer(_ raw: Any?, field: String, _ bad: (String, String) -> TokenizerError) throws -> PreTokenizer? {
        guard let raw, !(raw is NSNull) else { return nil }
        guard let o = raw as? [String: Any], let type = o["type"] as? String else { throw bad(field, "must be an object with a type") }
        switch type {
        case "ByteLevel":
            var parts: [PreTokenizer] = []
            if o["add_prefix_space"] as? Bool == true { parts.append(.prefixSpace) }
            if o["use_regex"] as? Bool ?? true { parts.append(.gpt2) }
            return .sequence(parts)
        case "Digits":
            return .digits(individual: o["individual_digits"] as? Bool ?? false)
        case "Split":
            guard let p = o["pattern"] as? [String: Any] else { throw bad("\(field).pattern", "must be {\"Regex\": …} or {\"String\": …}") }
            let pattern: String
            if let r = p["Regex"] as? String { pattern = r }
            else if let s = p["String"] as? String { pattern = NSRegularExpression.escapedPattern(for: s) }
            else { throw bad("\(field).pattern", "must be {\"Regex\": …} or {\"String\": …}") }
            if o["invert"] as? Bool == true { throw bad("\(field).invert", "true is not supported") }
            let name = o["behavior"] as? String ?? "Isolated"
            guard let behavior = PreTokenizer.SplitBehavior(rawValue: name) else {
                throw bad("\(field).behavior", "\(name) is not supported; use Isolated, Removed, MergedWithPrevious or MergedWithNext")
            }
            do { return .split(SplitPattern(try NSRegularExpression(pattern: pattern)), behavior) } catch {
                throw bad("\(field).pattern", "not a valid regular expression: \(pattern)")
            }
        case "Sequence":
            let list = (o["pretokenizers"] as? [Any]) ?? []
            return .sequence(try list.enumerated().compactMap { try preTokenizer($1, field: "\(field).pretokenizers[\($0)]", bad) })
        default:
            throw bad("\(field).type", "\(type) is not supported; use ByteLevel, Split, Digits or Sequence")
        }
    }
}
