import Engine
import Foundation
import Tokenizers

/// Opens a model folder: weights, and the tokenizer the folder implies (GPT-2 BPE when vocab.json and merges.txt are there, else bytes).
enum ModelFolder {
    static func tokenizer(for directory: URL) throws -> any Tokenizer {
        try loadTokenizer(modelDir: directory)
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
