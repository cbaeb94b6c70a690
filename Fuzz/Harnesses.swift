// libFuzzer harnesses for every decoder of outside bytes (DESIGN.md, "Messages"). One binary; the environment
// variable FI_FUZZ_TARGET picks the harness. Built and run by scripts/fuzz (swiftc -sanitize=fuzzer,address over
// library modules that SwiftPM built with the same sanitizers).
//
// The contract each harness checks: the decoder returns a value or throws its own typed error. A crash, a
// sanitizer report, a hang or any other error type is a finding (the last one is turned into a crash here, so
// libFuzzer keeps the input).
import Bus
import CMessages
import Experiments  // the experiment file parser
import EdgeEnvironment
import Engine
import Foundation
import Messages
import Tokenizers

enum Harness: String, CaseIterable {
    /// Envelope.decode over a multipart message: frames are separated by "FRM|".
    case envelope
    /// Every Envelope body: byte 0 picks the body field, the rest are its protobuf bytes.
    case body
    /// The tap: Envelope decoding plus the JSON line it prints for what it decoded.
    case tap
    /// A safetensors buffer: 8-byte header length, JSON header, data.
    case safetensors
    /// A Hugging Face config.json (GPT-2 or a Llama-family model).
    case modelConfig = "model-config"
    /// A PEFT adapter_config.json, next to a valid adapter_model.safetensors for the tiny model.
    case peftConfig = "peft-config"
    /// GPT-2 vocab.json (with a fixed merges.txt).
    case gpt2Vocab = "gpt2-vocab"
    /// GPT-2 merges.txt (with a fixed byte-level vocab.json).
    case gpt2Merges = "gpt2-merges"
    /// A Hugging Face tokenizer.json.
    case tokenizerJSON = "tokenizer-json"
    /// A scenario file, YAML (and the same bytes as JSON).
    case scenario
    /// An experiment file (YAML).
    case experiment

    func run(_ bytes: [UInt8]) {
        switch self {
        case .envelope: envelope(bytes)
        case .body: body(bytes)
        case .tap: tap(bytes)
        case .safetensors: _ = try? SafeTensors.decode(Data(bytes), file: "fuzz.safetensors")  // throws(EngineError)
        case .modelConfig:
            let dir = Scratch.folder("model")
            Scratch.write(bytes, dir.appendingPathComponent("config.json"))
            _ = try? LanguageModel.loadConfig(dir)  // throws(EngineError)
        case .peftConfig:
            let dir = Scratch.peftFolder()
            Scratch.write(bytes, dir.appendingPathComponent("adapter_config.json"))
            _ = try? LoRAAdapter.load(directory: dir, model: .tiny)  // throws(EngineError)
        case .gpt2Vocab: gpt2Tokenizer(vocab: bytes, merges: Array(Scratch.gpt2Merges.utf8))
        case .gpt2Merges: gpt2Tokenizer(vocab: Array(Scratch.gpt2Vocab.utf8), merges: bytes)
        case .tokenizerJSON:
            let file = Scratch.folder("tokenizer").appendingPathComponent("tokenizer.json")
            Scratch.write(bytes, file)
            expect(TokenizerError.self) { exercise(try BPETokenizer(tokenizerJSON: file), bytes) }
        case .scenario:
            let text = String(decoding: bytes, as: UTF8.self)
            expect(ScenarioError.self) { _ = try Scenario.decode(yaml: text) }
            expect(ScenarioError.self) { _ = try Scenario.decode(json: Data(bytes)) }
        case .experiment:
            // Run from the repository root (scripts/fuzz): relative paths (scenario: examples/...) resolve as in `fi run`.
            expect(ExperimentError.self) { _ = try Experiment.parse(yaml: String(decoding: bytes, as: UTF8.self)) }
        }
    }

