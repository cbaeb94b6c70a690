import Federation
import XCTest

/// 12 devices, 4 domains × 3: delta = big shared direction + domain direction + noise (like real LoRA deltas).
private struct DomainFixture {
    let dim: Int
    let devices = (0..<12).map { "device-\($0)" }
    let common: [Float]
    let domainDirections: [[Float]]

    init(dim: Int = 64, commonScale: Double = 10, domains: Int = 4) {
        self.dim = dim
        common = randomVector(dim, seed: 1, scale: commonScale / Double(dim).squareRoot())
        domainDirections = (0..<domains).map { randomVector(dim, seed: 100 + UInt64($0), scale: 1 / Double(dim).squareRoot()) }
    }

    /// Device i belongs to domain i % domains (like Data's domain scheme).
    func domain(_ i: Int) -> Int { i % domainDirections.count }
    var truth: [String: String] { Dictionary(uniqueKeysWithValues: devices.enumerated().map { ($1, "d\(domain($0))") }) }

    func updates(round: UInt64, version: UInt64 = 0, samples: (Int) -> Int = { 10 + $0 }) -> [ModelUpdate] {
        devices.enumerated().map { i, d in
            var delta = common
            for j in 0..<dim { delta[j] += domainDirections[domain(i)][j] }
            let noise = randomVector(dim, seed: 1000 * round + UInt64(i), scale: 0.05 / Double(dim).squareRoot())
            for j in 0..<dim { delta[j] += noise[j] }
            return ModelUpdate(device: d, round: round, samples: samples(i), baseVersion: version, delta: delta)
        }
    }
}

final class ClusteredFederationTests: XCTestCase {

    /// IFCA under secure aggregation: the seeding round sees sketches only. The k models start equal (no device's
    /// delta is in them), the sketches' clusters hold for one round, then devices choose; a snapshot keeps that.
    func testIFCASeededFromSketchesStartsEqualModelsAndAssignsOneRound() throws {
        let devices = ["a", "b", "c", "d"]
        var fed = try ClusteredFederation(devices: devices, initial: flatGlobal([Float](repeating: 0, count: 8)), mode: .ifca(k: 2),
                                          config: ClusteredFederationConfig(warmupRounds: 1), trueLabels: ["a": "x", "b": "x", "c": "y", "d": "y"])
        XCTAssertTrue(fed.seedsFromSketchesNext)
        // Secure sums combine under the privacy stage (clipping only here), as in the engine.
        let ledger = PrivacyLedger(settings: PrivacySettings(clip: 100, noiseMultiplier: 0, secure: SecAggSettings()))
        fed.roundPrivacy = ledger.round(wire: 1, clusters: nil)
        fed.acceptSum(cluster: 0, sum: [Double](repeating: 4, count: 8), devices: devices, samples: [1, 1, 1, 1], losses: [1, 1, 1, 1], unclipped: 0)
        for (d, v) in [("a", [1, 0.1, 0]), ("b", [0.9, 0, 0.1]), ("c", [0, 1, -0.2]), ("d", [0.1, 0.9, -0.1])] as [(String, [Float])] {
            fed.addClusteringPoint(device: d, vector: v)
        }
        _ = fed.closeRound()
        XCTAssertEqual(fed.models.count, 2)
        XCTAssertEqual(fed.models[0]?.parameters, fed.models[1]?.parameters, "no individual delta went into a seed")
        XCTAssertEqual(fed.adjustedRandIndexAgainstTruth() ?? 0, 1, accuracy: 1e-12)
        XCTAssertFalse(fed.devicesChoose, "the round after seeding trains the sketches' clusters")
        var blobs: [String: [Float]] = [:]
        let state = fed.snapshot(blobs: &blobs, prefix: "f/")
        let back = try ClusteredFederation(restoring: try JSONDecoder().decode(ClusteredFederationSnapshot.self, from: JSONEncoder().encode(state)),
                                           blobs: blobs, prefix: "f/", layout: .flat(8), mode: .ifca(k: 2), config: ClusteredFederationConfig(warmupRounds: 1))
        XCTAssertFalse(back.devicesChoose)
        fed.roundPrivacy = ledger.round(wire: 2, clusters: nil)
        for c in [0, 1] {
            let members = devices.filter { fed.cluster(of: $0) == c }
            fed.acceptSum(cluster: c, sum: [Double](repeating: Double(c + 1), count: 8), devices: members, samples: members.map { _ in 1 },
                          losses: members.map { _ in 1 }, unclipped: 0)
        }
        _ = fed.closeRound()
        XCTAssertTrue(fed.devicesChoose)
        XCTAssertNotEqual(fed.models[0]?.parameters, fed.models[1]?.parameters)
    }

