import Foundation
import Tokenizers
import XCTest

/// tokenizer.json fixtures trained and encoded by Hugging Face `tokenizers` (Fixtures/make_tokenizer_fixtures.py):
/// a Llama-3-style tokenizer (Split regex + ByteLevel, ignore_merges, chat special tokens) and a SmolLM-style one
/// (NFC, Digits, ByteLevel with GPT-2's regex). Samples mix scripts, digits, whitespace runs and special tokens.
final class TokenizerJSONTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    struct Sample: Decodable { let text: String; let ids: [Int32]; let decoded: String }

    func testEncodesAndDecodesEverySampleToTheReferenceIds() throws {
        let expected = try JSONDecoder().decode([String: [Sample]].self,
                                                from: Data(contentsOf: Self.fixtures.appendingPathComponent("expected.json")))
        XCTAssertEqual(Set(expected.keys), ["llama3-style", "smollm-style"])
        for (name, samples) in expected {
            let tok = try BPETokenizer(tokenizerJSON: Self.fixtures.appendingPathComponent(name + ".json"))
            for s in samples {
                XCTAssertEqual(tok.encode(s.text), s.ids, "\(name): \(s.text)")
                XCTAssertEqual(tok.decode(s.ids), s.decoded, "\(name): \(s.text)")
            }
            XCTAssertEqual(tok.specialTokens["<|im_start|>"], 2)
        }
    }

    func testModelFolderPrefersTokenizerJSON() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try writeFixture(to: dir)  // vocab.json + merges.txt
        XCTAssertEqual(try loadTokenizer(modelDir: dir).vocabSize, 301)
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("llama3-style.json"),
                                         to: dir.appendingPathComponent("tokenizer.json"))
        XCTAssertEqual(try loadTokenizer(modelDir: dir).vocabSize, 700)
    }

    func testMalformedOrUnsupportedTokenizerJSONIsATypedErrorNamingTheField() throws {
        let dir = temporaryDirectory()
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtures.appendingPathComponent("llama3-style.json"))) as! [String: Any]
        func variant(_ edit: (inout [String: Any]) -> Void) throws -> URL {
            var o = base
            edit(&o)
            let url = dir.appendingPathComponent("tokenizer.json")
            try JSONSerialization.data(withJSONObject: o).write(to: url)
            return url
        }
        let cases: [(String, (inout [String: Any]) -> Void)] = [
            ("model.type", { o in var m = o["model"] as! [String: Any]; m["type"] = "Unigram"; o["model"] = m }),
            ("model.byte_fallback", { o in var m = o["model"] as! [String: Any]; m["byte_fallback"] = true; o["model"] = m }),
            ("model.merges[1]", { o in var m = o["model"] as! [String: Any]; m["merges"] = ["a b", "abc"]; o["model"] = m }),
            ("model.vocab", { o in var m = o["model"] as! [String: Any]; m["vocab"] = ["a": 0]; o["model"] = m }),
            ("pre_tokenizer.pretokenizers[0].pattern", { o in
                o["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [["type": "Split", "pattern": ["Regex": "(unclosed"], "behavior": "Isolated"]]] }),
            ("pre_tokenizer.type", { o in o["pre_tokenizer"] = ["type": "Metaspace"] }),
            ("normalizer.type", { o in o["normalizer"] = ["type": "Lowercase"] }),
            ("added_tokens[0]", { o in o["added_tokens"] = [["content": "", "id": 3]] }),
        ]
        for (field, edit) in cases {
            let url = try variant(edit)
            XCTAssertThrowsError(try BPETokenizer(tokenizerJSON: url)) { error in
                guard case .badTokenizerJSON(let path, let f, _)? = error as? TokenizerError else { return XCTFail("\(field): \(error)") }
                XCTAssertEqual(path, url.path)
                XCTAssertEqual(f, field)
            }
        }
        try Data("not json".utf8).write(to: dir.appendingPathComponent("tokenizer.json"))
        XCTAssertThrowsError(try BPETokenizer(tokenizerJSON: dir.appendingPathComponent("tokenizer.json")))
    }
}
