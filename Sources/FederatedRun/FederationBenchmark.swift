import Aggregator
import Bus
import ClusterManager
import CZMQ
import DeviceWorker
import Engine
import Experiments
import Foundation
import Reports

/// `fi bench federation`: round overhead of the services without training (device-worker --echo processes, a
/// synthetic adapter) against raw libzmq moving the same bytes (ROUTER fan-out to N DEALERs, each echoes back).
public enum FederationBenchmark {
    public struct Row: Sendable {
        public var devices: Int
        public var bytes: Int
        public var rawSecondsPerRound: Double
        public var servicesSecondsPerRound: Double
        public var ratio: Double { servicesSecondsPerRound / rawSecondsPerRound }
    }

    public static func format(_ rows: [Row]) -> String {
        var lines = ["devices  adapter   raw zmq s/round  services s/round  services/raw"]
        for r in rows {
            lines.append(String(format: "%7d  %4d MB  %15.4f  %16.4f  %12.2f", r.devices, r.bytes >> 20, r.rawSecondsPerRound,
                                r.servicesSecondsPerRound, r.ratio))
        }
        if let big = rows.first(where: { $0.devices == 50 }) {
            lines.append(String(format: "goal at N=50: services <= 1.3x raw libzmq (%@)", big.ratio <= 1.3 ? "ok" : "MISSED"))
        }
        return lines.joined(separator: "\n")
    }

