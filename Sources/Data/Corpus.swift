import Foundation

/// One unit of text from one domain: a fortune, a Bible chapter, a man page, a JSONL record.
/// Held-out splits assign whole documents, so a document is never in two splits.
public struct Document: Sendable, Hashable, Codable {
    public var domain: String
    /// Where it came from (file name, Bible chapter, JSONL line), for people reading stats.
    public var source: String
    public var text: String

    public init(domain: String, source: String, text: String) {
        self.domain = domain
        self.source = source
        self.text = text
    }
}

/// The documents of one downstream domain.
public struct DomainDocuments: Sendable, Equatable {
    public var name: String
    public var documents: [Document]

    public init(name: String, documents: [Document]) {
        self.name = name
        self.documents = documents
    }

    public var bytes: Int { documents.reduce(0) { $0 + $1.text.utf8.count } }
}

/// Text grouped by domain, plus text that only ever goes into the general (pretraining) corpus.
public struct Corpus: Sendable, Equatable {
    /// Names what was extracted and how; it keys the cache and is recorded in manifests.
    public var version: String
    /// Domains in a fixed order (the order is part of determinism).
    public var domains: [DomainDocuments]
    /// Text that is in no domain (e.g. license texts): only pretraining sees it.
    public var generalOnly: [Document]

    public init(version: String, domains: [DomainDocuments], generalOnly: [Document] = []) {
        self.version = version
        self.domains = domains
        self.generalOnly = generalOnly
    }

    public var domainNames: [String] { domains.map(\.name) }

    /// Keeps only the named domains, in the given order.
    public func selecting(domains names: [String]) throws -> Corpus {
        let picked = try names.map { name in
            guard let d = domains.first(where: { $0.name == name }) else {
                throw DataError.unknownDomain(name, known: domainNames)
            }
            return d
        }
        return Corpus(version: version, domains: picked, generalOnly: generalOnly)
    }

    /// Groups documents by their `domain` field; domains keep first-seen order.
    public static func grouping(_ documents: [Document], version: String) -> Corpus {
        var order: [String] = []
        var byDomain: [String: [Document]] = [:]
        for doc in documents {
            if byDomain[doc.domain] == nil { order.append(doc.domain) }
            byDomain[doc.domain, default: []].append(doc)
        }
        return Corpus(version: version, domains: order.map { DomainDocuments(name: $0, documents: byDomain[$0] ?? []) })
    }
}

// MARK: - User data

extension Corpus {
    /// Reads a JSONL file in the Hugging Face convention: one JSON object per line with a string
    /// `text` and an optional string `domain` (else `defaultDomain`). Blank lines are skipped;
    /// any other bad line throws `DataError.malformedJSONL` with its 1-based line number.
    public static func jsonl(_ url: URL, defaultDomain: String? = nil) throws -> Corpus {
        let bytes: Foundation.Data
        do { bytes = try Foundation.Data(contentsOf: url) } catch {
            throw DataError.unreadableFile(path: url.path, reason: "\(error.localizedDescription)")
        }
        let fallback = defaultDomain ?? url.deletingPathExtension().lastPathComponent
        let docs = try parseJSONL(bytes, file: url.path, defaultDomain: fallback)
        guard !docs.isEmpty else { throw DataError.emptyInput("\(url.path) has no JSONL records") }
        return grouping(docs, version: "jsonl:\(url.lastPathComponent)")
    }

    /// The parser behind `jsonl(_:)`, exposed for in-memory input.
    public static func parseJSONL(_ bytes: Foundation.Data, file: String, defaultDomain: String) throws -> [Document] {
        var docs: [Document] = []
        var lineNumber = 0
        for lineBytes in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = Foundation.Data(lineBytes)
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            let object: Any
            do { object = try JSONSerialization.jsonObject(with: line, options: []) } catch {
                throw DataError.malformedJSONL(file: file, line: lineNumber, reason: "not valid JSON")
            }
            guard let record = object as? [String: Any] else {
                throw DataError.malformedJSONL(file: file, line: lineNumber, reason: "not a JSON object")
            }
            guard let text = record["text"] as? String else {
                throw DataError.malformedJSONL(file: file, line: lineNumber, reason: "missing string field \"text\"")
            }
            var domain = defaultDomain
            if let value = record["domain"] {
                guard let d = value as? String, !d.isEmpty else {
                    throw DataError.malformedJSONL(file: file, line: lineNumber, reason: "\"domain\" must be a non-empty string")
                }
                domain = d
            }
            if text.isEmpty { continue }
            docs.append(Document(domain: domain, source: "\(file):\(lineNumber)", text: text))
        }
        return docs
    }

    /// Reads a folder of .txt files: files in subfolder `x/` belong to domain `x`; files directly
    /// in the folder belong to `tag` (default: the folder's name). One file is one document.
    public static func textFolder(_ url: URL, tag: String? = nil) throws -> Corpus {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue else {
            throw DataError.unreadableFile(path: url.path, reason: "not a directory")
        }
        guard let walker = fm.enumerator(at: url, includingPropertiesForKeys: nil) else {
            throw DataError.unreadableFile(path: url.path, reason: "cannot list the directory")
        }
        let rootDepth = url.standardizedFileURL.pathComponents.count
        var files: [(domain: String, rel: String, url: URL)] = []
        for case let file as URL in walker where file.pathExtension == "txt" {
            let parts = file.standardizedFileURL.pathComponents
            let relParts = Array(parts.dropFirst(rootDepth))
            let domain = relParts.count >= 2 ? relParts[0] : (tag ?? url.lastPathComponent)
            files.append((domain, relParts.joined(separator: "/"), file))
        }
        files.sort { $0.rel < $1.rel }
        var docs: [Document] = []
        for f in files {
            guard let bytes = fm.contents(atPath: f.url.path) else {
                throw DataError.unreadableFile(path: f.url.path, reason: "cannot read the file")
            }
            let text = String(decoding: bytes, as: UTF8.self)
            if text.isEmpty { continue }
            docs.append(Document(domain: f.domain, source: f.rel, text: text))
        }
        guard !docs.isEmpty else { throw DataError.emptyInput("\(url.path) has no non-empty .txt files") }
        return grouping(docs, version: "txt:\(url.lastPathComponent)")
    }
}
