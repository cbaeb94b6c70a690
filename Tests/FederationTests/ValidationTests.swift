import Federation
import XCTest

final class ValidationTests: XCTestCase {
    func rejection(_ body: () throws -> Void) -> UpdateRejection? {
        do { try body(); return nil } catch { return error as? UpdateRejection }
    }

    func testRejectsNaNWrongLengthOversizedAndLeavesTheFederationUnchanged() throws {
        let validator = UpdateValidator(maxNorm: 10, maxParameters: 4, maxStaleness: 0)
        let global = flatGlobal([1, 2])
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
            let r = rejection { try validator.validate(u, against: global) }
            XCTAssertEqual(r, expected, u.device)
            if let r { counter.record(r) }
            XCTAssertFalse((r?.description ?? "").isEmpty)
        }
        XCTAssertEqual(counter.total, 7)
        XCTAssertEqual(counter.counts["non_finite"], 2)

        // Through a federation: every bad one is refused with its kind, and the model only moves by the good one.
        var config = ClusteredFederationConfig(validator: validator)
        config.rule = CombineRule()
        var fed = try ClusteredFederation(devices: bad.map(\.0.device) + ["ok"], initial: global,
                                          mode: .oracle(Dictionary(uniqueKeysWithValues: (bad.map(\.0.device) + ["ok"]).map { ($0, 0) })), config: config)
        for (u, expected) in bad { XCTAssertEqual(fed.accept(u)?.kind, expected.kind) }
        XCTAssertNil(fed.accept(ModelUpdate(device: "ok", samples: 1, baseVersion: 0, delta: [1, 1])))
        let round = fed.closeRound()
        XCTAssertEqual(round.rejected.count, bad.count)
        XCTAssertEqual(fed.models[0]?.parameters, [2, 3])
    }

    func testSyncRoundRejectsStaleUpdate() {
        let validator = UpdateValidator(maxStaleness: 0)
        XCTAssertEqual(rejection { try validator.validate(ModelUpdate(device: "a", samples: 1, baseVersion: 1, delta: [1]), against: flatGlobal([0], version: 2)) },
                       .staleBeyond(staleness: 1, limit: 0))
    }
}