    func testSnapshotRestoresTheFederationAndRejectsOneThatDoesNotFit() throws {
        let f = DomainFixture()
        var fed = try ClusteredFederation(devices: f.devices, initial: flatGlobal([Float](repeating: 0, count: f.dim)),
                                          config: ClusteredFederationConfig(warmupRounds: 1, reclusterEvery: 2), trueLabels: f.truth)
        _ = fed.aggregate(f.updates(round: 1))
        var blobs: [String: [Float]] = [:]
        let state = fed.snapshot(blobs: &blobs, prefix: "f/")
        let json = try JSONEncoder().encode(state)
        let decoded = try JSONDecoder().decode(ClusteredFederationSnapshot.self, from: json)
        XCTAssertEqual(decoded, state)
        let layout = try XCTUnwrap(fed.models.values.first?.layout)
        var back = try ClusteredFederation(restoring: decoded, blobs: blobs, prefix: "f/", layout: layout, mode: .automatic,
                                           config: ClusteredFederationConfig(warmupRounds: 1, reclusterEvery: 2), trueLabels: f.truth)
        XCTAssertEqual(back.clusterMap, fed.clusterMap)
        XCTAssertEqual(back.completedRounds, 1)
        XCTAssertEqual(back.reclusterings, fed.reclusterings)
        XCTAssertEqual(back.models, fed.models)
        // Both go on identically: same aggregation, the re-clustering due after round 3 on both.
        for r in 2...3 {
            let a = fed.aggregate(f.updates(round: UInt64(r), version: 1))
            let b = back.aggregate(f.updates(round: UInt64(r), version: 1))
            XCTAssertEqual(a, b, "round \(r)")
        }
        XCTAssertEqual(back.models, fed.models)

        var missing = state
        missing.assignment[f.devices[0]] = nil
        var unknown = state
        unknown.assignment[f.devices[0]] = 99
        let short = blobs.mapValues { Array($0.dropLast()) }
        for (s, m, what) in [(missing, blobs, "does not list exactly the devices"), (unknown, blobs, "cluster 99"), (state, short, "parameters")] {
            XCTAssertThrowsError(try ClusteredFederation(restoring: s, blobs: m, prefix: "f/", layout: layout, mode: .automatic, config: ClusteredFederationConfig())) {
                guard case .badSnapshot(let reason) = $0 as? ParadigmError else { return XCTFail("\($0)") }
                XCTAssertTrue(reason.contains(what), reason)
            }
        }
    }

