import Federation
import XCTest

/// A device whose local training is one gradient step on ½‖x − c‖²: Δ = η·(c − x).
private func localStep(_ x: [Float], center c: [Float], rate: Float = 0.5) -> [Float] {
    zip(x, c).map { rate * ($1 - $0) }
}

private let edgesOf2x2 = ["edge-0": ["d0", "d1"], "edge-1": ["d2", "d3"]]
private let backhaul = ["edge-0": BackhaulCost(uploadBytes: 100, downloadBytes: 100),
                        "edge-1": BackhaulCost(uploadBytes: 100, downloadBytes: 100)]

/// Runs `rounds` local rounds of the quadratic devices through the hierarchy.
private func runHierarchy(_ h: inout HierarchicalFederation, centers: [String: [Float]], samples: [String: Int],
                          rounds: Int) throws -> [HierarchicalRound] {
    var out: [HierarchicalRound] = []
    for r in 1...rounds {
        let reports = centers.keys.sorted().map { d in
            DeviceRoundReport(update: ModelUpdate(device: d, round: UInt64(r), samples: samples[d]!, baseVersion: 0,
                                                  delta: localStep(h.deviceModels[d]!, center: centers[d]!)),
                              uploadBytes: 60, durations: TaskDurations(compute: 1))
        }
        out.append(try h.localRound(reports, backhaul: backhaul))
    }
    return out
}

/// Flat FedAvg of the same devices for `rounds` rounds.
private func runFlat(centers: [String: [Float]], samples: [String: Int], initial: [Float], rounds: Int) -> [Float] {
    var global = flatGlobal(initial)
    var fedavg = FedAvg()
    for r in 1...rounds {
        for d in centers.keys.sorted() {
            _ = try? fedavg.submit(ModelUpdate(device: d, round: UInt64(r), samples: samples[d]!, baseVersion: global.version,
                                               delta: localStep(global.parameters, center: centers[d]!)), to: &global)
        }
        _ = fedavg.closeRound(&global)
    }
    return global.parameters
}

final class HierarchicalFederationTests: XCTestCase {
    func testCloudAggregatesEveryKappa2EdgeRoundsAndCountsBytesPerTier() throws {
        let initial: [Float] = [0, 0, 0]
        var h = try HierarchicalFederation(edges: edgesOf2x2, initial: flatGlobal(initial), kappa1: 1, kappa2: 2, modelBytes: 100)
        let same: [Float] = [1, -2, 3]
        let centers = ["d0": same, "d1": same, "d2": same, "d3": same]
        let samples = ["d0": 5, "d1": 5, "d2": 5, "d3": 5]
        let rounds = try runHierarchy(&h, centers: centers, samples: samples, rounds: 4)
        XCTAssertEqual(rounds.map(\.cloudAggregated), [false, true, false, true])
        XCTAssertEqual(rounds.map(\.edgesAggregated), [[String]](repeating: ["edge-0", "edge-1"], count: 4))
        XCTAssertEqual(h.schedule.cloudRounds, 2)
        XCTAssertEqual(h.schedule.edgeRounds, 4)
        XCTAssertEqual(h.cloud.version, 2)
        // Cloud-bound: 2 cloud steps × 2 edges × one model.
        XCTAssertEqual(h.bytes, TierBytes(deviceToEdge: 4 * 4 * 60, edgeToDevice: 4 * 4 * 100,
                                          edgeToCloud: 2 * 2 * 100, cloudToEdge: 2 * 2 * 100))
        XCTAssertEqual(rounds[1].bytes.edgeToCloud, 200)
        XCTAssertEqual(rounds[0].bytes.edgeToCloud, 0)
        // Identical devices: the hierarchy gives flat FedAvg's model.
        let flat = runFlat(centers: centers, samples: samples, initial: initial, rounds: 4)
        assertClose(h.cloud.parameters, flat, accuracy: 1e-6)
        XCTAssertNotEqual(flat, initial)
    }

    func testWithKappasOneTheHierarchyIsExactlyFlatFedAvgOnHeterogeneousDevices() throws {
        let initial: [Float] = [0.5, 0.5]
        var h = try HierarchicalFederation(edges: edgesOf2x2, initial: flatGlobal(initial), kappa1: 1, kappa2: 1, modelBytes: 8)
        let centers: [String: [Float]] = ["d0": [1, 0], "d1": [0, 4], "d2": [-3, 1], "d3": [2, 2]]
        let samples = ["d0": 1, "d1": 7, "d2": 3, "d3": 9]
        _ = try runHierarchy(&h, centers: centers, samples: samples, rounds: 3)
        assertClose(h.cloud.parameters, runFlat(centers: centers, samples: samples, initial: initial, rounds: 3), accuracy: 1e-5)
        // Edge 0 is weighted 1:7 inside, and 8:12 against edge 1 at the cloud.
        XCTAssertEqual(h.edgeModels["edge-0"]?.parameters, h.cloud.parameters)
    }

