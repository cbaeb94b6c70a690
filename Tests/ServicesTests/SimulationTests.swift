import Bus
import DeviceWorker
import EdgeEnvironment
import Engine
import Experiments
import Federation
import FederatedRun
import Foundation
import Reports
import Simulation
import XCTest

/// Simulation mode: the round engine on the virtual clock, with the device hosts' trainers.
final class SimulationTests: XCTestCase {
    /// The same seed and settings through the services (embedded, wall clock) and through the simulator (virtual clock)
    /// give the same final model: same sampling, same local training, same combine.
    func testSimulatedAndEmbeddedRunsGiveTheSameFinalModel() throws {
        let s = try Kit.tiny("sim-vs-embedded", devices: 4, """
            lora: {rank: 2, alpha: 4, targets: [c_attn]}
            federation: {rounds: 2, local_steps: 3, batch: 2, seq: 32, lr: 0.02, fraction: 0.5, quorum: 2, deadline_s: 60, eval_tokens: 256}
            scenario: {devices: {count: 4, compute: {stragglerFraction: 0}}}
            """)
        var settings = FederatedRun.Settings(experiment: s.experiment, out: s.dir.appendingPathComponent("embedded").path)
        settings.quiet = true; settings.showProgress = false; settings.heartbeatMs = 200
        _ = try FederatedRun.embedded(settings, dataDir: s.data)
        let written = try LoRAAdapter.load(directory: URL(fileURLWithPath: RunTopology.checkpointDir(out: settings.out, id: "aggregator"))
            .appendingPathComponent("clusters/cluster-0"), like: try s.experiment.initialAdapter()).flatten()

        var o = SimulatedRun.Options(experiment: s.experiment, out: s.dir.appendingPathComponent("simulated").path, dataDir: s.data)
        o.showProgress = false; o.quiet = true
        let sim = try SimulatedRun.run(o)
        let simulated = try XCTUnwrap(sim.models[0])
        XCTAssertEqual(simulated.count, written.count)
        let initial = try s.experiment.initialAdapter().flatten()
        XCTAssertGreaterThan(zip(simulated, initial).map { abs($0 - $1) }.max() ?? 0, 1e-3, "the model trained")
        XCTAssertLessThanOrEqual(zip(simulated, written).map { abs($0 - $1) }.max() ?? 1, 1e-6)
        // Two of four devices per round, as the engine sampled them.
        XCTAssertEqual(Dictionary(grouping: sim.trace, by: \.wire).values.map(\.count).sorted(), [2, 2])
        let records = try Kit.records(o.out)
        XCTAssertEqual(records.map(\.round), [0, 1, 2])
        XCTAssertEqual(records.map(\.participants), [0, 2, 2])
    }

    /// A cost model with numbers one can add up by hand: every download 1 s, every upload 2 s, compute = FLOPs / speed.
    struct HandCost: EdgeCostModel {
        let speed: [Double]
        func downloadSeconds(bytes: Int, device: Int, at time: Double) -> Double { 1 }
        func uploadSeconds(bytes: Int, device: Int, at time: Double) -> Double { 2 }
        func computeSeconds(flops: Double, device: Int) -> Double { flops / speed[device] }
    }

    /// Local work that costs 10 FLOPs and moves the model a little.
    final class HandTrainer: LocalTrainer, @unchecked Sendable {  // safe: stateless
        func train(from global: [Float], data: DeviceData, settings: LocalSettings, seed: UInt64) throws -> (delta: [Float], loss: Float, flops: Double) {
            ([Float](repeating: 0.01, count: global.count), 1, 10)
        }
        func evaluate(_ global: [Float], data: DeviceData) throws -> (loss: Float, tokens: Int) { (2, 10) }
        func trainingLoss(_ global: [Float], data: DeviceData, seed: UInt64) throws -> Float { 1 }
    }

