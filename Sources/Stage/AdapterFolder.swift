import Engine
import Foundation

/// Cluster adapters for a stage node: `<dir>/cluster-<k>/` PEFT folders, one per cluster k.
public enum AdapterFolder {
    public static func load(_ directory: URL, config: ModelConfig) throws -> [UInt32: LoRAAdapter] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory.path) } catch {
            throw EngineError.io(file: directory.path, detail: "cannot list the adapters folder; expected cluster-<k>/ PEFT folders")
        }
        var out: [UInt32: LoRAAdapter] = [:]
        for name in names.sorted() where name.hasPrefix("cluster-") {
            guard let k = UInt32(name.dropFirst("cluster-".count)) else { continue }
            out[k] = try LoRAAdapter.load(directory: directory.appendingPathComponent(name), model: config)
        }
        return out
    }
}