    func testSimTimeIsTheSlowestDevicePerEdgePlusTheBackhaulAtCloudSteps() throws {
        var h = try HierarchicalFederation(edges: edgesOf2x2, initial: flatGlobal([0]), kappa1: 1, kappa2: 2, modelBytes: 4)
        let durations = ["d0": TaskDurations(download: 1, compute: 2, upload: 1),
                         "d1": TaskDurations(download: 0.5, compute: 5, upload: 0.5),
                         "d2": TaskDurations(download: 1, compute: 1, upload: 1),
                         "d3": TaskDurations(download: 1, compute: 1, upload: 1)]
        func reports(_ r: UInt64) -> [DeviceRoundReport] {
            durations.keys.sorted().map {
                DeviceRoundReport(update: ModelUpdate(device: $0, round: r, samples: 1, baseVersion: 0, delta: [1]),
                                  uploadBytes: 4, durations: durations[$0]!)
            }
        }
        let r1 = try h.localRound(reports(1))
        XCTAssertEqual(r1.edgeTimes, ["edge-0": 6, "edge-1": 3])
        let links = ["edge-0": BackhaulCost(uploadBytes: 4, downloadBytes: 4, uploadSeconds: 0.1, downloadSeconds: 0.3),
                     "edge-1": BackhaulCost(uploadBytes: 4, downloadBytes: 4, uploadSeconds: 0.2, downloadSeconds: 0.4)]
        let r2 = try h.localRound(reports(2), backhaul: links)
        // Cloud step starts when the last edge model arrives (12 + 0.1), then each edge downloads.
        XCTAssertEqual(r2.edgeTimes["edge-0"]!, 12.4, accuracy: 1e-12)
        XCTAssertEqual(r2.edgeTimes["edge-1"]!, 12.5, accuracy: 1e-12)
        XCTAssertEqual(h.simTime, 12.5, accuracy: 1e-12)
    }

    func testBetweenEdgeAggregationsDevicesNeitherDownloadNorUpload() throws {
        var h = try HierarchicalFederation(edges: ["e": ["d"]], initial: flatGlobal([0]), kappa1: 2, kappa2: 1, modelBytes: 10)
        let link = ["e": BackhaulCost(uploadBytes: 10, downloadBytes: 10)]
        func report(_ r: UInt64) -> DeviceRoundReport {
            DeviceRoundReport(update: ModelUpdate(device: "d", round: r, samples: 1, baseVersion: 0, delta: [1]),
                              uploadBytes: 3, durations: TaskDurations(download: 1, compute: 2, upload: 1))
        }
        let r1 = try h.localRound([report(1)], backhaul: link)
        XCTAssertEqual(r1.bytes, TierBytes(edgeToDevice: 10))
        XCTAssertEqual(h.simTime, 3)
        XCTAssertEqual(h.deviceModels["d"], [1])
        XCTAssertEqual(h.edgeModels["e"]?.parameters, [0])
        let r2 = try h.localRound([report(2)], backhaul: link)
        XCTAssertEqual(r2.bytes, TierBytes(deviceToEdge: 3, edgeToCloud: 10, cloudToEdge: 10))
        XCTAssertEqual(h.simTime, 6)
        XCTAssertEqual(h.cloud.parameters, [2])
    }

    func testBadInputIsATypedErrorAndChangesNothing() throws {
        var h = try HierarchicalFederation(edges: edgesOf2x2, initial: flatGlobal([0]), kappa1: 1, kappa2: 1, modelBytes: 4)
        let good = DeviceRoundReport(update: ModelUpdate(device: "d0", samples: 1, baseVersion: 0, delta: [1]),
                                     uploadBytes: 4, durations: TaskDurations(compute: 1))
        XCTAssertThrowsError(try h.localRound([good])) { XCTAssertEqual($0 as? ParadigmError, .missingBackhaul(edge: "edge-0")) }
        var bad = good; bad.update.delta = [.nan]
        XCTAssertThrowsError(try h.localRound([bad], backhaul: backhaul)) {
            XCTAssertEqual($0 as? ParadigmError, .badUpdate(device: "d0", rejection: .nonFinite(index: 0)))
        }
        var stranger = good; stranger.update.device = "zz"
        XCTAssertThrowsError(try h.localRound([stranger], backhaul: backhaul)) { XCTAssertEqual($0 as? ParadigmError, .unknownDevice("zz")) }
        XCTAssertEqual(h.schedule.localRounds, 0)
        XCTAssertEqual(h.bytes, TierBytes())
        XCTAssertThrowsError(try HierarchicalFederation(edges: ["a": ["d"], "b": ["d"]], initial: flatGlobal([0]),
                                                        kappa1: 1, kappa2: 1, modelBytes: 1)) {
            XCTAssertEqual($0 as? ParadigmError, .deviceInTwoEdges(device: "d", edges: ["a", "b"]))
        }
    }
}

final class ParadigmSettingsTests: XCTestCase {
    func testSettingsBuildTheConfiguredStrategiesAndNameBadKeys() throws {
        var a = AsyncSettings()
        let fedasync = try XCTUnwrap(a.strategy() as? FedAsync)
        XCTAssertEqual(fedasync.historyDepth, 128)
        XCTAssertEqual(fedasync.mixingWeight(staleness: 3), 0.6 * 0.5, accuracy: 1e-12)
        a.mode = "fedbuff"; a.buffer = 3
        XCTAssertEqual((try a.strategy() as? FedBuff)?.bufferSize, 3)
        a.mode = "sometimes"
        XCTAssertThrowsError(try a.strategy()) {
            XCTAssertEqual($0 as? RegistryError, .unknown(kind: "async mode", name: "sometimes", known: ["fedasync", "fedbuff"]))
        }
        var c = ClusteredSettings()
        c.reclusterEvery = 5; c.sketchDim = 256; c.method = "cfl_bipartition"
        let config = try c.config(seed: 7)
        XCTAssertEqual(config.reclusterEvery, 5)
        XCTAssertEqual(config.sketchDimension, 256)
        XCTAssertEqual(config.method.name, "cfl_bipartition")
        c.initialisation = "random"
        XCTAssertThrowsError(try c.config(seed: 7))
        let h = HierarchicalSettings()
        XCTAssertEqual(h.edgeAssignment(devices: ["d0", "d1", "d2", "d3", "d4"]),
                       ["edge-0": ["d0", "d2", "d4"], "edge-1": ["d1", "d3"]])
    }
}
