import Engine
import Foundation

// What an experiment file builds from the base model folder: the LoRA config and the adapter every run starts from.

extension Experiment {
    /// The adapter every run starts from: LoRA A from `seed`, B = 0, on the model's shapes (no weights read).
    public func initialAdapter() throws -> LoRAAdapter {
        let config = try LanguageModel.loadConfig(URL(fileURLWithPath: model))
        let m = try LanguageModel(config: config, seed: 0)
        try m.attachLoRA(try lora.config(), seed: seed)
        return try m.adapter()
    }
}

extension Experiment.LoRASection {
    public func config() throws -> LoRAConfig {
        LoRAConfig(rank: rank, alpha: Float(alpha), targets: try LoRATarget.parse(targets))
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