    /// Exact LoRA inside clusters: each cluster's model is aggregateLoRA of its members (base + Δ), for flat rounds
    /// and for the hierarchy's per-cluster edge updates, and the round reports the naive gap.
    func testExactLoRAModeCombinesEachClusterExactly() throws {
        let layout = try ParameterLayout(entries: [(name: "m.lora_A.weight", shape: [2, 5]), (name: "m.lora_B.weight", shape: [6, 2])])
        let pair = try layout.loraPairs()[0]
        let base = randomVector(10, seed: 1) + [Float](repeating: 0, count: 12)
        let deltas = (0..<4).map { randomVector(22, seed: 10 + UInt64($0)) }
        let devices = ["a", "b", "c", "d"]
        let clusters = ["a": 0, "b": 0, "c": 1, "d": 1]
        let updates = zip(devices, deltas).map { ModelUpdate(device: $0, round: 1, samples: 1, baseVersion: 0, delta: $1) }
        func adapters(_ ds: [[Float]]) -> [[Float]] { ds.map { d in zip(base, d).map { $0 + $1 } } }
        for mode in [LoRAAggregationMode.productSVD, .naive] {
            var config = ClusteredFederationConfig()
            config.loraMode = mode
            var fed = try ClusteredFederation(devices: devices, initial: GlobalModel(layout: layout, parameters: base),
                                              mode: .oracle(clusters), config: config)
            let r = fed.aggregate(updates)
            // The cloud of a hierarchy: updates keyed by cluster, one per (edge, cluster).
            var hier = try ClusteredFederation(devices: devices, initial: GlobalModel(layout: layout, parameters: base),
                                               mode: .oracle(clusters), config: config)
            let hr = hier.aggregate(clusterUpdates: [0, 1].flatMap { c in (0..<2).map { k in
                (c, ModelUpdate(device: "edge-\(k)/c\(c)", samples: 1, baseVersion: 0, delta: deltas[2 * c + k])) } }, deviceDeltas: [])
            for (c, members) in [(0, Array(deltas[0..<2])), (1, Array(deltas[2..<4]))] {
                let want = try aggregateLoRA(adapters(members), weights: [0.5, 0.5], layout: layout, mode: mode, global: base)
                for got in [try XCTUnwrap(fed.models[c]?.parameters), try XCTUnwrap(hier.models[c]?.parameters)] {
                    assertClose(try weightedProduct([got], weights: [1], pair: pair), try weightedProduct([want], weights: [1], pair: pair),
                                accuracy: 1e-5, "\(mode) cluster \(c)")
                }
            }
            if mode == .naive {
                XCTAssertTrue(r.naiveProductGaps.isEmpty && hr.naiveProductGaps.isEmpty)
            } else {
                XCTAssertEqual(Set(r.naiveProductGaps.keys), [0, 1])
                XCTAssertGreaterThan(r.naiveProductGaps[0] ?? 0, 0.01, "random members: mean(B)·mean(A) ≠ mean(B·A)")
                XCTAssertEqual(hr.naiveProductGaps.keys.sorted(), [0, 1])
                XCTAssertTrue(r.combineErrors.isEmpty)
            }
        }
    }
    func testWarmupThenCenteredClusteringRecoversTheFourDomains() throws {
        let f = DomainFixture()
        var fed = try ClusteredFederation(devices: f.devices, initial: flatGlobal([Float](repeating: 0, count: f.dim)),
                                          config: ClusteredFederationConfig(warmupRounds: 2), trueLabels: f.truth)
        XCTAssertTrue(fed.isWarmingUp)
        let r1 = fed.aggregate(f.updates(round: 1))
        XCTAssertNil(r1.recluster)
        XCTAssertEqual(Set(r1.clusterMap.values), [0])
        XCTAssertEqual(r1.results[0]?.contributors.count, 12)
        let r2 = fed.aggregate(f.updates(round: 2, version: 1))
        let event = try XCTUnwrap(r2.recluster)
        XCTAssertEqual(event.k, 4)
        XCTAssertEqual(event.ari ?? 0, 1, accuracy: 1e-12)
        XCTAssertEqual(r2.ari ?? 0, 1, accuracy: 1e-12)
        XCTAssertFalse(fed.isWarmingUp)
        // One cluster keeps id 0, three new ones split from it and start from its aggregated model.
        XCTAssertEqual(fed.clusterIDs, [0, 1, 2, 3])
        XCTAssertEqual(event.newClusters, [1: 0, 2: 0, 3: 0])
        for c in 1...3 { XCTAssertEqual(fed.models[c], fed.models[0]) }
        // Devices of one domain share a cluster.
        for i in 0..<12 { XCTAssertEqual(fed.cluster(of: f.devices[i]), fed.cluster(of: f.devices[f.domain(i)])) }
    }

    func testWithoutCenteringTheSharedDirectionHidesTheDomains() throws {
        let f = DomainFixture()
        var fed = try ClusteredFederation(devices: f.devices, initial: flatGlobal([Float](repeating: 0, count: f.dim)),
                                          config: ClusteredFederationConfig(warmupRounds: 1, center: false))
        let event = try XCTUnwrap(fed.aggregate(f.updates(round: 1)).recluster)
        XCTAssertEqual(event.k, 1)
    }

    func testRandomProjectionSketchKeepsTheClusters() throws {
        let f = DomainFixture(dim: 2048)
        var fed = try ClusteredFederation(devices: f.devices, initial: flatGlobal([Float](repeating: 0, count: f.dim)),
                                          config: ClusteredFederationConfig(warmupRounds: 1, sketchDimension: 64, seed: 3),
                                          trueLabels: f.truth)
        let event = try XCTUnwrap(fed.aggregate(f.updates(round: 1)).recluster)
        XCTAssertEqual(event.k, 4)
        XCTAssertEqual(event.ari ?? 0, 1, accuracy: 1e-12)
    }

    func testReclusteringThatFindsNoStructureKeepsTheExistingClusters() throws {
        let two = DomainFixture(domains: 2), one = DomainFixture(domains: 1)
        var fed = try ClusteredFederation(devices: two.devices, initial: flatGlobal([Float](repeating: 0, count: 64)),
                                          config: ClusteredFederationConfig(warmupRounds: 1, reclusterEvery: 1), trueLabels: two.truth)
        XCTAssertEqual(try XCTUnwrap(fed.aggregate(two.updates(round: 1)).recluster).k, 2)
        let before = fed.clusterMap
        let later = try XCTUnwrap(fed.recluster(one.updates(round: 2, version: 1)))
        XCTAssertEqual(later.clusterMap, before, "k = 1 at a re-clustering must not merge every cluster into one")
        XCTAssertEqual(later.k, 2)
        XCTAssertEqual(fed.clusterIDs.count, 2)
    }