    /// Seconds per round for raw libzmq: one ROUTER sends `bytes` to each of `devices` DEALER threads, each sends it back.
    public static func raw(devices: Int, bytes: Int, rounds: Int) throws -> Double {
        let context = BusContext()
        let router = try Socket(.router, context: context, linger: 0)
        let endpoint = try router.bind("tcp://127.0.0.1:*")
        let payload = [UInt8](repeating: 0x5A, count: bytes)
        let ids = (0..<devices).map { "d\($0)" }
        var threads: [Thread] = []
        let ready = DispatchSemaphore(value: 0)
        for id in ids {
            let dealer = try Socket(.dealer, context: context, linger: 5000)  // the last reply must leave before close
            try dealer.set(.routingId(Array(id.utf8)))
            try dealer.connect(endpoint)
            let t = Thread {
                guard let h = dealer.rawHandle else { return }
                var buffer = [UInt8](repeating: 0, count: bytes)
                _ = zmq_send(h, "hi", 2, 0)
                ready.signal()
                for _ in 0..<rounds {
                    let n = buffer.withUnsafeMutableBytes { zmq_recv(h, $0.baseAddress, $0.count, 0) }
                    if n < 0 { break }
                    _ = buffer.withUnsafeBytes { zmq_send(h, $0.baseAddress, $0.count, 0) }
                }
                dealer.close()
            }
            t.start()
            threads.append(t)
        }
        guard let h = router.rawHandle else { return .nan }
        var idBuf = [UInt8](repeating: 0, count: 256), body = [UInt8](repeating: 0, count: bytes)
        for _ in ids {
            ready.wait()
            _ = zmq_recv(h, &idBuf, idBuf.count, 0); _ = zmq_recv(h, &body, body.count, 0)
        }
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<rounds {
            for id in ids {
                _ = zmq_send(h, id, id.utf8.count, ZMQ_SNDMORE)
                _ = payload.withUnsafeBytes { zmq_send(h, $0.baseAddress, $0.count, 0) }
            }
            for _ in ids {
                _ = zmq_recv(h, &idBuf, idBuf.count, 0)
                _ = body.withUnsafeMutableBytes { zmq_recv(h, $0.baseAddress, $0.count, 0) }
            }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        router.close()
        return seconds / Double(rounds)
    }

    /// Seconds per round of cluster-manager + aggregator + `devices` device-worker --echo processes on tcp loopback.
    public static func services(devices: Int, bytes: Int, rounds: Int, binDir: URL) throws -> Double {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fi-bench-fed-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let total = rounds + 2  // the first two rounds warm up
        let config = dir.appendingPathComponent("bench.yaml")
        try """
        name: bench-federation
        data: {devices: \(devices)}
        federation: {rounds: \(total), local_steps: 1, quorum: \(devices), fraction: 1.0, deadline_s: 60}
        scenario: {devices: {count: \(devices)}}
        """.write(to: config, atomically: true, encoding: .utf8)
        let ports = try FederatedRun.freePorts(4)
        let cm = "tcp://127.0.0.1:\(ports[0])"
        var children = ChildProcesses()
        defer { children.killAll() }
        try children.spawn("cluster-manager", binDir, ["--router", cm, "--pub", "tcp://127.0.0.1:\(ports[1])", "--config", config.path,
                                                        "--heartbeat-ms", "500"])
        let aggregator = try children.spawn("aggregator", binDir, [
            "--manager", cm, "--router", "tcp://127.0.0.1:\(ports[2])", "--pub", "tcp://127.0.0.1:\(ports[3])", "--config", config.path,
            "--metrics", dir.path, "--no-eval", "--quiet", "--synthetic-adapter", "\(bytes / 4)", "--heartbeat-ms", "500"])
        for _ in 0..<devices {
            try children.spawn("device-worker", binDir, ["--manager", cm, "--config", config.path, "--echo", "--quiet", "--heartbeat-ms", "500"])
        }
        let deadline = Date().addingTimeInterval(Double(total) * 30 + 60)
        while aggregator.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        guard !aggregator.isRunning, aggregator.terminationStatus == 0 else {
            throw FederatedRun.RunError.childFailed(name: "aggregator", status: aggregator.isRunning ? -1 : aggregator.terminationStatus)
        }
        let records = try String(contentsOf: dir.appendingPathComponent(RunFiles.metrics), encoding: .utf8).split(separator: "\n")
            .map { try JSONDecoder().decode(MetricRecord.self, from: Foundation.Data($0.utf8)) }
        guard records.count == total, let first = records.first(where: { $0.round == 2 }), let last = records.last,
              records.allSatisfy({ $0.dropped == 0 }) else {
            throw FederatedRun.RunError.noSummary(path: "complete metrics (a round dropped devices or did not finish)")
        }
        return (last.wallSeconds - first.wallSeconds) / Double(last.round - first.round)
    }

    /// One no-op round embedded: cluster manager, aggregator and one device host of `devices` echo devices in this
    /// process over inproc:// (every device its own sockets, the host's trainer pool echoing a constant delta).
    public struct EmbeddedRow: Sendable {
        public var devices: Int
        public var bytes: Int
        public var secondsPerRound: Double
        /// This process's peak resident memory during the row (VmHWM, reset before it).
        public var peakResidentBytes: Int
    }

    public static func embedded(devices: Int, bytes: Int, rounds: Int) throws -> EmbeddedRow {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fi-bench-fed-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let total = rounds + 2  // the first two rounds warm up
        let e = try Experiment.parse(yaml: """
            name: bench-federation-embedded
            data: {devices: \(devices)}
            federation: {rounds: \(total), local_steps: 1, quorum: \(devices), fraction: 1.0, deadline_s: 600}
            scenario: {devices: {count: \(devices)}}
            """)
        // Peak RSS of this row only: writing 5 to clear_refs resets VmHWM.
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
        let context = BusContext(maxSockets: Int32(clamping: 2 * devices + 64))
        let tag = UUID().uuidString.prefix(8)
        let manager = try ClusterManagerService(.init(router: "inproc://bcm-\(tag)", pub: "inproc://bcm-pub-\(tag)", heartbeatMs: 1000,
                                                      liveness: 10, partitions: devices), context: context)
        let n = bytes / 4
        let initial = LoRAAdapter(config: LoRAConfig(), layers: 0, tensors: [NamedTensor(name: "synthetic", shape: [n], values: [Float](repeating: 0, count: n))])
        var a = AggregatorService.Options(manager: manager.routerEndpoint, router: "inproc://bagg-\(tag)", pub: "inproc://bagg-pub-\(tag)", experiment: e)
        a.metrics = dir.path; a.evaluate = false; a.quiet = true
        let aggregator = try AggregatorService(a, initial: initial, context: context)
        var d = DeviceWorkerService.Options(manager: manager.routerEndpoint, model: "", data: "", experiment: e)
        d.devices = devices; d.echo = true; d.quiet = true
        let host = try DeviceWorkerService(d, context: context)
        let done = DispatchSemaphore(value: 0)
        aggregator.onFinish { done.signal() }
        manager.start(); aggregator.start(); host.start()
        defer { host.stop(); aggregator.stop(); manager.stop() }
        guard done.wait(timeout: .now() + Double(total) * 120 + 120) == .success else {
            throw FederatedRun.RunError.timedOut(seconds: Double(total) * 120 + 120)
        }
        let peak = ProcessMemory.resident()?.peak ?? 0
        let records = try String(contentsOf: dir.appendingPathComponent(RunFiles.metrics), encoding: .utf8).split(separator: "\n")
            .map { try JSONDecoder().decode(MetricRecord.self, from: Foundation.Data($0.utf8)) }
        guard records.count == total, let first = records.first(where: { $0.round == 2 }), let last = records.last,
              records.allSatisfy({ $0.dropped == 0 && $0.participants == devices }) else {
            throw FederatedRun.RunError.noSummary(path: "complete metrics (a round dropped devices or did not finish)")
        }
        return EmbeddedRow(devices: devices, bytes: bytes, secondsPerRound: (last.wallSeconds - first.wallSeconds) / Double(last.round - first.round),
                           peakResidentBytes: peak)
    }

    /// Flower 1.42's Ray simulation of the same no-op round (scripts/bench_flower.py in .venv-flower).
    public static func flower(devices: Int, mb: Int, rounds: Int, python: String = ".venv-flower/bin/python",
                              script: String = "scripts/bench_flower.py") throws -> (secondsPerRound: Double, peakResidentBytes: Int?) {
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw FederatedRun.RunError.missingExecutable(path: "\(python) (run scripts/bench-venv --flower)")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [script, "--devices", "\(devices)", "--mb", "\(mb)", "--rounds", "\(rounds)"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0,
              let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let json = try JSONSerialization.jsonObject(with: Foundation.Data(line.utf8)) as? [String: Any],
              let s = json["seconds_per_round"] as? Double else {
            throw FederatedRun.RunError.childFailed(name: "Flower (\(script))", status: p.terminationStatus)
        }
        return (s, json["driver_peak_rss_bytes"] as? Int)
    }

    public static func formatEmbedded(_ rows: [EmbeddedRow], flower: [Int: (secondsPerRound: Double, peakResidentBytes: Int?)] = [:]) -> String {
        var lines = ["embedded (one process, one device host)", "devices  adapter  s/round  peak RSS MB  Flower s/round  Flower/ours"]
        for r in rows {
            let f = flower[r.devices]
            lines.append(String(format: "%7d  %4d MB  %7.3f  %11.0f  %14@  %11@", r.devices, r.bytes >> 20, r.secondsPerRound,
                                Double(r.peakResidentBytes) / 1e6, f.map { String(format: "%.2f", $0.secondsPerRound) } ?? "-",
                                f.map { String(format: "%.1f", $0.secondsPerRound / r.secondsPerRound) } ?? "-"))
        }
        if let r = rows.first(where: { $0.devices == 50 }) {
            lines.append(String(format: "goal at N=50: <= 0.10 s/round (%@)", r.secondsPerRound <= 0.10 ? "ok" : "MISSED"))
        }
        if let r = rows.first(where: { $0.devices == 1000 }), let f = flower[1000] {
            lines.append(String(format: "goal at N=1000: >= 10x faster than Flower (%.1fx, %@)", f.secondsPerRound / r.secondsPerRound,
                                f.secondsPerRound / r.secondsPerRound >= 10 ? "ok" : "MISSED"))
        }
        return lines.joined(separator: "\n")
    }

    public static func run(devices: [Int] = [2, 10, 50], bytes: Int = 4 << 20, rounds: Int = 5, binDir: URL,
                           log: (String) -> Void = { _ in }) throws -> [Row] {
        try devices.map { n in
            let raw = try raw(devices: n, bytes: bytes, rounds: rounds)
            log(String(format: "N=%d raw %.4f s/round", n, raw))
            let svc = try services(devices: n, bytes: bytes, rounds: rounds, binDir: binDir)
            log(String(format: "N=%d services %.4f s/round", n, svc))
            return Row(devices: n, bytes: bytes, rawSecondsPerRound: raw, servicesSecondsPerRound: svc)
        }
    }
}
