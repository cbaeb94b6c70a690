import Federation
import XCTest

final class ValidationTests: XCTestCase {
    func rejection(_ body: () throws -> Void) -> UpdateRejection? {
        do { try body(); return nil } catch { return error as? UpdateRejection }
    }

    func testRejectsNaNWrongLengthOversizedAndLeavesGlobalUnchanged() throws {
        let start = flatGlobal([1, 2])
        var global = start
        var fedAvg = FedAvg(validator: UpdateValidator(maxNorm: 10, maxParameters: 4, maxStaleness: 0))
        var counter = RejectionCounter()
        let bad: [(ModelUpdate, UpdateRejection)] = [
            (ModelUpdate(device: "nan", samples: 1, baseVersion: 0, delta: [0, .nan]), .nonFinite(index: 1)),
            (ModelUpdate(device: "inf", samples: 1, baseVersion: 0, delta: [-.infinity, 0]), .nonFinite(index: 0)),
            (ModelUpdate(device: "len", samples: 1, baseVersion: 0, delta: [1, 2, 3]), .wrongLength(expected: 2, actual: 3)),
            (ModelUpdate(device: "big", samples: 1, baseVersion: 0, delta: [100, 0]), .normTooLarge(norm: 100, limit: 10)),
            (ModelUpdate(device: "huge", samples: 1, baseVersion: 0, delta: [Float](repeating: 0, count: 5)), .tooLarge(parameters: 5, limit: 4)),
            (ModelUpdate(device: "zero", samples: 0, baseVersion: 0, delta: [1, 1]), .nonPositiveSamples(0)),
            (ModelUpdate(device: "future", samples: 1, baseVersion: 3, delta: [1, 1]), .fromFuture(baseVersion: 3, currentVersion: 0)),
        ]
        for (u, expected) in bad {
            let r = rejection { _ = try fedAvg.submit(u, to: &global) }
            XCTAssertEqual(r, expected, u.device)
            if let r { counter.record(r) }
            XCTAssertFalse((r?.description ?? "").isEmpty)
        }
        XCTAssertEqual(global, start)
        XCTAssertEqual(fedAvg.pendingCount, 0)
        XCTAssertEqual(fedAvg.closeRound(&global), .belowQuorum(received: 0, required: 1))
        XCTAssertEqual(global, start)
        XCTAssertEqual(counter.total, 7)
        XCTAssertEqual(counter.counts["non_finite"], 2)

        // One good update plus a duplicate: only the good one counts.
        _ = try fedAvg.submit(ModelUpdate(device: "ok", samples: 1, baseVersion: 0, delta: [1, 1]), to: &global)
        XCTAssertEqual(rejection { _ = try fedAvg.submit(ModelUpdate(device: "ok", samples: 5, baseVersion: 0, delta: [9, 9]), to: &global) },
                       .duplicate(device: "ok", round: 0))
        _ = fedAvg.closeRound(&global)
        XCTAssertEqual(global.parameters, [2, 3])
    }

    func testSyncRoundRejectsStaleUpdate() {
        var global = flatGlobal([0], version: 2)
        var fedAvg = FedAvg()
        XCTAssertEqual(rejection { _ = try fedAvg.submit(ModelUpdate(device: "a", samples: 1, baseVersion: 1, delta: [1]), to: &global) },
                       .staleBeyond(staleness: 1, limit: 0))
        XCTAssertEqual(global.parameters, [0])
    }
}
