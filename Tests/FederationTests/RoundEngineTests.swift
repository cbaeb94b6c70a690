import EdgeEnvironment
import Federation
import Reports
import XCTest

/// The round engine with scripted events and a fake clock: no sockets, no threads, no files.
final class RoundEngineTests: XCTestCase {
    let three = [ScriptedDevice(id: "device-0", target: [1, 0], samples: 10, domain: "a"),
                 ScriptedDevice(id: "device-1", target: [0, 1], samples: 30, domain: "b"),
                 ScriptedDevice(id: "device-2", target: [1, 1], samples: 10, domain: "a")]

    func harness(_ config: EngineConfig = flatConfig(), _ algorithm: Algorithm = syncAlgorithm(), devices: [ScriptedDevice]? = nil) -> EngineHarness {
        EngineHarness(RoundEngine(config: config, algorithm: algorithm, cost: FixedCost()), devices: devices ?? three)
    }

    /// FedAvg by hand: x ← x + Σ wᵢ·0.5·(targetᵢ − x), w ∝ samples.
    func fedAvg(_ x: [Float], _ devices: [ScriptedDevice]) -> [Float] {
        let total = Float(devices.reduce(0) { $0 + $1.samples })
        var out = x
        for d in devices { for i in x.indices { out[i] += Float(d.samples) / total * 0.5 * (d.target[i] - x[i]) } }
        return out
    }

    func testFlatFedAvgRunsEvaluatesRecordsAndFinishes() throws {
        let h = harness()
        h.join(three.map(\.id))
        h.run()
        XCTAssertTrue(h.finished)
        XCTAssertEqual(h.records.map(\.round), [0, 1, 2, 3])
        XCTAssertEqual(h.records.map(\.participants), [0, 3, 3, 3])
        XCTAssertEqual(h.records[1].dropped, 0)
        XCTAssertEqual(Set(h.records[0].valLoss.keys), ["a", "b"])
        var x: [Float] = [0, 0]
        for _ in 0..<3 { x = fedAvg(x, three) }
        assertClose(h.model, x, accuracy: 1e-6)
        let s = try XCTUnwrap(h.summary)
        XCTAssertEqual(s.rounds, 3)
        XCTAssertEqual(s.finalValLoss, h.records.last?.valLoss)
        XCTAssertEqual(s.notes["strategy"], "fedavg")
        // Sim time: each round lasts the slowest device's compute (1 s, no transfer cost).
        XCTAssertEqual(h.records.last?.simTimeSeconds ?? 0, 3, accuracy: 1e-9)
        // Wires only grow: every task and evaluation a device saw has a higher number than the one before.
        let wires = h.sent.filter { $0.1 == "device-0" }.map { m -> UInt64 in
            switch m.0 { case .task(let t, _): return t.wire; case .evaluate(let w, _, _, _): return w; case .secAgg: return 0 }
        }
        XCTAssertEqual(wires, wires.sorted())
        XCTAssertEqual(Set(wires).count, wires.count)
    }