    func testReclusteringOnlySplitsUnlessMergeIsAllowed() throws {
        // Four clusters first; later deltas make domains {0,2} and {1,3} look alike.
        let four = DomainFixture(domains: 4), two = DomainFixture(domains: 2)
        for merge in [false, true] {
            var fed = try ClusteredFederation(devices: four.devices, initial: flatGlobal([Float](repeating: 0, count: 64)),
                                              config: ClusteredFederationConfig(warmupRounds: 1, reclusterEvery: 1, mergeOnRecluster: merge),
                                              trueLabels: four.truth)
            XCTAssertEqual(try XCTUnwrap(fed.aggregate(four.updates(round: 1)).recluster).k, 4)
            let before = fed.clusterMap
            let later = try XCTUnwrap(fed.recluster(two.updates(round: 2, version: 1)))
            if merge {
                XCTAssertEqual(later.k, 2)
                XCTAssertEqual(later.removedClusters.count, 2)
                XCTAssertEqual(fed.clusterIDs.count, 2)
            } else {
                XCTAssertEqual(later.clusterMap, before, "split-only: no two clusters merge")
                XCTAssertEqual(later.k, 4)
                XCTAssertEqual(later.ari ?? 0, 1, accuracy: 1e-12)
            }
        }
    }

    func testReclusteringKeepsIdsAndSplitsGetFreshIdsWithTheirParent() throws {
        // Round 1: domains {0,1} and {2,3} look alike (two clusters); later all four differ.
        let two = DomainFixture(domains: 2), four = DomainFixture(domains: 4)
        var fed = try ClusteredFederation(devices: four.devices, initial: flatGlobal([Float](repeating: 0, count: 64)),
                                          config: ClusteredFederationConfig(warmupRounds: 1, reclusterEvery: 1),
                                          trueLabels: four.truth)
        let first = try XCTUnwrap(fed.aggregate(two.updates(round: 1)).recluster)
        XCTAssertEqual(first.k, 2)
        XCTAssertEqual(first.newClusters, [1: 0])
        let before = fed.clusterMap
        // The same partition again: nothing moves.
        let same = try XCTUnwrap(fed.recluster(two.updates(round: 2, version: 1)))
        XCTAssertEqual(same.clusterMap, before)
        XCTAssertTrue(same.newClusters.isEmpty)
        XCTAssertTrue(same.removedClusters.isEmpty)
        // Four domains (device i has domain i % 4, so old cluster = i % 2): each old cluster splits in two.
        let split = try XCTUnwrap(fed.recluster(four.updates(round: 3, version: 1)))
        XCTAssertEqual(split.k, 4)
        XCTAssertEqual(split.ari ?? 0, 1, accuracy: 1e-12)
        XCTAssertEqual(Set(split.newClusters.keys), [2, 3])
        XCTAssertEqual(split.newClusters.values.sorted(), [0, 1])
        for (device, cluster) in split.clusterMap where cluster >= 2 {
            // A new cluster's members all come from its parent.
            XCTAssertEqual(before[device], split.newClusters[cluster])
        }
        for c in 0..<2 { XCTAssertTrue(split.clusterMap.values.contains(c)) }
    }

    func testEachClusterRunsSampleWeightedFedAvg() throws {
        let f = DomainFixture(dim: 8)
        let initial: [Float] = (0..<8).map { Float($0) }
        var fed = try ClusteredFederation(devices: f.devices, initial: flatGlobal(initial),
                                          mode: .oracle(labels: f.truth))
        XCTAssertEqual(fed.clusterIDs, [0, 1, 2, 3])
        let updates = f.updates(round: 1)
        let round = fed.aggregate(updates)
        XCTAssertNil(round.recluster)
        for c in 0..<4 {
            let members = updates.filter { fed.cluster(of: $0.device) == c }
            XCTAssertEqual(members.count, 3)
            let total = Float(members.map(\.samples).reduce(0, +))
            var expected = initial
            for u in members { for j in 0..<8 { expected[j] += Float(u.samples) / total * u.delta[j] } }
            assertClose(fed.models[c]!.parameters, expected, accuracy: 1e-5, "cluster \(c)")
            XCTAssertEqual(fed.models[c]!.version, 1)
            XCTAssertEqual(round.results[c]?.contributors.sorted(), members.map(\.device).sorted())
        }
    }

