import Data
import Foundation
import Tokenizers

/// One device's tokens, loaded when a task needs them (a host's K devices do not keep their data between tasks).
public struct DeviceData: Sendable {
    /// The partition's dominant domain (what the device reports with its evaluations).
    public var domain: String
    public var train: [Int32]
    /// At most `federation.eval_tokens`.
    public var validation: [Int32]
    /// Samples reported with an update (FedAvg weights): training tokens.
    public var samples: Int { train.count }

    public init(domain: String, train: [Int32], validation: [Int32]) {
        self.domain = domain; self.train = train; self.validation = validation
    }
}

/// Where a host's devices load their data from: the prepared partition (chunk files kept once, memory-mapped),
/// tokenized with the base model's tokenizer. Keeps the last few devices' tokens (a device that trains and then
/// evaluates reads its partition once). Thread-safe.
public final class PartitionData: @unchecked Sendable {  // safe: `recent` only under `lock`; the reader locks itself
    public let reader: ChunkReader
    let tokenizer: any Tokenizer
    let evalTokens: Int
    let keep: Int
    private let lock = NSLock()
    private var recent: [(partition: Int, data: DeviceData)] = []

    public init(directory: String, tokenizer: any Tokenizer, evalTokens: Int, keep: Int = 8) throws {
        let manifest = try PartitionManifest.load(URL(fileURLWithPath: directory))
        guard manifest.deviceCount > 0, let dir = manifest.directory else {
            throw DataError.invalidPartition("manifest in \(directory) has no devices")
        }
        reader = ChunkReader(manifest, directory: dir)
        self.tokenizer = tokenizer; self.evalTokens = evalTokens; self.keep = max(0, keep)
    }

    public var deviceCount: Int { reader.manifest.deviceCount }

    /// Partition `p` (modulo the manifest's device count, as assignments are dealt).
    public func load(partition p: Int) throws -> DeviceData {
        let id = p % deviceCount
        lock.lock()
        if let hit = recent.first(where: { $0.partition == id }) { lock.unlock(); return hit.data }
        lock.unlock()
        let (trainText, validationText) = try reader.deviceTexts(id)
        var validation = tokenizer.encode(validationText)
        if validation.count > evalTokens { validation = Array(validation[..<evalTokens]) }
        let data = DeviceData(domain: reader.manifest.devices[id].dominantDomain, train: tokenizer.encode(trainText), validation: validation)
        lock.lock()
        recent.append((id, data))
        if recent.count > keep { recent.removeFirst(recent.count - keep) }
        lock.unlock()
        return data
    }
}
