import Federation
import XCTest

/// Fast device a (1 s per task), b (2 s), straggler s (10 s: 10× slower than a).
private let taskSeconds: [String: TaskDurations] = [
    "a": TaskDurations(download: 0.25, compute: 0.5, upload: 0.25),
    "b": TaskDurations(download: 0.5, compute: 1, upload: 0.5),
    "s": TaskDurations(download: 0.5, compute: 9, upload: 0.5),
]

private func update(for d: AsyncDispatch) -> ModelUpdate {
    ModelUpdate(device: d.device, round: d.sequence, samples: 1, baseVersion: d.version, delta: [1, 0], loss: 0)
}

/// Drives the scheduler like the aggregator would: tasks finish in wall-clock order `pick` chooses.
private func simulate(stop: AsyncStopCondition, pick: ([AsyncDispatch]) -> Int,
                      strategy: any AsynchronousRule = FedAsync(alpha: 0.5, staleness: .polynomial(a: 0.5)))
    throws -> (applications: [AsyncApplication], scheduler: AsyncScheduler) {
    var scheduler = AsyncScheduler(strategy: strategy, global: flatGlobal([0, 0]), stop: stop)
    var outstanding = scheduler.start(devices: ["s", "b", "a"])
    var log: [AsyncApplication] = []
    while !outstanding.isEmpty && !scheduler.isFinished {
        let d = outstanding.remove(at: pick(outstanding))
        let applied = try scheduler.report(update(for: d), durations: taskSeconds[d.device]!)
        log += applied
        outstanding += applied.compactMap(\.next)
    }
    return (log, scheduler)
}

final class AsyncSchedulerTests: XCTestCase {
    func testUpdatesApplyInSimArrivalOrderWithStalenessAndTheStragglerDoesNotBlock() throws {
        let (log, scheduler) = try simulate(stop: .simTime(10), pick: { _ in 0 })
        // a arrives at 1, 2, …, 10; b at 2, 4, …, 10; s once at 10. Ties: the earlier dispatch first.
        let expected: [(String, Double)] = [("a", 1), ("b", 2), ("a", 2), ("a", 3), ("b", 4), ("a", 4), ("a", 5),
                                            ("b", 6), ("a", 6), ("a", 7), ("b", 8), ("a", 8), ("a", 9),
                                            ("s", 10), ("b", 10), ("a", 10)]
        XCTAssertEqual(log.map(\.device), expected.map(\.0))
        XCTAssertEqual(log.map(\.arrival), expected.map(\.1))
        // τ = versions applied since dispatch: s was dispatched with version 0 and 13 updates came before it.
        XCTAssertEqual(log.map(\.staleness), [0, 1, 1, 0, 2, 1, 0, 2, 1, 0, 2, 1, 0, 13, 3, 2])
        XCTAssertEqual(log.first { $0.device == "s" }?.dispatch.version, 0)
        // Fast devices kept going while the straggler trained: 9 of a's updates landed before s's first.
        XCTAssertEqual(log.prefix { $0.device != "s" }.filter { $0.device == "a" }.count, 9)
        XCTAssertEqual(scheduler.now, 10)
        XCTAssertEqual(scheduler.global.version, 16)
        XCTAssertEqual(scheduler.accepted, 16)
        XCTAssertTrue(scheduler.isFinished)
        XCTAssertTrue(log.allSatisfy { if case .applied = $0.outcome { return true } else { return false } })
        // Each device is re-dispatched at its arrival with the version its update produced.
        let second = log[1]
        XCTAssertEqual(second.next?.simTime, 2)
        XCTAssertEqual(second.next?.version, 2)
    }

    func testWallClockReportOrderDoesNotChangeTheResult() throws {
        let fifo = try simulate(stop: .appliedUpdates(12), pick: { _ in 0 })
        let lifo = try simulate(stop: .appliedUpdates(12), pick: { $0.count - 1 })
        var rng = SeededRandom(seed: 9)
        let random = try simulate(stop: .appliedUpdates(12), pick: { Int(rng.next() % UInt64($0.count)) })
        XCTAssertEqual(fifo.applications, lifo.applications)
        XCTAssertEqual(fifo.applications, random.applications)
        XCTAssertEqual(fifo.scheduler.global, random.scheduler.global)
        XCTAssertEqual(fifo.applications.count, 12)
        XCTAssertNil(fifo.applications.last?.next)
    }

    func testNothingIsReleasedWhileAnInFlightDeviceCouldStillArriveEarlier() throws {
        var scheduler = AsyncScheduler(strategy: FedAsync(), global: flatGlobal([0, 0]))
        let tasks = Dictionary(uniqueKeysWithValues: scheduler.start(devices: ["a", "b", "s"]).map { ($0.device, $0) })
        XCTAssertEqual(try scheduler.report(update(for: tasks["s"]!), durations: taskSeconds["s"]!), [])
        XCTAssertEqual(try scheduler.report(update(for: tasks["b"]!), durations: taskSeconds["b"]!), [])
        XCTAssertEqual(scheduler.awaiting, ["a"])
        let released = try scheduler.report(update(for: tasks["a"]!), durations: taskSeconds["a"]!)
        // Only a's update: a is re-dispatched at 1 and could come back before b (2).
        XCTAssertEqual(released.map(\.device), ["a"])
        XCTAssertEqual(scheduler.queued, 2)
        XCTAssertEqual(scheduler.awaiting, ["a"])
    }

