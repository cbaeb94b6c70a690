import Foundation

/// The downstream domains built from public-domain text that Debian packages ship.
public enum BuiltinDomain: String, CaseIterable, Sendable, Codable {
    case englishFortunes = "english-fortunes"
    case germanFortunes = "german-fortunes"
    case spanishFortunes = "spanish-fortunes"
    case italianFortunes = "italian-fortunes"
    case bibleKJV = "bible-kjv"
    case manPages = "man-pages"

    /// The package that ships the text (scripts/bootstrap installs all of them).
    public var debianPackage: String {
        switch self {
        case .englishFortunes: "fortunes"
        case .germanFortunes: "fortunes-de"
        case .spanishFortunes: "fortunes-es"
        case .italianFortunes: "fortunes-it"
        case .bibleKJV: "bible-kjv"
        case .manPages: "manpages"
        }
    }
}

extension Corpus {
    /// Bump when extraction changes: it keys the cache and is recorded in every manifest.
    public static let builtinVersion = "builtin-v1"

    /// `~/.cache/fi/corpus` (or `$XDG_CACHE_HOME/fi/corpus`).
    public static var defaultCacheDirectory: URL {
        let env = ProcessInfo.processInfo.environment
        let base = env["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        return base.appendingPathComponent("fi/corpus")
    }

    /// The built-in corpus. `root` is where the Debian files live ("/" normally; tests point it at
    /// an empty folder). Extraction runs once; later calls read `cache` (nil: no cache).
    /// Exact duplicate documents are dropped (first one kept, in domain order).
    public static func builtin(cache: URL? = defaultCacheDirectory,
                               root: URL = URL(fileURLWithPath: "/"),
                               domains: [BuiltinDomain] = BuiltinDomain.allCases) throws -> Corpus {
        let extractor = BuiltinExtractor(root: root)
        let key = "\(builtinVersion)-\(String(fnv1a64(Array(root.standardizedFileURL.path.utf8)), radix: 16))"
        let cacheDir = cache?.appendingPathComponent(key)
        var seen = Set<String>()
        var result: [DomainDocuments] = []
        for domain in domains {
            let docs = try cached(cacheDir, name: domain.rawValue) { try extractor.extract(domain) }
            result.append(DomainDocuments(name: domain.rawValue, documents: docs.filter { seen.insert($0.text).inserted }))
        }
        let extra = try cached(cacheDir, name: "general-extra") { extractor.licenseTexts() }
        return Corpus(version: builtinVersion, domains: result, generalOnly: extra.filter { seen.insert($0.text).inserted })
    }

    /// Cache file format: records `source US text RS` (0x1F, 0x1E never occur in extracted text).
    private static func cached(_ dir: URL?, name: String, _ make: () throws -> [Document]) throws -> [Document] {
        guard let dir else { return try make() }
        let file = dir.appendingPathComponent("\(name).docs")
        if let bytes = FileManager.default.contents(atPath: file.path) {
            var docs: [Document] = []
            for record in bytes.split(separator: 0x1E) {
                guard let us = record.firstIndex(of: 0x1F) else { continue }
                docs.append(Document(domain: name,
                                     source: String(decoding: record[record.startIndex..<us], as: UTF8.self),
                                     text: String(decoding: record[(us + 1)...], as: UTF8.self)))
            }
            if !docs.isEmpty || name == "general-extra" { return docs }
        }
        let docs = try make()
        var out = [UInt8]()
        for d in docs {
            out += d.source.utf8
            out.append(0x1F)
            out += d.text.utf8
            out.append(0x1E)
        }
        // A cache we cannot write only costs time, so failures are ignored.
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try? Foundation.Data(out).write(to: file, options: .atomic)
        return docs
    }
}

/// Reads each domain from the Debian files under `root`.
struct BuiltinExtractor {
    let root: URL

    func path(_ p: String) -> URL { root.appendingPathComponent(p) }

    func extract(_ domain: BuiltinDomain) throws -> [Document] {
        switch domain {
        case .englishFortunes: return try fortunes(domain, dir: "usr/share/games/fortunes")
        case .germanFortunes: return try fortunes(domain, dir: "usr/share/games/fortunes/de")
        case .spanishFortunes: return try fortunes(domain, dir: "usr/share/games/fortunes/es")
        case .italianFortunes: return try fortunes(domain, dir: "usr/share/games/fortunes/it")
        case .bibleKJV: return try bible()
        case .manPages: return try manPages()
        }
    }

    /// Regular files of `dir` in name order: no symlinks (the .u8 links, and the top-level links
    /// into it/), no strfile indexes (.dat), no subfolders (so `off/`, the offensive ROT13 set, and
    /// the other languages stay out).
    func regularFiles(_ dir: URL) -> [URL] {
        let fm = FileManager.default
        let names = (try? fm.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.sorted().compactMap { name in
            if name.hasPrefix(".") || name.hasSuffix(".dat") || name.hasSuffix(".u8") { return nil }
            let url = dir.appendingPathComponent(name)
            guard let attrs = try? fm.attributesOfItem(atPath: url.path),
                  attrs[.type] as? FileAttributeType == .typeRegular else { return nil }
            return url
        }
    }

    /// strfile source format: entries separated by lines holding a single `%`.
    func fortunes(_ domain: BuiltinDomain, dir: String) throws -> [Document] {
        let files = regularFiles(path(dir))
        guard !files.isEmpty else {
            throw DataError.missingCorpus(domain: domain.rawValue, path: path(dir).path, debianPackage: domain.debianPackage)
        }
        var docs: [Document] = []
        for file in files {
            guard let bytes = FileManager.default.contents(atPath: file.path) else { continue }
            let text = clean(String(decoding: bytes, as: UTF8.self))
            var entry: [Substring] = []
            var index = 0
            func flush() {
                let body = entry.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
                if !body.isEmpty {
                    docs.append(Document(domain: domain.rawValue, source: "\(file.lastPathComponent)#\(index)", text: body))
                    index += 1
                }
                entry.removeAll(keepingCapacity: true)
            }
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                if line == "%" { flush() } else { entry.append(line) }
            }
            flush()
        }
        return docs
    }