    func testOddUploadsAreAnsweredWithoutTouchingTheRound() throws {
        let h = harness(flatConfig(rounds: 1, evaluate: false))
        h.join(three.map(\.id))
        h.handle(.tick)
        let task = try XCTUnwrap(h.sent.compactMap { m -> RoundTask? in if case .task(let t, _) = m.0 { return t }; return nil }.first)
        let w = task.wire
        func up(_ from: String, wire: UInt64 = w, base: UInt64? = nil, delta: Result<[Float], RejectedUpdate> = .success([0.1, 0.1]), samples: Int = 5) -> Decision? {
            h.acks = []
            h.handle(.upload(from: from, Upload(wire: wire, baseWire: base ?? wire, samples: samples, loss: 1, delta: delta, bytes: 10)), from: from)
            return h.acks.last?.1
        }
        XCTAssertEqual(up("device-0"), .accepted)
        XCTAssertEqual(up("device-0"), .duplicate, "a retry is acknowledged again and counted once")
        XCTAssertEqual(up("device-1", base: w - 1), .rejected(kind: "stale", reason: "trained from model \(w - 1), the round's model is \(w)"))
        if case .rejected(let kind, _) = up("stranger") { XCTAssertEqual(kind, "not_participant") } else { XCTFail() }
        if case .rejected(let kind, _) = up("device-1", delta: .failure(RejectedUpdate(device: "", kind: "wrong_shape", reason: "3 tensors"))) {
            XCTAssertEqual(kind, "wrong_shape")
        } else { XCTFail() }
        if case .rejected(let kind, _) = up("device-1", delta: .success([1, .nan])) { XCTAssertEqual(kind, "non_finite") } else { XCTFail() }
        if case .rejected(let kind, _) = up("device-1", delta: .success([1, 2, 3])) { XCTAssertEqual(kind, "wrong_length") } else { XCTFail() }
        if case .rejected(let kind, _) = up("device-1", wire: w + 5) { XCTAssertEqual(kind, "wrong_round") } else { XCTFail() }
        XCTAssertEqual(up("device-1", wire: w - 1), .duplicate, "an upload for an earlier wire is answered, not counted")
        XCTAssertEqual(h.engine.rejections["stale"], 1)
        XCTAssertEqual(h.engine.rejections["not_participant"], 1)
        XCTAssertEqual(h.engine.models[0]?.parameters, [0, 0], "nothing applied before the round closes")
        XCTAssertEqual(up("device-1"), .accepted)
        XCTAssertEqual(up("device-2"), .accepted)
        // All in: closed at once with the three accepted updates (the duplicate counted once).
        assertClose(h.model, [0.1, 0.1], accuracy: 1e-6)
        XCTAssertTrue(h.finished)
    }

    func testDeadlineClosesTheRoundWithoutTheDeadDevice() throws {
        let h = harness(flatConfig(rounds: 1, deadline: 5))
        h.silent = ["device-2"]
        h.join(three.map(\.id))
        h.run(dt: 0.5)
        XCTAssertTrue(h.finished)
        XCTAssertEqual(h.records[1].participants, 3)
        XCTAssertEqual(h.records[1].dropped, 1)
        assertClose(h.model, fedAvg([0, 0], Array(three[0..<2])), accuracy: 1e-6)
        // Nobody at all: the round still ends at its deadline and the model stays.
        let empty = harness(flatConfig(rounds: 1, evaluate: false, deadline: 2))
        empty.silent = Set(three.map(\.id))
        empty.join(three.map(\.id))
        empty.run(dt: 0.5)
        XCTAssertTrue(empty.finished)
        XCTAssertEqual(empty.model, [0, 0])
        XCTAssertEqual(empty.records.first?.dropped, 3)
    }

    func testQuorumHoldsTheFirstRoundUntilEnoughParticipantsJoin() {
        let h = harness(flatConfig(rounds: 1, quorum: 3))
        h.join(["device-0", "device-1"])
        for _ in 0..<10 { h.now += 1; h.handle(.tick) }
        XCTAssertTrue(h.sent.isEmpty)
        XCTAssertEqual(h.engine.phase, .starting)
        h.join(three.map(\.id))
        h.run()
        XCTAssertTrue(h.finished)
    }

    func testLateJoinersAreAdmittedAndFractionSamplesParticipants() {
        let ten = (0..<10).map { ScriptedDevice(id: "device-\($0)", target: [Float($0), 1]) }
        let h = harness(flatConfig(rounds: 3, evaluate: false), syncAlgorithm(fraction: 0.3), devices: ten)
        h.join(Array(ten.map(\.id).prefix(5)))
        h.run(until: { $0.records.count >= 1 })
        XCTAssertEqual(h.records[0].participants, 2, "⌈0.3·5⌉ of the first five")
        h.join(ten.map(\.id))
        h.run()
        XCTAssertEqual(h.records.last?.participants, 3, "⌈0.3·10⌉ once all ten are there")
    }