    private func envelope(_ bytes: [UInt8]) {
        let frames = split(bytes, separator: Array("FRM|".utf8))
        let limits = DecodeLimits(maxBytes: 1 << 20, maxFrames: 64)
        var decoded: Envelope?
        expect(MessageError.self) { decoded = try Envelope.decode(frames: frames, limits: limits) }
        // What decodes must survive a round trip unchanged (no silent corruption), inline and as external frames.
        // Compared as encoded bytes: a NaN is unequal to itself, but its bits must come back the same.
        guard let env = decoded else { return }
        for threshold in [Int.max, 8] {
            var again: Envelope?
            expect(MessageError.self) { again = try Envelope.decode(frames: env.encodeFrames(externalThreshold: threshold)) }
            guard again?.encode() == env.encode() else { fatalError("round trip changed a decoded envelope: \(env) -> \(String(describing: again))") }
        }
    }

    private func body(_ bytes: [UInt8]) {
        guard let selector = bytes.first else { return }
        let fields = Self.bodyFields
        let field = fields[Int(selector) % fields.count]
        let payload = Array(bytes.dropFirst())
        // version = protocolVersion (field 1, varint), then the body as a length-delimited field.
        var header: [UInt8] = [0x08]
        header += varint(UInt64(protocolVersion))
        header += varint(UInt64(field) << 3 | 2) + varint(UInt64(payload.count)) + payload
        expect(MessageError.self) { _ = try Envelope.decode(frames: [header], limits: DecodeLimits(maxBytes: 1 << 20, maxFrames: 64)) }
    }

    private func tap(_ bytes: [UInt8]) {
        var session = TapSession(json: true, limits: DecodeLimits(maxBytes: 1 << 20, maxFrames: 64))
        let frames = split(bytes, separator: Array("FRM|".utf8))
        for line in session.consume(frames) + [session.summary()] where line.text.hasPrefix("{") {
            guard (try? JSONSerialization.jsonObject(with: Data(line.text.utf8))) != nil else {
                fatalError("the tap printed a line that is not JSON: \(line.text)")
            }
        }
    }

    private func gpt2Tokenizer(vocab: [UInt8], merges: [UInt8]) {
        let dir = Scratch.folder("gpt2")
        let vocabFile = dir.appendingPathComponent("vocab.json"), mergesFile = dir.appendingPathComponent("merges.txt")
        Scratch.write(vocab, vocabFile)
        Scratch.write(merges, mergesFile)
        expect(TokenizerError.self) { exercise(try BPETokenizer(vocabURL: vocabFile, mergesURL: mergesFile), vocab + merges) }
    }

    /// A loaded tokenizer encodes and decodes text (the input itself, as text) without crashing.
    private func exercise(_ tokenizer: BPETokenizer, _ bytes: [UInt8]) {
        let text = "Hello, world! 123 " + String(decoding: bytes.prefix(64), as: UTF8.self)
        _ = tokenizer.decode(tokenizer.encode(text))
    }

    /// The field numbers of Envelope's `body` oneof, read from the protobuf-c descriptor, so new bodies are fuzzed too.
    static let bodyFields: [UInt32] = {
        let d = fi__v1__envelope__descriptor
        return (0..<Int(d.n_fields)).compactMap { i in
            let f = d.fields[i]
            return f.flags & UInt32(PROTOBUF_C_FIELD_FLAG_ONEOF.rawValue) != 0 ? f.id : nil
        }
    }()
}

/// Runs `body`; any error other than `E` is a finding.
func expect<E: Error>(_: E.Type, _ body: () throws -> Void) {
    do { try body() } catch is E {} catch {
        fatalError("untyped error \(type(of: error)): \(error)")
    }
}

func split(_ bytes: [UInt8], separator: [UInt8]) -> [[UInt8]] {
    var out: [[UInt8]] = [], start = 0, i = 0
    while i + separator.count <= bytes.count {
        if bytes[i..<(i + separator.count)].elementsEqual(separator) {
            out.append(Array(bytes[start..<i]))
            i += separator.count
            start = i
        } else {
            i += 1
        }
    }
    out.append(Array(bytes[start...]))
    return out
}

func varint(_ value: UInt64) -> [UInt8] {
    var v = value, out: [UInt8] = []
    repeat {
        out.append(UInt8(v & 0x7f) | (v > 0x7f ? 0x80 : 0))
        v >>= 7
    } while v > 0
    return out
}