    /// Stragglers and churn on the virtual clock, against numbers added up by hand. Four devices, all sampled
    /// (fraction 1), download 1 s + compute 10 FLOPs / speed + upload 2 s, speeds 1, 2, 5, 0.1 (device-3 is a
    /// straggler: 100 s of compute), deadline 20 s; device-1 goes offline at 25 s and comes back at 60 s.
    ///
    /// round 1 starts at 0: device-2 arrives at 1+2+2 = 5, device-1 at 1+5+2 = 8, device-0 at 1+10+2 = 13; device-3
    ///   would arrive at 103, after the deadline: the round closes at 20 (sim time 20), device-3 dropped (its upload
    ///   is still in flight when the run ends at 60).
    /// round 2 starts at 20 (evaluation takes no virtual time): device-2 at 25, device-0 at 33; device-1 would arrive
    ///   at 28 but is offline from 25 (lost); device-3 is still busy until 103, so its task starts there: late.
    ///   Closes at the deadline, 40.
    /// round 3 starts at 40 without device-1 (the engine has heard it is offline): device-2 at 45, device-0 at 53;
    ///   device-3 still busy. Closes at 60.
    func testStragglersAndChurnFollowTheVirtualClock() throws {
        let s = try Kit.tiny("sim-hand", devices: 4, """
            lora: {rank: 2, alpha: 4, targets: [c_attn]}
            federation: {rounds: 3, local_steps: 1, batch: 2, seq: 32, lr: 0.02, fraction: 1.0, quorum: 1, deadline_s: 20, eval_tokens: 64}
            scenario: {devices: {count: 4}}
            """)
        var o = SimulatedRun.Options(experiment: s.experiment, out: s.dir.appendingPathComponent("out").path, dataDir: s.data)
        o.showProgress = false; o.quiet = true
        o.cost = HandCost(speed: [1, 2, 5, 0.1])
        o.makeTrainers = { [HandTrainer(), HandTrainer()] }
        o.availability = { $0 == 1 ? AvailabilityTimeline(online: true, changes: [25, 60]) : .always }
        let run = try SimulatedRun.run(o)
        let records = try Kit.records(o.out)
        XCTAssertEqual(records.map(\.round), [0, 1, 2, 3])
        XCTAssertEqual(records.map(\.simTimeSeconds), [0, 20, 40, 60], accuracy: 1e-6)
        XCTAssertEqual(records.dropFirst().map(\.participants), [4, 4, 3])
        XCTAssertEqual(records.dropFirst().map(\.dropped), [1, 2, 1])

        func arrivals(_ wire: UInt64) -> [String] {
            run.trace.filter { $0.wire == wire }.sorted { $0.arrival < $1.arrival }.map { "\($0.device)@\(Int($0.arrival)):\($0.outcome.rawValue)" }
        }
        let wires = Array(Set(run.trace.map(\.wire))).sorted()
        XCTAssertEqual(wires.count, 3)
        XCTAssertEqual(arrivals(wires[0]), ["device-2@5:delivered", "device-1@8:delivered", "device-0@13:delivered", "device-3@103:in_flight"])
        XCTAssertEqual(arrivals(wires[1]), ["device-2@25:delivered", "device-1@28:offline", "device-0@33:delivered", "device-3@206:in_flight"])
        XCTAssertEqual(arrivals(wires[2]), ["device-2@45:delivered", "device-0@53:delivered", "device-3@309:in_flight"])
        XCTAssertEqual(run.summary.simTimeSeconds, 60, accuracy: 1e-6)
    }