    func testLocalOnlyGivesEveryDeviceItsOwnModel() throws {
        let f = DomainFixture(dim: 4)
        var fed = try ClusteredFederation(devices: f.devices, initial: flatGlobal([0, 0, 0, 0]), mode: .localOnly)
        XCTAssertEqual(fed.clusterIDs.count, 12)
        let updates = f.updates(round: 1)
        _ = fed.aggregate(updates)
        for u in updates { assertClose(fed.model(forDevice: u.device)!.parameters, u.delta, accuracy: 1e-6) }
    }

    func testMemberMeanStartsEachNewClusterFromItsMembersModels() throws {
        let f = DomainFixture(dim: 16)
        var fed = try ClusteredFederation(devices: f.devices, initial: flatGlobal([Float](repeating: 1, count: 16)),
                                          config: ClusteredFederationConfig(warmupRounds: 1, initialisation: .memberMean))
        let updates = f.updates(round: 1)
        let event = try XCTUnwrap(fed.aggregate(updates).recluster)
        XCTAssertEqual(event.k, 4)
        for c in fed.clusterIDs {
            let members = updates.filter { fed.cluster(of: $0.device) == c }
            let total = Float(members.map(\.samples).reduce(0, +))
            var expected = [Float](repeating: 1, count: 16)
            for u in members { for j in 0..<16 { expected[j] += Float(u.samples) / total * u.delta[j] } }
            assertClose(fed.models[c]!.parameters, expected, accuracy: 1e-5, "cluster \(c)")
        }
    }

    func testReclusterScheduleIsWarmupThenEveryM() throws {
        let g = flatGlobal([0])
        let every3 = try ClusteredFederation(devices: ["a", "b"], initial: g,
                                             config: ClusteredFederationConfig(warmupRounds: 2, reclusterEvery: 3))
        XCTAssertEqual((1...9).filter { every3.reclusterDue(afterRound: $0) }, [2, 5, 8])
        let once = try ClusteredFederation(devices: ["a", "b"], initial: g, config: ClusteredFederationConfig(warmupRounds: 2))
        XCTAssertEqual((1...9).filter { once.reclusterDue(afterRound: $0) }, [2])
        let oracle = try ClusteredFederation(devices: ["a", "b"], initial: g, mode: .oracle(["a": 0, "b": 1]))
        XCTAssertEqual((1...9).filter { oracle.reclusterDue(afterRound: $0) }, [])
    }

    func testUnknownDevicesAndMissingOracleLabelsAreRejected() throws {
        var fed = try ClusteredFederation(devices: ["a"], initial: flatGlobal([0, 0]))
        let round = fed.aggregate([ModelUpdate(device: "x", samples: 1, baseVersion: 0, delta: [1, 1]),
                                   ModelUpdate(device: "a", samples: 1, baseVersion: 0, delta: [1, 2, 3])])
        XCTAssertEqual(round.rejected.map(\.kind), ["unknown_device", "wrong_length"])
        XCTAssertEqual(fed.check(ModelUpdate(device: "x", samples: 1, baseVersion: 0, delta: [1, 1]))?.kind, "unknown_device")
        XCTAssertEqual(fed.check(ModelUpdate(device: "a", samples: 1, baseVersion: 1, delta: [1, 1]))?.kind, "from_future")
        XCTAssertNil(fed.check(ModelUpdate(device: "a", samples: 1, baseVersion: 0, delta: [1, 1])))
        XCTAssertEqual(fed.models[0]?.parameters, [0, 0])
        XCTAssertThrowsError(try ClusteredFederation(devices: ["a", "b"], initial: flatGlobal([0]), mode: .oracle(["a": 0]))) {
            XCTAssertEqual($0 as? ParadigmError, .missingOracleCluster(device: "b"))
        }
    }
}

final class ClusteredFederationMethodTests: XCTestCase {
    func testCFLBipartitionAlsoFindsTheFourDomainsOnCenteredDeltas() throws {
        let f = DomainFixture()
        var fed = try ClusteredFederation(devices: f.devices, initial: flatGlobal([Float](repeating: 0, count: f.dim)),
                                          config: ClusteredFederationConfig(warmupRounds: 1, method: try makeClusteringMethod("cfl", seed: 1)),
                                          trueLabels: f.truth)
        let event = try XCTUnwrap(fed.aggregate(f.updates(round: 1)).recluster)
        XCTAssertEqual(event.k, 4)
        XCTAssertEqual(event.ari ?? 0, 1, accuracy: 1e-12)
    }
}