    /// Restart from the snapshot and journal taken at any point: the run goes on to the same final model.
    func testRestoringFromAnySnapshotAndJournalGivesTheUninterruptedResult() throws {
        let reference = harness()
        reference.join(three.map(\.id))
        reference.run()
        let want = reference.model

        // Stop after k effects-producing steps, rebuild from what was persisted, continue.
        for stopAfter in [1, 3, 5, 8, 12, 17, 23, 30] {
            let h = harness()
            h.join(three.map(\.id))
            var steps = 0
            h.run(until: { x in steps += 1; return steps > stopAfter || x.finished })
            guard !h.finished, let snap = h.snapshot else { continue }
            let restored = try RoundEngine(restoring: snap, journal: h.journal, config: flatConfig(), algorithm: syncAlgorithm(), cost: FixedCost())
            let again = EngineHarness(restored, devices: three)
            again.records = h.records
            again.join(three.map(\.id))
            again.run()
            XCTAssertTrue(again.finished, "stopped after \(stopAfter) steps in phase \(snap.meta.phase)")
            assertClose(again.model, want, accuracy: 1e-6, "stopped after \(stopAfter) steps in phase \(snap.meta.phase)")
            XCTAssertEqual(again.records.map(\.round).last, 3)
        }
    }

    func testJournalAndSnapshotSurviveTheirByteEncoding() throws {
        let h = harness(flatConfig(rounds: 2, evaluate: false))
        h.join(three.map(\.id))
        h.run(until: { $0.journal.count >= 2 })
        let snap = try XCTUnwrap(h.snapshot)
        let bytes = h.journal.flatMap { $0.encoded() }
        let (entries, dropped) = JournalEntry.decodeJournal(bytes + [1, 2, 3])
        XCTAssertEqual(entries, h.journal)
        XCTAssertEqual(dropped, 3, "a torn tail is dropped, not misread")
        let back = try EngineSnapshot(decoding: snap.encoded())
        XCTAssertEqual(back.blobs, snap.blobs)
        var corrupt = snap.encoded()
        corrupt[corrupt.count / 2] ^= 0xff
        XCTAssertThrowsError(try EngineSnapshot(decoding: corrupt)) { XCTAssertEqual($0 as? SnapshotCodingError, .checksum) }
        XCTAssertThrowsError(try EngineSnapshot(decoding: Array(corrupt.prefix(10))))
        XCTAssertThrowsError(try RoundEngine(restoring: back, journal: [], config: flatConfig(paradigm: "async"), algorithm: syncAlgorithm(), cost: FixedCost()))
    }

    func testAutomaticClusteringSplitsThePlantedGroupsAndTellsTheManager() throws {
        // Two groups pulling opposite ways, plus a shared direction that centring removes.
        let devices = (0..<6).map { i in ScriptedDevice(id: "device-\(i)", target: i < 3 ? [4, 1, 0] : [-4, 1, 0.5], domain: i < 3 ? "x" : "y") }
        let h = harness(flatConfig(rounds: 3, paradigm: "clustered"), syncAlgorithm(.automatic, dim: 3, warmup: 1), devices: devices)
        h.join(devices.map(\.id))
        h.run()
        let map = try XCTUnwrap(h.clusterMaps.last)
        XCTAssertEqual(Set(map.values).count, 2)
        XCTAssertEqual(Set((0..<3).map { map["device-\($0)"]! }).count, 1)
        XCTAssertNotEqual(map["device-0"], map["device-3"])
        XCTAssertEqual(h.summary?.ari ?? 0, 1, accuracy: 1e-9)
        XCTAssertEqual(h.records.last?.clusters, map)
        // Each cluster's model moved towards its own group's target.
        let m = h.engine.models
        XCTAssertGreaterThan(m[map["device-0"]!]!.parameters[0], 1)
        XCTAssertLessThan(m[map["device-3"]!]!.parameters[0], -1)
    }