    /// Sampling on the virtual clock: six devices, half of them sampled per round (the engine's seeded sample, as
    /// `sampleDevices` draws it), device-4 offline from 5 s on. Costs as above: 1 s down, 10 FLOPs / speed, 2 s up.
    func testSampledRoundsFollowTheVirtualClock() throws {
        let s = try Kit.tiny("sim-sample", devices: 6, """
            lora: {rank: 2, alpha: 4, targets: [c_attn]}
            federation: {rounds: 3, local_steps: 1, batch: 2, seq: 32, lr: 0.02, fraction: 0.5, quorum: 1, deadline_s: 20, eval_tokens: 64}
            scenario: {devices: {count: 6}}
            """)
        var o = SimulatedRun.Options(experiment: s.experiment, out: s.dir.appendingPathComponent("out").path, dataDir: s.data)
        o.showProgress = false; o.quiet = true
        o.cost = HandCost(speed: [1, 2, 5, 0.1, 1, 4])
        o.makeTrainers = { [HandTrainer(), HandTrainer()] }
        o.availability = { $0 == 4 ? AvailabilityTimeline(online: true, changes: [5]) : .always }
        let run = try SimulatedRun.run(o)
        let records = try Kit.records(o.out)
        // The engine's sample (pure, seeded): device-4 is gone from the pool after round 1 (the engine hears at 8 s).
        let ids = (0..<6).map { "device-\($0)" }
        let samples = (1...3).map { r in
            sampleDevices(r == 1 ? ids : ids.filter { $0 != "device-4" }, fraction: 0.5, minimum: 1, seed: s.experiment.seed, round: UInt64(r))
        }
        XCTAssertEqual(samples, [["device-0", "device-2", "device-3"], ["device-0", "device-1", "device-5"], ["device-1", "device-2", "device-3"]])
        // round 1 at 0: device-2 at 1+2+2 = 5, device-0 at 13, device-3 (100 s of compute) would be 103: closes at the
        //   deadline, 20, without it.
        // round 2 at 20: device-5 at 20+1+2.5+2 = 25.5, device-1 at 28, device-0 at 33: all in, closes at 33.
        // round 3 at 33: device-2 at 38, device-1 at 41; device-3 is busy until 103 (starts then, 206): closes at 53.
        XCTAssertEqual(records.map(\.simTimeSeconds), [0, 20, 33, 53], accuracy: 1e-6)
        XCTAssertEqual(records.dropFirst().map(\.participants), [3, 3, 3])
        XCTAssertEqual(records.dropFirst().map(\.dropped), [1, 0, 1])
        let wires = Array(Set(run.trace.map(\.wire))).sorted()
        func arrivals(_ wire: UInt64) -> [String] {
            run.trace.filter { $0.wire == wire }.sorted { $0.arrival < $1.arrival }
                .map { "\($0.device)@\(String(format: "%g", $0.start))-\(String(format: "%g", $0.arrival)):\($0.outcome.rawValue)" }
        }
        XCTAssertEqual(wires.map(arrivals), [
            ["device-2@0-5:delivered", "device-0@0-13:delivered", "device-3@0-103:in_flight"],
            ["device-5@20-25.5:delivered", "device-1@20-28:delivered", "device-0@20-33:delivered"],
            ["device-2@33-38:delivered", "device-1@33-41:delivered", "device-3@103-206:in_flight"],
        ])
        for (w, sample) in zip(wires, samples) { XCTAssertEqual(Set(run.trace.filter { $0.wire == w }.map(\.device)), Set(sample)) }
    }

    /// An experiment the simulator cannot run says why.
    func testHierarchicalSimulationIsATypedError() throws {
        let e = try Experiment.parse(yaml: "simulation: true\nfederation: {paradigm: hierarchical}\nhierarchical: {edges: 2}")
        XCTAssertTrue(e.simulation)
        XCTAssertThrowsError(try SimulatedRun.run(SimulatedRun.Options(experiment: e, out: "/tmp/unused", dataDir: "/tmp/unused"))) {
            XCTAssertTrue("\($0)".contains("simulation runs flat federations"), "\($0)")
        }
        XCTAssertThrowsError(try Experiment.parse(yaml: "simulation: maybe")) {
            XCTAssertTrue("\($0)".contains("simulation"), "\($0)")
        }
    }

