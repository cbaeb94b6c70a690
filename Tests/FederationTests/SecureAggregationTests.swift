@testable import Federation
import Foundation
import XCTest

/// Secure aggregation (SecAgg / SecAgg+) as pure state machines: the recovered sum, dropouts, the masks' uniformity,
/// refusals; then a whole secure round through the engine.
final class SecureAggregationTests: XCTestCase {
    struct Run {
        var sum: [Double]
        var contributors: [String]
        var step: Double
        var server: SecAggServer
        var uploads: [String: [UInt32]]
    }

    /// Drives n clients and one server through a round; `drop` stop answering after the sharing step.
    func runProtocol(_ inputs: [String: [Float]], neighbours: Int = 0, drop: Set<String> = [], seed: UInt64 = 1) throws -> Run {
        let ids = inputs.keys.sorted()
        let length = inputs.values.first!.count
        var rng = SeededRandom(seed: seed)
        var clients = Dictionary(uniqueKeysWithValues: ids.map { ($0, SecAggClient(id: $0, wire: 42, using: &rng)) })
        var server = SecAggServer(wire: 42, group: 0, keys: clients.mapValues(\.publicKeys), weights: Dictionary(uniqueKeysWithValues: ids.map { ($0, 1) }),
                                  bounds: Dictionary(uniqueKeysWithValues: ids.map { ($0, 1) }), length: length, neighbours: neighbours)
        for id in ids {
            let cts = try clients[id]!.share(server.assignment(for: id)!, using: &rng)
            try server.shares(from: id, cts)
        }
        XCTAssertTrue(server.allShared)
        for (v, cts) in server.closeSharing() { try clients[v]!.receive(cts) }
        var uploads: [String: [UInt32]] = [:]
        for id in ids where !drop.contains(id) {
            let y = try clients[id]!.mask(inputs[id]!)
            uploads[id] = y
            try server.masked(from: id, y)
        }
        for (u, r) in server.closeMasking() {
            try server.reveal(from: u, try clients[u]!.reveal(survivors: r.survivors, dropped: r.dropped))
        }
        XCTAssertTrue(server.recoverable, server.failure ?? "")
        let out = try server.finish()
        return Run(sum: out.sum, contributors: out.contributors, step: server.fixedPoint.step, server: server, uploads: uploads)
    }

    func inputs(_ n: Int, length: Int, scale: Double = 0.05) -> [String: [Float]] {
        Dictionary(uniqueKeysWithValues: (0..<n).map { ("d\($0)", randomVector(length, seed: UInt64(100 + $0), scale: scale)) })
    }

    func plainSum(_ x: [String: [Float]], of ids: [String]) -> [Double] {
        var s = [Double](repeating: 0, count: x.values.first!.count)
        for id in ids { for (i, v) in x[id]!.enumerated() { s[i] += Double(v) } }
        return s
    }

    func testSecureSumEqualsThePlainSumWithinTheFixedPointStep() throws {
        let x = inputs(12, length: 2000)
        let r = try runProtocol(x)
        XCTAssertEqual(r.contributors, x.keys.sorted())
        let plain = plainSum(x, of: r.contributors)
        // Each device rounds to the nearest step: the sum is off by at most n/2 steps per coordinate.
        let worst = zip(r.sum, plain).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(worst, 12 * r.step / 2 + 1e-12)
        XCTAssertGreaterThan(plain.map(abs).max()!, 1000 * r.step, "the test's values are far above the step")
    }

    /// Full SecAgg: a third of 30 devices drop after sharing; their masks are rebuilt from their neighbours' shares.
    func testAThirdDroppingAfterSharingStillGivesTheSurvivorsSum() throws {
        let x = inputs(30, length: 500)
        let dropped = Set((0..<10).map { "d\($0 * 3)" })
        let r = try runProtocol(x, drop: dropped)
        XCTAssertEqual(Set(r.contributors), Set(x.keys).subtracting(dropped))
        let plain = plainSum(x, of: r.contributors)
        XCTAssertLessThanOrEqual(zip(r.sum, plain).map { abs($0 - $1) }.max()!, 20 * r.step / 2 + 1e-12)
        XCTAssertEqual(r.server.threshold, 15)
    }