    func testLookaheadReleasesUpdatesThatNoInFlightTaskCanPrecede() throws {
        var scheduler = AsyncScheduler(strategy: FedAsync(), global: flatGlobal([0, 0]), lookahead: 1)
        let tasks = Dictionary(uniqueKeysWithValues: scheduler.start(devices: ["a", "b"]).map { ($0.device, $0) })
        // b (arrives 2) reports; a is in flight but arrives ≥ 0 + 1, which could still precede 2.
        XCTAssertEqual(try scheduler.report(update(for: tasks["b"]!), durations: taskSeconds["b"]!), [])
        let released = try scheduler.report(update(for: tasks["a"]!), durations: taskSeconds["a"]!)
        // a at 1, re-dispatched at 1 → arrives ≥ 2; b at 2 was dispatched earlier, so it goes too.
        XCTAssertEqual(released.map(\.device), ["a", "b"])
    }

    func testFedBuffAppliesEveryKUpdatesAndFlushesAtTheEnd() throws {
        let (log, scheduler) = try simulate(stop: .appliedUpdates(5), pick: { _ in 0 },
                                            strategy: FedBuff(bufferSize: 2, staleness: .constant))
        let applied = log.filter { if case .applied = $0.outcome { return true } else { return false } }
        XCTAssertEqual(applied.count, 2)
        XCTAssertEqual(scheduler.global.version, 2)
        var s = scheduler
        XCTAssertEqual(s.finish()?.contributors.count, 1)
        XCTAssertEqual(s.global.version, 3)
    }

    func testBadReportsAreTypedErrors() throws {
        var scheduler = AsyncScheduler(strategy: FedAsync(), global: flatGlobal([0, 0]))
        let a = scheduler.start(devices: ["a", "b"])[0]
        XCTAssertThrowsError(try scheduler.report(ModelUpdate(device: "z", samples: 1, baseVersion: 0, delta: [0, 0]),
                                                  durations: TaskDurations(compute: 1))) {
            XCTAssertEqual($0 as? ParadigmError, .notDispatched(device: "z"))
        }
        XCTAssertThrowsError(try scheduler.report(ModelUpdate(device: "a", samples: 1, baseVersion: 3, delta: [0, 0]),
                                                  durations: TaskDurations(compute: 1))) {
            XCTAssertEqual($0 as? ParadigmError, .versionMismatch(device: "a", dispatched: 0, reported: 3))
        }
        XCTAssertThrowsError(try scheduler.report(update(for: a), durations: TaskDurations(compute: -1))) {
            XCTAssertEqual($0 as? ParadigmError, .invalidDuration(device: "a", seconds: -1))
        }
        _ = try scheduler.report(update(for: a), durations: TaskDurations(compute: 1))
        XCTAssertThrowsError(try scheduler.report(update(for: a), durations: TaskDurations(compute: 1))) {
            XCTAssertEqual($0 as? ParadigmError, .alreadyReported(device: "a"))
        }
        // A dead device is cancelled so the queue moves on.
        XCTAssertEqual(scheduler.cancel("b").map(\.device), ["a"])
    }
}

final class AsyncVersusSyncTests: XCTestCase {
    /// 10 devices, 2 of them 10× slower; every device takes a half step toward c = (1, −1) from the model it got.
    func testFedAsyncReachesSyncFedAvgsFinalLossInFarLessSimTimeWithStragglers() throws {
        let c: [Float] = [1, -1]
        func loss(_ x: [Float]) -> Double { zip(x, c).reduce(0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } }
        func step(_ x: [Float]) -> [Float] { zip(x, c).map { 0.5 * ($1 - $0) } }
        let devices = (0..<10).map { "d\($0)" }
        let seconds = Dictionary(uniqueKeysWithValues: devices.enumerated().map { ($1, $0 < 2 ? 10.0 : 1.0) })

        // Sync FedAvg: a round lasts as long as its slowest device.
        var global = flatGlobal([0, 0])
        for r in 1...5 {
            let round = devices.map { ModelUpdate(device: $0, round: UInt64(r), samples: 1, baseVersion: global.version, delta: step(global.parameters)) }
            let c = try XCTUnwrap(combineRound(CombineRule(), round, base: global.parameters))
            for i in global.parameters.indices { global.parameters[i] += c.step[i] }
            global.version += 1
        }
        let syncTime = 5 * (seconds.values.max() ?? 0)
        let target = loss(global.parameters)

        // FedAsync on the virtual clock: the first sim time its global is at least as good.
        var scheduler = AsyncScheduler(strategy: FedAsync(alpha: 0.6, staleness: .polynomial(a: 0.5)),
                                       global: flatGlobal([0, 0]), stop: .simTime(syncTime))
        var models: [UInt64: [Float]] = [0: [0, 0]]
        var outstanding = scheduler.start(devices: devices)
        var reached: Double? = nil
        while !outstanding.isEmpty && !scheduler.isFinished && reached == nil {
            let d = outstanding.removeFirst()
            let u = ModelUpdate(device: d.device, round: d.sequence, samples: 1, baseVersion: d.version, delta: step(models[d.version]!))
            for a in try scheduler.report(u, durations: TaskDurations(compute: seconds[d.device]!)) {
                models[scheduler.global.version] = scheduler.global.parameters
                if reached == nil, loss(scheduler.global.parameters) <= target { reached = a.arrival }
                if let next = a.next { models[next.version] = scheduler.global.parameters; outstanding.append(next) }
            }
        }
        let asyncTime = try XCTUnwrap(reached, "async never reached the sync loss \(target)")
        XCTAssertLessThanOrEqual(asyncTime / syncTime, 0.5, "async \(asyncTime) s vs sync \(syncTime) s")
    }
}
