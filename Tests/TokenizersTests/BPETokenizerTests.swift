import Foundation
import Tokenizers
import XCTest

/// A hand-made GPT-2-style vocab: the 256 byte symbols (ids 0...255, in byte order) plus the
/// results of `merges`, plus `<|endoftext|>`.
let fixtureMerges: [(String, String)] = [
    ("h", "e"), ("l", "l"), ("ll", "o"), ("he", "llo"),       // "hello"
    ("Ġ", "w"), ("o", "r"), ("Ġw", "or"), ("l", "d"), ("Ġwor", "ld"),  // " world"
    ("Ġ", "t"), ("Ġt", "he"),                                   // " the"
]

func fixtureVocab() -> [String: Int32] {
    var vocab: [String: Int32] = [:]
    for (b, c) in BPETokenizer.byteToUnicode.enumerated() { vocab[String(c)] = Int32(b) }
    for (i, m) in fixtureMerges.enumerated() where vocab[m.0 + m.1] == nil { vocab[m.0 + m.1] = Int32(256 + i) }
    vocab["<|endoftext|>"] = 300
    return vocab
}

func writeFixture(to dir: URL, merges: String? = nil) throws {
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    try JSONSerialization.data(withJSONObject: fixtureVocab()).write(to: dir.appendingPathComponent("vocab.json"))
    let text = merges ?? ("#version: 0.2\n" + fixtureMerges.map { "\($0.0) \($0.1)" }.joined(separator: "\n") + "\n")
    try Foundation.Data(text.utf8).write(to: dir.appendingPathComponent("merges.txt"))
}

func temporaryDirectory(_ name: String = #function) -> URL {
    FileManager.default.temporaryDirectory
        .appendingPathComponent("fi-tok-tests-\(name.filter { $0.isLetter })-\(ProcessInfo.processInfo.processIdentifier)")
}

final class BPETokenizerTests: XCTestCase {
    func testByteToUnicodeMatchesGPT2() {
        let table = BPETokenizer.byteToUnicode
        XCTAssertEqual(Set(table).count, 256)
        XCTAssertEqual(table[Int(UInt8(ascii: " "))], "Ġ")
        XCTAssertEqual(table[Int(UInt8(ascii: "\n"))], "Ċ")
        XCTAssertEqual(table[Int(UInt8(ascii: "A"))], "A")
        XCTAssertEqual(table[0], "Ā")
        XCTAssertEqual(table[173], "Ń")  // soft hyphen is not printable, so it is remapped
    }

    func testPreTokenizerSplitsLikeTheGPT2Pattern() {
        XCTAssertEqual(GPT2PreTokenizer.split("Hello world's  2024 tests!!\n\nok"),
                       ["Hello", " world", "'s", " ", " 2024", " tests", "!!", "\n", "\n", "ok"])
        XCTAssertEqual(GPT2PreTokenizer.split("I'll don't we've they're I'm he'd"),
                       ["I", "'ll", " don", "'t", " we", "'ve", " they", "'re", " I", "'m", " he", "'d"])
        XCTAssertEqual(GPT2PreTokenizer.split("a  \n\tb end   "), ["a", "  \n", "\t", "b", " end", "   "])
        XCTAssertEqual(GPT2PreTokenizer.split("naïve café x²3 ?!'s"), ["naïve", " café", " x", "²3", " ?!'", "s"])
        XCTAssertEqual(GPT2PreTokenizer.split(""), [])
    }

    func testKnownMergesProduceTheExpectedTokens() throws {
        let tok = try BPETokenizer(vocab: fixtureVocab(), merges: fixtureMerges)
        let vocab = fixtureVocab()
        XCTAssertEqual(tok.encode("hello world"), [vocab["hello"]!, vocab["Ġworld"]!])
        // "hell": "h e" (rank 0) and "l l" (rank 1) apply, "ll o" has no o.
        XCTAssertEqual(tok.encode("hell"), [vocab["he"]!, vocab["ll"]!])
        XCTAssertEqual(tok.encode(" the"), [vocab["Ġthe"]!])
        XCTAssertEqual(tok.encode("Hi"), [Int32(UInt8(ascii: "H")), Int32(UInt8(ascii: "i"))])
        XCTAssertEqual(tok.encode("hello<|endoftext|> world"), [vocab["hello"]!, 300, vocab["Ġworld"]!])
        XCTAssertEqual(tok.vocabSize, 301)
    }

    func testEncodeDecodeRoundTripsAnyText() throws {
        let tok = try BPETokenizer(vocab: fixtureVocab(), merges: fixtureMerges)
        for text in ["hello world, the world says hello!", "naïve café 😀 日本語\n\n\tend ", "<|endoftext|>x<|not special|>", ""] {
            XCTAssertEqual(tok.decode(tok.encode(text)), text)
        }
        // " hello" has no "Ġ h" merge: Ġ + hello. The second " hello" comes from the cache.
        let hello = fixtureVocab()["hello"]!, space = Int32(UInt8(ascii: " "))
        XCTAssertEqual(tok.encode("hello hello hello"), [hello, space, hello, space, hello])
        XCTAssertEqual(tok.decode([9999]), "", "unknown ids decode to nothing")
    }

    func testLoadTokenizerPicksBPEWhenFilesExistAndBytesOtherwise() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        XCTAssertTrue(try loadTokenizer(modelDir: dir) is ByteTokenizer)
        try writeFixture(to: dir)
        let tok = try loadTokenizer(modelDir: dir)
        XCTAssertTrue(tok is BPETokenizer)
        XCTAssertEqual(tok.encode("hello world"), [fixtureVocab()["hello"]!, fixtureVocab()["Ġworld"]!])
        try FileManager.default.removeItem(at: dir.appendingPathComponent("merges.txt"))
        XCTAssertThrowsError(try loadTokenizer(modelDir: dir)) {
            XCTAssertEqual($0 as? TokenizerError, .missingFile(path: dir.appendingPathComponent("merges.txt").path))
        }
    }

    func testMalformedFilesGiveTypedErrors() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try writeFixture(to: dir, merges: "#version: 0.2\nh e\nthree parts here\n")
        XCTAssertThrowsError(try loadTokenizer(modelDir: dir)) {
            guard case let TokenizerError.malformedMerges(_, line, _) = $0 else { return XCTFail("got \($0)") }
            XCTAssertEqual(line, 3)
        }
        try writeFixture(to: dir)
        try Foundation.Data("[1, 2]".utf8).write(to: dir.appendingPathComponent("vocab.json"))
        XCTAssertThrowsError(try loadTokenizer(modelDir: dir)) {
            guard case TokenizerError.malformedVocab = $0 else { return XCTFail("got \($0)") }
        }
        try Foundation.Data("{\"a\": 0}".utf8).write(to: dir.appendingPathComponent("vocab.json"))
        XCTAssertThrowsError(try loadTokenizer(modelDir: dir)) {
            guard case let TokenizerError.malformedVocab(_, reason) = $0 else { return XCTFail("got \($0)") }
            XCTAssertTrue(reason.contains("256"))
        }
    }
}