    /// SecAgg+: each device pairs with 20 of 45 on a random ring (threshold 11), so any 9 devices may drop after sharing
    /// and every secret still has its 11 shares, whatever the ring.
    func testSecAggPlusRecoversWithAsManyDroppedAsItsNeighbourhoodSlack() throws {
        let x = inputs(45, length: 300)
        let dropped = Set((0..<9).map { "d\($0 * 5 + 1)" })
        let r = try runProtocol(x, neighbours: 20, drop: dropped)
        XCTAssertEqual(r.server.neighbours["d0"]?.count, 20)
        XCTAssertEqual(r.server.threshold, 11)
        XCTAssertEqual(r.contributors.count, 36)
        let plain = plainSum(x, of: r.contributors)
        XCTAssertLessThanOrEqual(zip(r.sum, plain).map { abs($0 - $1) }.max()!, 36 * r.step / 2 + 1e-12)
    }

    /// What the aggregator receives from one device is indistinguishable from uniform words: a χ² test on the top byte
    /// (255 degrees of freedom; 330.5 is the 0.1% critical value). The same input unmasked fails it by far.
    func testASingleMaskedUploadPassesAUniformityTest() throws {
        var x = inputs(3, length: 65_536, scale: 0.001)
        x["d0"] = [Float](repeating: 0.25, count: 65_536)  // a very non-uniform input
        let r = try runProtocol(x)
        func chiSquare(_ words: [UInt32]) -> Double {
            var bins = [Int](repeating: 0, count: 256)
            for w in words { bins[Int(w >> 24)] += 1 }
            let e = Double(words.count) / 256
            return bins.reduce(0) { $0 + (Double($1) - e) * (Double($1) - e) / e }
        }
        XCTAssertLessThan(chiSquare(r.uploads["d0"]!), 330.5)
        XCTAssertLessThan(chiSquare(r.uploads["d0"]!.map { $0 << 24 }), 330.5, "the low byte too")
        let unmasked = r.server.fixedPoint.encode(x["d0"]!)
        XCTAssertGreaterThan(chiSquare(unmasked), 10_000)
    }

    func testClientRefusesASecondRevealAndTooFewSurvivors() throws {
        var rng = SeededRandom(seed: 5)
        let ids = (0..<6).map { "d\($0)" }
        var clients = Dictionary(uniqueKeysWithValues: ids.map { ($0, SecAggClient(id: $0, wire: 7, using: &rng)) })
        var server = SecAggServer(wire: 7, group: 0, keys: clients.mapValues(\.publicKeys), weights: [:], bounds: [:], length: 4, neighbours: 0)
        for id in ids { try server.shares(from: id, try clients[id]!.share(server.assignment(for: id)!, using: &rng)) }
        for (v, cts) in server.closeSharing() { try clients[v]!.receive(cts) }
        var c = clients["d0"]!
        XCTAssertEqual(server.threshold, 3)
        XCTAssertThrowsError(try c.reveal(survivors: ["d1"], dropped: ["d2", "d3", "d4", "d5"])) {
            XCTAssertEqual($0 as? SecAggError, .tooFewSurvivors(have: 2, need: 3))
        }
        XCTAssertThrowsError(try c.reveal(survivors: ["d1", "d2"], dropped: ["d2"]))  // both lists
        XCTAssertThrowsError(try c.reveal(survivors: ["d1", "stranger"], dropped: []))
        _ = try c.reveal(survivors: ["d1", "d2", "d3"], dropped: ["d4", "d5"])
        XCTAssertThrowsError(try c.reveal(survivors: ["d1", "d2", "d3"], dropped: ["d4", "d5"])) {
            XCTAssertEqual($0 as? SecAggError, .wrongPhase("a second unmask request for round 7"))
        }
    }