/// Per-process files for decoders that read from disk (tmpfs when there is one).
enum Scratch {
    static let root: URL = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let url = URL(fileURLWithPath: base).appendingPathComponent("fi-fuzz-\(getpid())")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(at: Scratch.root) }
        return url
    }()

    static func folder(_ name: String) -> URL {
        let url = root.appendingPathComponent(name)
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func write(_ bytes: [UInt8], _ url: URL) {
        guard FileManager.default.createFile(atPath: url.path, contents: Data(bytes)) else { fatalError("cannot write \(url.path)") }
    }

    /// A PEFT folder whose adapter_model.safetensors fits the tiny model (rank 2 on c_attn: A [2, 32], B [96, 2]),
    /// checked once to load with the adapter_config.json it was saved with, so the harness fuzzes the config, not a
    /// fixture that no longer fits.
    static let peft: URL = {
        let dir = folder("peft")
        let config = LoRAConfig(rank: 2, alpha: 4, targets: [.attnQKV])
        let tensors = (0..<ModelConfig.tiny.layers).flatMap { l in
            [NamedTensor(name: LoRAAdapter.key(layer: l, target: .attnQKV, isA: true), shape: [2, 32], values: [Float](repeating: 0.5, count: 64)),
             NamedTensor(name: LoRAAdapter.key(layer: l, target: .attnQKV, isA: false), shape: [96, 2], values: [Float](repeating: 0, count: 192))]
        }
        do {
            try LoRAAdapter(config: config, layers: ModelConfig.tiny.layers, tensors: tensors).save(directory: dir)
            _ = try LoRAAdapter.load(directory: dir, model: .tiny)
        } catch { fatalError("the PEFT fixture does not load: \(error)") }
        return dir
    }()

    static func peftFolder() -> URL { peft }

    /// A valid GPT-2 byte-level vocab (the 256 byte symbols of bytes_to_unicode, then a few merged tokens) and its
    /// merges, the fixed half of the gpt2-vocab and gpt2-merges harnesses.
    static let gpt2Vocab: String = {
        var printable = Array(33...126) + Array(161...172) + Array(174...255)
        var symbols = printable
        var next = 256
        for b in 0..<256 where !printable.contains(b) {
            printable.append(b)
            symbols.append(next)
            next += 1
        }
        var vocab: [String: Int] = [:]
        for (i, s) in symbols.enumerated() { vocab[String(Character(Unicode.Scalar(UInt32(s))!))] = i }
        for (i, t) in ["Ġt", "he", "Ġthe", "in", "<|endoftext|>"].enumerated() { vocab[t] = 256 + i }
        guard let data = try? JSONSerialization.data(withJSONObject: vocab, options: [.sortedKeys]) else { fatalError("vocab fixture") }
        return String(decoding: data, as: UTF8.self)
    }()

    static let gpt2Merges = "#version: 0.2\nĠ t\nh e\nĠt he\ni n\n"
}

nonisolated(unsafe) var selected: Harness?

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>) -> CInt {
    let name = ProcessInfo.processInfo.environment["FI_FUZZ_TARGET"] ?? ""
    guard let harness = Harness(rawValue: name) else {
        FileHandle.standardError.write(Data("set FI_FUZZ_TARGET to one of: \(Harness.allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
        exit(2)
    }
    selected = harness
    _ = Scratch.root
    if harness == .peftConfig { _ = Scratch.peft }
    if harness == .gpt2Vocab || harness == .gpt2Merges {  // the fixed halves must load, or nothing gets past them
        let dir = Scratch.folder("gpt2-check")
        Scratch.write(Array(Scratch.gpt2Vocab.utf8), dir.appendingPathComponent("vocab.json"))
        Scratch.write(Array(Scratch.gpt2Merges.utf8), dir.appendingPathComponent("merges.txt"))
        do { _ = try BPETokenizer(vocabURL: dir.appendingPathComponent("vocab.json"), mergesURL: dir.appendingPathComponent("merges.txt")) }
        catch { fatalError("the GPT-2 fixture does not load: \(error)") }
    }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    selected?.run(bytes)
    return 0
}
