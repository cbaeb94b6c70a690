import Engine
import Foundation
import Tokenizers

/// Opens a model folder: weights, and the tokenizer the folder implies (bytes unless vocab.json is present).
enum ModelFolder {
    static func tokenizer(for directory: URL) throws -> any Tokenizer {
        let vocab = directory.appendingPathComponent("vocab.json")
        if FileManager.default.fileExists(atPath: vocab.path) {
            throw EngineError.tokenizerUnavailable(
                "\(directory.path) has vocab.json (GPT-2 BPE), but this build has no BPE tokenizer yet; use a byte-level model folder")
        }
        return ByteTokenizer()
    }

    static func readText(_ paths: [String]) throws -> String {
        var text = ""
        for p in paths {
            guard let data = FileManager.default.contents(atPath: p) else {
                throw EngineError.io(file: p, detail: "cannot read the text file")
            }
            text += String(decoding: data, as: UTF8.self)
        }
        return text
    }
}
