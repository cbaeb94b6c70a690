import ClusterManager
import Aggregator
import Bus
import Experiments
import Wire
import Data
import Engine
import FederatedRun
import Foundation
import Reports
import XCTest

/// Tiny fixtures: a random-init tiny GPT-2, a two-domain synthetic corpus partitioned over devices, an experiment.
enum Kit {
    /// A run's `<out>/metrics.jsonl` records, decoded as `fi report` reads them.
    static func records(_ out: String) throws -> [MetricRecord] {
        try RunDirectory.readJSONLines(URL(fileURLWithPath: out).appendingPathComponent(RunFiles.metrics), as: MetricRecord.self)
    }

    static func tempDir(_ name: String) -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("svc-\(name)-\(UUID().uuidString.prefix(8))")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func tinyModel(in dir: URL) throws -> String {
        let path = dir.appendingPathComponent("model")
        try LanguageModel(config: .tiny, seed: 7).save(directory: path)
        return path.path
    }

    /// Two domains with very different byte statistics, so a few LoRA steps lower the loss.
    static func tinyData(in dir: URL, devices: Int) throws -> String {
        func docs(_ domain: String, _ make: (Int) -> String) -> DomainDocuments {
            DomainDocuments(name: domain, documents: (0..<24).map { Document(domain: domain, source: "\(domain)-\($0)", text: make($0)) })
        }
        let a = docs("vowels") { i in String(repeating: "aeiou eia oua \(i % 3) ", count: 30) }
        let b = docs("digits") { i in String(repeating: "0123 4567 89 \(i % 5)- ", count: 30) }
        let corpus = Corpus(version: "test", domains: [a, b])
        let out = dir.appendingPathComponent("data")
        try DataPreparation.prepare(corpus: corpus, spec: PartitionSpec(devices: devices, scheme: .domain, seed: 1, sizeSigma: 0),
                                    chunkBytes: 256, into: out)
        return out.path
    }

    static func experiment(model: String, data: String, devices: Int, rounds: Int, quorum: Int = 1, deadline: Double = 20,
                           steps: Int = 8) -> String {
        """
        name: test
        seed: 5
        model: \(model)
        data: {devices: \(devices), manifest: \(data)}
        lora: {rank: 2, alpha: 4, targets: [c_attn]}
        federation: {rounds: \(rounds), local_steps: \(steps), batch: 2, seq: 32, lr: 0.02, quorum: \(quorum), deadline_s: \(deadline), eval_tokens: 512}
        scenario: {devices: {count: \(devices)}}
        """
    }

    struct Setup {
        var dir: URL
        var model: String
        var data: String
        var configPath: String
        var experiment: Experiment
    }

    /// A temp folder with the tiny model and two-domain data for `devices`, and `<dir>/experiment.yaml`: name, seed 5,
    /// model and data, then `body` (lora, federation, paradigm sections, scenario).
    static func tiny(_ name: String, devices: Int, _ body: String) throws -> Setup {
        let dir = tempDir(name)
        let model = try tinyModel(in: dir)
        let data = try tinyData(in: dir, devices: devices)
        let yaml = "name: \(name)\nseed: 5\nmodel: \(model)\ndata: {devices: \(devices), manifest: \(data)}\n" + body
        let path = dir.appendingPathComponent("experiment.yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return Setup(dir: dir, model: model, data: data, configPath: path, experiment: try Experiment.load(path: path))
    }

    static func setup(_ name: String, devices: Int, rounds: Int, quorum: Int = 1, deadline: Double = 20, steps: Int = 8) throws -> Setup {
        let dir = tempDir(name)
        let model = try tinyModel(in: dir)
        let data = try tinyData(in: dir, devices: devices)
        let yaml = experiment(model: model, data: data, devices: devices, rounds: rounds, quorum: quorum, deadline: deadline, steps: steps)
        let path = dir.appendingPathComponent("experiment.yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return Setup(dir: dir, model: model, data: data, configPath: path, experiment: try Experiment.load(path: path))
    }

    /// Where `swift build --build-tests` put the executables: next to the test bundle.
    static var binDir: URL {
        var url = Bundle.main.bundleURL
        for candidate in [Bundle(for: Token.self).bundleURL, Bundle.main.bundleURL, URL(fileURLWithPath: CommandLine.arguments[0])] {
            let dir = candidate.pathExtension == "xctest" ? candidate.deletingLastPathComponent() : candidate.deletingLastPathComponent()
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("aggregator").path) { url = dir; return url }
        }
        return url.deletingLastPathComponent()
    }

    static func requireExecutables() throws -> URL {
        let dir = binDir
        for n in ["cluster-manager", "aggregator", "device-worker"] where !FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent(n).path) {
            XCTFail("\(n) not found in \(dir.path): run `swift build --build-tests` first")
            throw CocoaError(.fileNoSuchFile)
        }
        return dir
    }

    static func meanVal(_ losses: [String: Double]) -> Double { losses.values.reduce(0, +) / Double(max(1, losses.count)) }

    /// Runs an executable and returns (status, stderr).
    static func runExecutable(_ name: String, _ args: [String], env: [String: String] = [:]) throws -> (Int32, String) {
        let (status, _, err) = try runExecutableOutput(name, args, env: env)
        return (status, err)
    }

    /// Runs an executable and returns (status, stdout, stderr).
    static func runExecutableOutput(_ name: String, _ args: [String], env: [String: String] = [:]) throws -> (Int32, String, String) {
        let p = Process()
        p.executableURL = try requireExecutables().appendingPathComponent(name)
        p.arguments = args
        var e = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("FI_") }
        for (k, v) in env { e[k] = v }
        p.environment = e
        let err = Pipe(), out = Pipe()
        p.standardError = err
        p.standardOutput = out
        try p.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let data = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: data, as: UTF8.self))
    }
}

final class Token {}

/// Polls `condition` until true or `timeout` seconds pass.
/// A stopped aggregator started again with the same options: its old sockets release their ports within their linger time.
func reopenAggregator(_ o: AggregatorService.Options, initial: LoRAAdapter, context: BusContext) async throws -> AggregatorService {
    for _ in 0..<30 {
        if let s = try? AggregatorService(o, initial: initial, context: context) { return s }
        try await Task.sleep(for: .milliseconds(100))
    }
    return try AggregatorService(o, initial: initial, context: context)
}

func eventually(_ timeout: Double, _ condition: () async throws -> Bool) async throws -> Bool {
    let end = Date().addingTimeInterval(timeout)
    while Date() < end {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return false
}
