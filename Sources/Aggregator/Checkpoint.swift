import Engine
import Federation
import Foundation

/// Atomic aggregator checkpoints: `<dir>/round-NNNNNN/` holds the adapter (PEFT safetensors) and state.json;
/// `<dir>/latest` names the newest one and is replaced by rename, so a crash leaves the previous checkpoint intact.
public struct CheckpointStore: Sendable {
    public struct State: Codable, Sendable, Equatable {
        public var round: UInt64
        public var version: UInt64
        public var paradigm: String
        public var bytesUp: Int
        public var bytesDown: Int
        public var simTimeS: Double
        /// A round driver's last message wire id (devices only accept rounds above what they trained).
        public var wire: UInt64?
        public init(round: UInt64, version: UInt64, paradigm: String, bytesUp: Int = 0, bytesDown: Int = 0, simTimeS: Double = 0,
                    wire: UInt64? = nil) {
            self.round = round; self.version = version; self.paradigm = paradigm
            self.bytesUp = bytesUp; self.bytesDown = bytesDown; self.simTimeS = simTimeS; self.wire = wire
        }
    }

    public let directory: URL
    public init(directory: URL) { self.directory = directory }

    /// `files`: a round driver's own state, written into the same checkpoint folder (name -> contents).
    public func save(state: State, adapter: LoRAAdapter, files: [String: Data] = [:]) throws {
        let fm = FileManager.default
        try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        let name = String(format: "round-%06llu", state.round)
        let temp = directory.appendingPathComponent(".\(name).\(getpid()).tmp")
        try? fm.removeItem(at: temp)
        try adapter.save(directory: temp)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(state).write(to: temp.appendingPathComponent("state.json"))
        for (name, data) in files { try data.write(to: temp.appendingPathComponent(name)) }
        let final = directory.appendingPathComponent(name)
        try? fm.removeItem(at: final)
        try fm.moveItem(at: temp, to: final)
        try Data(name.utf8).write(to: directory.appendingPathComponent("latest"), options: .atomic)
        // Keep the newest two.
        let old = (try? fm.contentsOfDirectory(atPath: directory.path))?.filter { $0.hasPrefix("round-") }.sorted().dropLast(2) ?? []
        for o in old { try? fm.removeItem(at: directory.appendingPathComponent(o)) }
    }

    /// The newest checkpoint's folder, or nil when there is none.
    var latest: URL? {
        guard let data = FileManager.default.contents(atPath: directory.appendingPathComponent("latest").path) else { return nil }
        return directory.appendingPathComponent(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// A file `save(files:)` put in the newest checkpoint, or nil.
    public func latestFile(_ name: String) -> Data? {
        latest.flatMap { FileManager.default.contents(atPath: $0.appendingPathComponent(name).path) }
    }

    /// The newest checkpoint of an adapter shaped like `template`, or nil when there is none.
    public func load(like template: LoRAAdapter) throws -> (state: State, adapter: LoRAAdapter)? {
        guard let dir = latest else { return nil }
        let state = try JSONDecoder().decode(State.self, from: Data(contentsOf: dir.appendingPathComponent("state.json")))
        return (state, try LoRAAdapter.load(directory: dir, like: template))
    }

    /// The newest checkpoint of a GPT-2 adapter of `layers` blocks and width `width` (tests).
    public func load(layers: Int, width: Int) throws -> (state: State, adapter: LoRAAdapter)? {
        guard let dir = latest else { return nil }
        let state = try JSONDecoder().decode(State.self, from: Data(contentsOf: dir.appendingPathComponent("state.json")))
        let shape = ModelConfig(vocabSize: 1, contextLength: 1, layers: layers, heads: 1, width: width)
        return (state, try LoRAAdapter.load(directory: dir, model: shape))
    }
}