    func testIFCADevicesChooseTheirModelByLossAfterTheWarmUp() throws {
        let devices = (0..<6).map { i in ScriptedDevice(id: "device-\(i)", target: i % 2 == 0 ? [3, 0] : [-3, 0], domain: i % 2 == 0 ? "x" : "y") }
        let h = harness(flatConfig(rounds: 4, paradigm: "clustered"), syncAlgorithm(.ifca(k: 2), warmup: 1), devices: devices)
        h.join(devices.map(\.id))
        h.run()
        let choosing = h.sent.compactMap { m -> RoundTask? in if case .task(let t, _) = m.0, t.chooseByLoss { return t }; return nil }
        XCTAssertFalse(choosing.isEmpty, "after the warm-up every task offers every model")
        XCTAssertTrue(choosing.allSatisfy { $0.models == [0, 1] })
        let map = try XCTUnwrap(h.clusterMaps.last)
        XCTAssertEqual(Set([0, 2, 4].map { map["device-\($0)"]! }).count, 1)
        XCTAssertNotEqual(map["device-0"], map["device-1"])
        XCTAssertEqual(h.summary?.ari ?? 0, 1, accuracy: 1e-9)
    }

    func testRobustStrategiesKeepAnInflatedSignFlippedUploadOutOfTheModel() throws {
        let honest = [ScriptedDevice(id: "device-0", target: [1, 1]), ScriptedDevice(id: "device-1", target: [1.1, 0.9]),
                      ScriptedDevice(id: "device-2", target: [0.9, 1.1])]
        func attacked(_ rule: CombineRule) -> [Float] {
            let h = harness(flatConfig(rounds: 4, evaluate: false), syncAlgorithm(rule: rule), devices: honest + [ScriptedDevice(id: "attacker", target: [0, 0])])
            h.join(honest.map(\.id) + ["attacker"])
            // The attacker answers every task with −20× the model it got (minus 1) and a million samples.
            h.run(until: { h in
                if let i = h.pending.firstIndex(where: { $0.0 == "attacker" }), case .task(let t, let ms) = h.pending[i].1 {
                    h.pending.remove(at: i)
                    h.handle(.upload(from: "attacker", Upload(wire: t.wire, baseWire: t.wire, samples: 1_000_000, loss: 0,
                                                              delta: .success(ms[0]!.map { -20 * $0 - 1 }), bytes: 1)), from: "attacker")
                }
                return h.finished
            })
            return h.model
        }
        for strategy in ["krum", "multi_krum", "median", "trimmed_mean", "norm_bounded"] {
            var s = StrategySettings(name: strategy)
            s.maxNorm = 0.5
            let rule = CombineRule(strategy: try s.make(), maxWeight: 0.25)
            let clean = harness(flatConfig(rounds: 4, evaluate: false), syncAlgorithm(rule: rule), devices: honest)
            clean.join(honest.map(\.id))
            clean.run()
            let model = attacked(rule)
            if strategy == "norm_bounded" {
                // Bounded, not removed: each attack step is at most max_norm at a quarter weight, so most progress remains.
                for (a, c) in zip(model, clean.model) { XCTAssertGreaterThan(a, 0.6 * c, "\(strategy): \(model) vs \(clean.model)") }
            } else {
                let dist = zip(model, clean.model).map { abs($0 - $1) }.max() ?? 1
                XCTAssertLessThan(dist, 0.1, "\(strategy): \(model) vs \(clean.model)")
            }
        }
        // Plain FedAvg is not robust: even capped at a quarter, the attacker drags the model the other way.
        XCTAssertTrue(attacked(CombineRule(strategy: FedAvg(), maxWeight: 0.25)).allSatisfy { $0 < 0 })
    }

    func testFedProxMuAndFrozenATravelInTheTask() throws {
        var config = ClusteredFederationConfig()
        config.rule = CombineRule()
        let algo = Algorithm.synchronous(SynchronousAlgorithm(policy: .single, config: config, initial: flatGlobal([0, 0]),
                                                              settings: LocalSettings(steps: 7, learningRate: 0.01, proximalMu: 0.3, freezeA: true)))
        let h = harness(flatConfig(rounds: 1, evaluate: false), algo)
        h.join(three.map(\.id))
        h.handle(.tick)
        guard case .task(let t, _) = try XCTUnwrap(h.sent.first).0 else { return XCTFail() }
        XCTAssertEqual(t.settings, LocalSettings(steps: 7, learningRate: 0.01, proximalMu: 0.3, freezeA: true))
    }
}