    /// The quickstart and scale examples load, simulate, and say what the issue asks of them.
    func testQuickstartAndScaleExamplesLoad() throws {
        let quick = try ["fedavg", "clustered", "local"].map { try Experiment.load(path: "examples/quickstart/\($0).yaml") }
        XCTAssertTrue(quick.allSatisfy { $0.simulation && $0.model == "models/paper-base" && $0.data.devices == 8 && $0.data.domains.count == 4 })
        XCTAssertEqual(Set(quick.map(\.federation.rounds)).count, 1, "same rounds for every paradigm")
        for (file, devices, fraction) in [("1k", 1000, 0.1), ("1k-fedavg", 1000, 0.1), ("10k", 10000, 0.01)] {
            let e = try Experiment.load(path: "examples/scale/\(file).yaml")
            XCTAssertTrue(e.simulation, file)
            XCTAssertEqual(e.data.devices, devices, file)
            XCTAssertEqual(e.data.scheme, "dirichlet", file)
            XCTAssertEqual(e.data.alpha, 0.1, file)
            XCTAssertEqual(e.data.domains.count, 6, file)
            XCTAssertEqual(e.federation.fraction, fraction, file)
            XCTAssertNotNil(e.scenario.devices.availability, file)
            XCTAssertEqual(e.data.chunkBytes, file == "10k" ? 512 : 1536, file)
        }
    }

    /// The device host's new flags (and their FI_* variables) reject bad values by name, before any socket exists.
    func testDeviceHostFlagsRejectBadValuesByName() throws {
        for (args, env, name) in [(["--devices", "0"], [:], "--devices"), (["--trainers", "0"], [:], "--trainers"),
                                  (["--upload-window", "-1"], [:], "--upload-window"), ([], ["FI_DEVICES": "many"], "FI_DEVICES"),
                                  (["--id", "d1", "--devices", "3"], [:], "--id")] as [([String], [String: String], String)] {
            let (status, err) = try Kit.runExecutable("device-worker", args + ["--manager", "tcp://127.0.0.1:1", "--echo", "--health"], env: env)
            XCTAssertNotEqual(status, 0, "\(args) \(env)")
            XCTAssertTrue(err.contains(name), "\(args) \(env): \(err)")
        }
    }

    /// A device host of K virtual devices runs them on a few trainers that read one copy of the base.
    func testADeviceHostHoldsOneCopyOfTheBase() async throws {
        let s = try Kit.setup("host-base", devices: 5, rounds: 1)
        var o = DeviceWorkerService.Options(manager: "inproc://nobody-\(UUID().uuidString.prefix(6))", model: s.model, data: s.data, experiment: s.experiment)
        o.devices = 5; o.trainers = 3; o.quiet = true
        let host = try DeviceWorkerService(o, context: BusContext())
        host.start()
        defer { host.stop() }
        var bases: [Int] = []
        let ready = try await eventually(30) { bases = await host.trainerBaseAddresses; return !bases.isEmpty }
        XCTAssertTrue(ready, "the trainer pool was never made")
        XCTAssertEqual(bases.count, 3, "three trainers for five devices")
        XCTAssertEqual(Set(bases).count, 1, "every trainer reads the same base storage")

        // The shared storage is the base's own: views neither copy it nor let an adapter change it.
        let base = try SharedBase(modelDir: s.model, experiment: s.experiment)
        let trainers = try (0..<2).map { _ in try base.makeTrainer() }
        for t in trainers { XCTAssertEqual(t.model.baseStorage, base.baseStorage) }
        let before = Array(base.model.parameters)
        let data = DeviceData(domain: "x", train: (0..<200).map { Int32($0 % 7) }, validation: [1, 2, 3])
        _ = try trainers[0].train(from: [Float](repeating: 0.01, count: base.layout.count), data: data,
                                  settings: LocalSettings(steps: 2, learningRate: 0.05), seed: 1)
        XCTAssertEqual(Array(base.model.parameters), before, "training an adapter leaves the shared base as it was")
    }
}

private func XCTAssertEqual(_ a: [Double], _ b: [Double], accuracy: Double, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "\(a) vs \(b)", file: file, line: line)
    for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: accuracy, "\(a) vs \(b)", file: file, line: line) }
}
