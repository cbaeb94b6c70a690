import ArgumentParser
import Experiments
import Wire
import Data
import Foundation

/// `fi data prepare` / `fi data stats`: corpora and non-IID partitions (logic in the Data library).
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Prepare corpora and non-IID device partitions, and show their statistics.",
        subcommands: [Prepare.self, Stats.self]
    )

    struct Prepare: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Split a corpus into held-out test sets, a general corpus and device partitions; write DIR/manifest.json.")

        @Option(help: "Output folder (manifest.json and chunks/).") var out: String
        @Option(help: "Experiment file: its data section (devices, scheme, alpha, seed, domains) replaces those flags.") var config: String?
        @Flag(name: .customLong("if-missing"), help: "Leave a folder that already holds a manifest.json alone (compose restarts, your own data).")
        var ifMissing = false
        @Option(help: "Number of devices.") var devices: Int = 8
        @Option(help: "Partition scheme: domain, dirichlet or iid.") var scheme: String = "domain"
        @Option(help: "Dirichlet concentration α (scheme dirichlet).") var alpha: Double = 0.5
        @Option(help: "Random seed.") var seed: UInt64 = 0
        @Option(help: "User data: JSONL file with a \"text\" field and an optional \"domain\" field.") var jsonl: String?
        @Option(name: .customLong("txt-dir"), help: "User data: folder of .txt files; subfolder name = domain.") var txtDir: String?
        @Option(help: "Domain tag for user data without one (default: the file or folder name).") var tag: String?
        @Option(help: "Comma-separated built-in domains (default: all).") var domains: String?
        @Option(help: "Corpus cache folder for the built-in corpus.") var cache: String?
        @Option(name: .customLong("chunk-bytes"), help: "Target chunk size in bytes (default: the experiment's data.chunk_bytes, else 1536).")
        var chunkBytes: Int?
        @Option(name: .customLong("validation-fraction"), help: "Share of each device's chunks for validation.")
        var validationFraction: Double = 0.1

        func run() throws {
            if ifMissing, let existing = try? PartitionManifest.load(URL(fileURLWithPath: out)) {
                print("\(out) already holds a manifest (\(existing.devices.count) devices); left as it is")
                return
            }
            var (devices, scheme, alpha, seed, domains) = (devices, scheme, alpha, seed, domains)
            var chunkBytes = chunkBytes ?? 1536
            if let config {
                let d = try Experiment.load(path: config).data
                (devices, scheme, alpha, seed) = (d.devices, d.scheme, d.alpha, d.seed)
                chunkBytes = self.chunkBytes ?? d.chunkBytes
                domains = d.domains.isEmpty ? nil : d.domains.joined(separator: ",")
            }
            guard let partitionScheme = PartitionScheme(rawValue: scheme) else {
                throw ValidationError("--scheme must be one of \(PartitionScheme.allCases.map(\.rawValue).joined(separator: ", ")), got '\(scheme)'")
            }
            if jsonl != nil && txtDir != nil { throw ValidationError("give --jsonl or --txt-dir, not both") }
            let start = Date()
            var corpus: Corpus
            if let jsonl {
                corpus = try Corpus.jsonl(URL(fileURLWithPath: jsonl), defaultDomain: tag)
            } else if let txtDir {
                corpus = try Corpus.textFolder(URL(fileURLWithPath: txtDir), tag: tag)
            } else {
                let cacheURL = cache.map { URL(fileURLWithPath: $0) } ?? Corpus.defaultCacheDirectory
                corpus = try Corpus.builtin(cache: cacheURL)
            }
            if let domains {
                corpus = try corpus.selecting(domains: domains.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) })
            }
            let loaded = Date()
            let spec = PartitionSpec(devices: devices, scheme: partitionScheme, alpha: alpha, seed: seed,
                                     validationFraction: validationFraction)
            let manifest = try DataPreparation.prepare(corpus: corpus, spec: spec, chunkBytes: chunkBytes,
                                                       into: URL(fileURLWithPath: out))
            print(ManifestStats(manifest).table)
            let loadSeconds = String(format: "%.2f", loaded.timeIntervalSince(start))
            let writeSeconds = String(format: "%.2f", Date().timeIntervalSince(loaded))
            print("\nloaded the corpus in \(loadSeconds) s; partitioned and wrote \(out) in \(writeSeconds) s")
        }
    }

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print sizes and the domain mix per device of a prepared folder.")

        @Argument(help: "Folder written by `fi data prepare` (or its manifest.json).") var dir: String
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() throws {
            let manifest = try PartitionManifest.load(URL(fileURLWithPath: dir))
            let stats = ManifestStats(manifest)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(stats), as: UTF8.self))
            } else {
                print(stats.table)
            }
        }
    }
}