    /// `bible -f` (pretty-printing off) prints every verse on one line as `Ge1:1 text`.
    /// One document per chapter, verse references stripped.
    func bible() throws -> [Document] {
        let domain = BuiltinDomain.bibleKJV
        let dataDir = path("usr/lib")
        guard FileManager.default.fileExists(atPath: dataDir.appendingPathComponent("bible.data").path) else {
            throw DataError.missingCorpus(domain: domain.rawValue, path: dataDir.appendingPathComponent("bible.data").path,
                                          debianPackage: "bible-kjv-text")
        }
        let candidates = [path("usr/bin/bible").path, "/usr/bin/bible", "/usr/games/bible"]
        guard let program = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw DataError.missingCorpus(domain: domain.rawValue, path: "/usr/bin/bible", debianPackage: "bible-kjv")
        }
        let output = try run(program, ["-f", "-p", dataDir.path, "Gen1:1-Rev22:21"], domain: domain.rawValue)
        var docs: [Document] = []
        var chapter = ""
        var verses: [Substring] = []
        func flush() {
            if !verses.isEmpty {
                docs.append(Document(domain: domain.rawValue, source: chapter, text: verses.joined(separator: "\n")))
            }
            verses.removeAll(keepingCapacity: true)
        }
        for line in clean(String(decoding: output, as: UTF8.self)).split(separator: "\n") {
            guard let space = line.firstIndex(of: " "), let colon = line[..<space].firstIndex(of: ":") else { continue }
            let key = String(line[..<colon])
            if key != chapter { flush(); chapter = key }
            verses.append(line[line.index(after: space)...])
        }
        flush()
        guard docs.count > 1000 else {
            throw DataError.extractionFailed(domain: domain.rawValue, command: "\(program) -f Gen1:1-Rev22:21",
                                             reason: "got \(docs.count) chapters, expected 1189")
        }
        return docs
    }

    /// Sections 5 (file formats) and 7 (overviews) of the English man pages, roff stripped to
    /// text. One `sh` runs gzip over all files (one process, not hundreds), separating pages by 0x1E.
    func manPages() throws -> [Document] {
        let domain = BuiltinDomain.manPages
        let files = ["usr/share/man/man5", "usr/share/man/man7"].flatMap { dir in
            regularFiles(path(dir)).filter { $0.pathExtension == "gz" }
        }
        guard files.count >= 20 else {
            throw DataError.missingCorpus(domain: domain.rawValue, path: path("usr/share/man/man7").path,
                                          debianPackage: domain.debianPackage)
        }
        let gzip = ["/bin/gzip", "/usr/bin/gzip"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/bin/gzip"
        let script = "for f in \"$@\"; do \(gzip) -dc -- \"$f\"; printf '\\036'; done"
        let output = try run("/bin/sh", ["-c", script, "sh"] + files.map(\.path), domain: domain.rawValue)
        let pages = output.split(separator: 0x1E, omittingEmptySubsequences: false)
        guard pages.count >= files.count else {
            throw DataError.extractionFailed(domain: domain.rawValue, command: "gzip -dc",
                                             reason: "got \(pages.count) pages for \(files.count) files")
        }
        var docs: [Document] = []
        for (file, page) in zip(files, pages) {
            let source = String(decoding: page, as: UTF8.self)
            if source.hasPrefix(".so ") { continue }  // a redirect to another page
            let text = clean(Roff.plainText(source))
            if text.utf8.count < 200 { continue }
            docs.append(Document(domain: domain.rawValue, source: file.lastPathComponent, text: text))
        }
        return docs
    }

    /// License texts for the general corpus only (base-files ships them; absent is fine).
    func licenseTexts() -> [Document] {
        regularFiles(path("usr/share/common-licenses")).compactMap { file in
            guard let bytes = FileManager.default.contents(atPath: file.path) else { return nil }
            let text = clean(String(decoding: bytes, as: UTF8.self)).trimmingCharacters(in: .whitespacesAndNewlines)
            return text.isEmpty ? nil : Document(domain: "general-extra", source: file.lastPathComponent, text: text)
        }
    }

    /// Drops CR and the two separators the cache format uses.
    func clean(_ s: String) -> String {
        guard s.utf8.contains(where: { $0 == 0x0D || $0 == 0x1E || $0 == 0x1F }) else { return s }
        return String(String.UnicodeScalarView(s.unicodeScalars.filter { $0 != "\r" && $0 != "\u{1E}" && $0 != "\u{1F}" }))
    }

    func run(_ program: String, _ arguments: [String], domain: String) throws -> Foundation.Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        let command = ([program] + arguments.prefix(3)).joined(separator: " ")
        do { try process.run() } catch {
            throw DataError.extractionFailed(domain: domain, command: command, reason: "\(error)")
        }
        // Read before waiting, so a full pipe cannot block the child.
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw DataError.extractionFailed(domain: domain, command: command, reason: "exit status \(process.terminationStatus)")
        }
        return output
    }
}
