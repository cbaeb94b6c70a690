import Data
import Foundation
import XCTest

final class CorpusTests: XCTestCase {
    func testJSONLReadsTextAndDomainFields() throws {
        let jsonl = """
        {"text": "first", "domain": "law"}

        {"text": "second"}
        {"text": "third", "domain": "law", "id": 3}
        """
        let docs = try Corpus.parseJSONL(Foundation.Data(jsonl.utf8), file: "x.jsonl", defaultDomain: "user")
        XCTAssertEqual(docs.map(\.text), ["first", "second", "third"])
        XCTAssertEqual(docs.map(\.domain), ["law", "user", "law"])
        XCTAssertEqual(Corpus.grouping(docs, version: "v").domainNames, ["law", "user"])
    }

    func testMalformedJSONLLineReportsItsLineNumber() {
        let cases: [(String, Int)] = [
            ("{\"text\": \"ok\"}\n{\"text\": \"ok\"}\n{\"text\": oops}\n", 3),
            ("{\"text\": \"ok\"}\n\n[1, 2]\n", 3),
            ("{\"body\": \"no text\"}\n", 1),
            ("{\"text\": \"a\"}\n{\"text\": \"b\", \"domain\": 7}\n", 2),
        ]
        for (input, line) in cases {
            XCTAssertThrowsError(try Corpus.parseJSONL(Foundation.Data(input.utf8), file: "in.jsonl", defaultDomain: "u")) { error in
                guard case let DataError.malformedJSONL(file, got, _) = error else { return XCTFail("got \(error)") }
                XCTAssertEqual(file, "in.jsonl")
                XCTAssertEqual(got, line)
                XCTAssertTrue("\(error)".contains("in.jsonl:\(line)"))
            }
        }
    }

    func testTextFolderUsesSubfolderNamesAsDomains() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fm = FileManager.default
        try fm.createDirectory(at: dir.appendingPathComponent("poems"), withIntermediateDirectories: true)
        try fm.createDirectory(at: dir.appendingPathComponent("recipes"), withIntermediateDirectories: true)
        try Foundation.Data("roses".utf8).write(to: dir.appendingPathComponent("poems/a.txt"))
        try Foundation.Data("violets".utf8).write(to: dir.appendingPathComponent("poems/b.txt"))
        try Foundation.Data("flour".utf8).write(to: dir.appendingPathComponent("recipes/c.txt"))
        try Foundation.Data("loose".utf8).write(to: dir.appendingPathComponent("top.txt"))
        try Foundation.Data("ignored".utf8).write(to: dir.appendingPathComponent("notes.md"))
        let corpus = try Corpus.textFolder(dir, tag: "misc")
        XCTAssertEqual(corpus.domainNames, ["poems", "recipes", "misc"])
        XCTAssertEqual(corpus.domains[0].documents.map(\.text), ["roses", "violets"])
        XCTAssertEqual(corpus.domains[2].documents.map(\.text), ["loose"])
    }

    func testMissingBuiltinCorpusNamesTheDebianPackage() throws {
        let empty = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: empty) }
        let expected: [(BuiltinDomain, String)] = [
            (.englishFortunes, "fortunes"), (.germanFortunes, "fortunes-de"), (.bibleKJV, "bible-kjv-text"), (.manPages, "manpages"),
        ]
        for (domain, package) in expected {
            XCTAssertThrowsError(try Corpus.builtin(cache: nil, root: empty, domains: [domain])) { error in
                guard case let DataError.missingCorpus(name, _, got) = error else { return XCTFail("got \(error)") }
                XCTAssertEqual(name, domain.rawValue)
                XCTAssertEqual(got, package)
                XCTAssertTrue("\(error)".contains("apt-get install \(package)"))
            }
        }
    }

    func testFortuneFilesSplitAtPercentLinesAndSkipOffensiveAndIndexFiles() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let dir = root.appendingPathComponent("usr/share/games/fortunes/de")
        let fm = FileManager.default
        try fm.createDirectory(at: dir.appendingPathComponent("off"), withIntermediateDirectories: true)
        try Foundation.Data("Erstens.\n%\nZweitens,\nmit zwei Zeilen.\n%\n".utf8).write(to: dir.appendingPathComponent("a"))
        try Foundation.Data("binary".utf8).write(to: dir.appendingPathComponent("a.dat"))
        try fm.createSymbolicLink(atPath: dir.appendingPathComponent("a.u8").path, withDestinationPath: "a")
        try Foundation.Data("Rot13 grkg".utf8).write(to: dir.appendingPathComponent("off/b"))
        let corpus = try Corpus.builtin(cache: nil, root: root, domains: [.germanFortunes])
        XCTAssertEqual(corpus.domains[0].documents.map(\.text), ["Erstens.", "Zweitens,\nmit zwei Zeilen."])
    }

    func testChunksStayUnderTheTargetSizeAndKeepAllText() throws {
        let long = (0..<400).map { "line \($0) with some words" }.joined(separator: "\n")
        let corpus = Corpus(version: "v", domains: [DomainDocuments(name: "d", documents: (0..<20).map {
            Document(domain: "d", source: "\($0)", text: "doc \($0)\n" + long)
        })])
        let chunked = try ChunkedCorpus(corpus: corpus, chunkBytes: 700)
        XCTAssertTrue(chunked.chunks.allSatisfy { $0.text.utf8.count <= 700 })
        let allText = chunked.chunks.map(\.text).joined(separator: "\n")
        XCTAssertEqual(allText.components(separatedBy: "line 399 with").count - 1, 20)
    }

    /// The real corpus (scripts/bootstrap installs its packages). Extraction is cached under a
    /// temporary folder for this run only.
    func testBuiltinCorpusHasEveryDomainAboveThreeHundredKilobytes() throws {
        let cache = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: cache) }
        let corpus = try Corpus.builtin(cache: cache)
        XCTAssertEqual(corpus.domainNames, BuiltinDomain.allCases.map(\.rawValue))
        for d in corpus.domains {
            XCTAssertGreaterThanOrEqual(d.bytes, 300 * 1024, "\(d.name) has \(d.bytes / 1024) KB")
        }
        let bible = corpus.domains.first { $0.name == "bible-kjv" }
        XCTAssertEqual(bible?.documents.count, 1189, "one document per chapter")
        XCTAssertTrue(bible?.documents.first?.text.hasPrefix("In the beginning God created") ?? false)
        let cached = try Corpus.builtin(cache: cache)
        XCTAssertEqual(cached, corpus, "the cache gives back the same corpus")

        // The held-out rule on the real corpus: no test document is in the general corpus.
        let chunked = try ChunkedCorpus(corpus: corpus)
        let general = Set(chunked.generalDocumentTexts)
        for name in corpus.domainNames {
            let tests = chunked.testDocumentTexts[name] ?? []
            XCTAssertGreaterThan(tests.count, 50, "\(name) test set")
            XCTAssertTrue(general.isDisjoint(with: tests), "\(name): a test document is in the general corpus")
        }
    }
}
