import Engine
import Foundation

/// Cluster adapters for a stage node: `<dir>/cluster-<k>/` PEFT folders, one per cluster k (what a clustered
/// aggregator leaves in `<checkpoint>/clusters/`). A stage node re-reads a cluster's folder when its files change.
public enum AdapterFolder {
    public static func load(_ directory: URL, config: ModelConfig) throws -> [UInt32: LoRAAdapter] {
        var out: [UInt32: LoRAAdapter] = [:]
        for (k, url) in try clusters(directory) {
            out[k] = try LoRAAdapter.load(directory: url, model: config)
        }
        return out
    }

    /// cluster id → folder of every `cluster-<k>/` in `directory`.
    public static func clusters(_ directory: URL) throws -> [UInt32: URL] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory.path) } catch {
            throw EngineError.io(file: directory.path, detail: "cannot list the adapters folder; expected cluster-<k>/ PEFT folders")
        }
        var out: [UInt32: URL] = [:]
        for name in names where name.hasPrefix("cluster-") {
            guard let k = UInt32(name.dropFirst("cluster-".count)) else { continue }
            out[k] = directory.appendingPathComponent(name)
        }
        return out
    }

    /// What identifies one version of a cluster's adapter: the newest modification time and total size of its files.
    public static func stamp(_ folder: URL) -> String? {
        var newest = Date.distantPast, size = 0
        for file in ["adapter_config.json", "adapter_model.safetensors"] {
            guard let attrs = try? FileManager.default.attributesOfItem(atPath: folder.appendingPathComponent(file).path),
                  let date = attrs[.modificationDate] as? Date else { return nil }
            newest = max(newest, date)
            size += (attrs[.size] as? Int) ?? 0
        }
        return "\(newest.timeIntervalSince1970)/\(size)"
    }
}

/// Follows an adapter folder: each `changes()` lists the clusters whose adapter appeared, changed (loaded) or
/// went away (nil) since the last call. A folder that does not load (half written) is retried next time.
public struct AdapterFolderWatcher {
    public let directory: URL
    public let config: ModelConfig
    private var stamps: [UInt32: String] = [:]

    public init(directory: URL, config: ModelConfig) { self.directory = directory; self.config = config }

    public mutating func changes() -> [(cluster: UInt32, adapter: LoRAAdapter?)] {
        guard let folders = try? AdapterFolder.clusters(directory) else { return [] }
        var out: [(UInt32, LoRAAdapter?)] = []
        for (k, url) in folders.sorted(by: { $0.key < $1.key }) {
            guard let stamp = AdapterFolder.stamp(url), stamp != stamps[k] else { continue }
            guard let adapter = try? LoRAAdapter.load(directory: url, model: config) else { continue }
            stamps[k] = stamp
            out.append((k, adapter))
        }
        for k in stamps.keys.sorted() where folders[k] == nil {
            stamps.removeValue(forKey: k)
            out.append((k, nil))
        }
        return out
    }
}
