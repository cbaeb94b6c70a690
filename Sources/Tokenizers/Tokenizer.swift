/// Turns text into token ids and back. Token ids are `Int32` everywhere in the project.
public protocol Tokenizer: Sendable {
    var vocabSize: Int { get }
    func encode(_ text: String) -> [Int32]
    func decode(_ tokens: [Int32]) -> String
}

/// The default: token id = byte value (vocab 256). A model folder without
/// vocab.json/merges.txt uses it.
public struct ByteTokenizer: Tokenizer {
    public init() {}
    public var vocabSize: Int { 256 }
    public func encode(_ text: String) -> [Int32] { text.utf8.map { Int32($0) } }
    public func decode(_ tokens: [Int32]) -> String {
        String(decoding: tokens.map { UInt8(clamping: $0) }, as: UTF8.self)
    }
}
