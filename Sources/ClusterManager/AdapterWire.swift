import Engine
import Federation
import Foundation
import Messages

/// Adapters on the wire are named f32 tensors in the global layout's order; inside Federation they are one flat vector.
public enum AdapterWire {
    public static func layout(of adapter: LoRAAdapter) throws -> Federation.ParameterLayout {
        try Federation.ParameterLayout(adapter.tensors.map { Federation.ParameterLayout.Entry(name: $0.name, shape: $0.shape) })
    }

    public static func tensors(_ flat: [Float], layout: Federation.ParameterLayout) -> [Messages.Tensor] {
        zip(layout.entries, layout.offsets).map { e, off in
            Messages.Tensor(name: e.name, shape: e.shape, floats: Array(flat[off..<min(flat.count, off + e.count)]))
        }
    }

    /// Why tensors do not fit a layout (names, shapes); nil when they fit.
    public static func mismatch(_ tensors: [Messages.Tensor], layout: Federation.ParameterLayout) -> String? {
        guard tensors.count == layout.entries.count else {
            return "update has \(tensors.count) tensors, the adapter has \(layout.entries.count)"
        }
        for (t, e) in zip(tensors, layout.entries) where t.name != e.name || t.shape != e.shape {
            return "tensor '\(t.name)' \(t.shape) does not match '\(e.name)' \(e.shape)"
        }
        return nil
    }

    /// All tensors' values concatenated (dense, f32); throws on inconsistent payloads.
    public static func flat(_ tensors: [Messages.Tensor]) throws -> [Float] {
        var out: [Float] = []
        for t in tensors { out += try t.floats() }
        return out
    }

    /// The adapter every run starts from: LoRA A from `seed`, B = 0, on the model's shapes (no weights read).
    public static func initialAdapter(modelDir: String, lora: Experiment.LoRASection, seed: UInt64) throws -> LoRAAdapter {
        let config = try LanguageModel.loadConfig(URL(fileURLWithPath: modelDir))
        let model = try LanguageModel(config: config, seed: 0)
        try model.attachLoRA(try loraConfig(lora), seed: seed)
        return try model.adapter()
    }

    public static func loraConfig(_ l: Experiment.LoRASection) throws -> LoRAConfig {
        LoRAConfig(rank: l.rank, alpha: Float(l.alpha), targets: try LoRATarget.parse(l.targets))
    }
}

/// The error `fi run` and the services give when the base model folder is missing.
public struct MissingModelError: Error, CustomStringConvertible {
    public let path: String
    public init(path: String) { self.path = path }
    public var description: String {
        "no base model at \(path) (config.json missing): run `fi pretrain --text <files> --out \(path)` first, or set `model:` in the experiment file"
    }
}

public func requireModel(_ dir: String) throws {
    guard FileManager.default.fileExists(atPath: URL(fileURLWithPath: dir).appendingPathComponent("config.json").path) else {
        throw MissingModelError(path: dir)
    }
}