    func testTamperedSharesAndBadInputsAreTypedErrors() throws {
        var rng = SeededRandom(seed: 9)
        let ids = ["a", "b", "c"]
        var clients = Dictionary(uniqueKeysWithValues: ids.map { ($0, SecAggClient(id: $0, wire: 3, using: &rng)) })
        var server = SecAggServer(wire: 3, group: 0, keys: clients.mapValues(\.publicKeys), weights: [:], bounds: [:], length: 8, neighbours: 0)
        XCTAssertThrowsError(try clients["a"]!.mask([Float](repeating: 0, count: 8)))  // before the shares
        for id in ids { try server.shares(from: id, try clients[id]!.share(server.assignment(for: id)!, using: &rng)) }
        XCTAssertThrowsError(try server.shares(from: "mallory", [])) { XCTAssertEqual($0 as? SecAggError, .unknownPeer("mallory")) }
        var deliveries = server.closeSharing()
        deliveries["a"]![0].ciphertext[20] ^= 1
        XCTAssertThrowsError(try clients["a"]!.receive(deliveries["a"]!)) {
            XCTAssertEqual($0 as? SecAggError, .badCiphertext(from: deliveries["a"]![0].from))
        }
        try clients["b"]!.receive(deliveries["b"]!)
        XCTAssertThrowsError(try clients["b"]!.mask([1, 2])) { XCTAssertEqual($0 as? SecAggError, .wrongLength(expected: 8, actual: 2)) }
        XCTAssertThrowsError(try server.masked(from: "b", [1, 2, 3])) { XCTAssertEqual($0 as? SecAggError, .wrongLength(expected: 8, actual: 3)) }
        XCTAssertThrowsError(try server.reveal(from: "b", [])) // not in the unmasking step yet
    }

    func testFixedPointEncodingRoundsToTheStepAndClampsToTheBound() {
        let fp = FixedPoint(step: 0.001, bound: 1)
        XCTAssertEqual(fp.decode(fp.encode([0.0104, -0.0106, 5, -5, .nan])), [0.010, -0.011, 1, -1, 0].map { Double($0) }, "")
        XCTAssertEqual(FixedPoint.step(bounds: [1, 1]) * Double(Int32.max - 1), 2, accuracy: 1e-12)
    }

    // MARK: through the engine

    func secureEngine(devices: [ScriptedDevice], secure: Bool, rounds: Int = 2) -> EngineHarness {
        let settings = PrivacySettings(clip: 100, noiseMultiplier: 0, secure: secure ? SecAggSettings() : nil)
        let engine = RoundEngine(config: flatConfig(rounds: rounds, deadline: 8), algorithm: syncAlgorithm(dim: 3, privacy: settings), cost: FixedCost())
        let h = EngineHarness(engine, devices: devices)
        h.join(devices.map(\.id))
        return h
    }

    /// A secure run ends where the same run without secure aggregation ends (within the fixed-point step), also when
    /// devices drop after sharing; the aggregator saw no individual delta.
    func testSecureRoundsThroughTheEngineMatchThePlainRun() {
        let devices = (0..<6).map { ScriptedDevice(id: "d\($0)", target: [Float($0), -1, 0.5 * Float($0)]) }
        let plain = secureEngine(devices: devices, secure: false)
        plain.silent = ["d2", "d4"]
        plain.run()
        let secure = secureEngine(devices: devices, secure: true)
        secure.dropAfterSharing = ["d2", "d4"]
        secure.run()
        XCTAssertTrue(secure.finished)
        assertClose(secure.model, plain.model, accuracy: 1e-4)
        XCTAssertNotEqual(secure.model, [0, 0, 0])
        XCTAssertTrue(secure.journal.allSatisfy { if case .upload = $0.kind { return false }; return true }, "no delta was journalled")
        let rosters = secure.sent.filter { if case .secAgg(.roster) = $0.0 { return true }; return false }
        XCTAssertEqual(rosters.count, 12)
        XCTAssertEqual(secure.records.last?.participants, 6)
    }
}
