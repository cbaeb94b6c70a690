import Data
import Foundation
import XCTest

final class PartitionTests: XCTestCase {
    let schemes: [PartitionSpec] = [
        PartitionSpec(devices: 6, scheme: .domain, seed: 3),
        PartitionSpec(devices: 6, scheme: .dirichlet, alpha: 0.3, seed: 3),
        PartitionSpec(devices: 6, scheme: .iid, seed: 3),
    ]

    func testPartitionsAreDisjointAndCoverEveryPoolChunk() throws {
        for spec in schemes {
            let (m, _) = try DataPreparation.build(corpus: syntheticCorpus(), spec: spec, chunkBytes: 512)
            let held = m.devices.flatMap { $0.train + $0.validation }
            XCTAssertEqual(held.count, Set(held).count, "\(spec.scheme): a chunk is on two devices")
            XCTAssertEqual(Set(held), Set(m.domains.flatMap(\.poolChunks)), "\(spec.scheme): pool not covered")
            let heldOut = Set(m.domains.flatMap { $0.testChunks + $0.generalChunks })
            XCTAssertTrue(heldOut.isDisjoint(with: held), "\(spec.scheme): a device holds test or general text")
            XCTAssertEqual(m.devices.count, 6)
            for d in m.devices {
                XCTAssertGreaterThanOrEqual(d.train.count, 1, "\(spec.scheme): device \(d.id) has no training text")
                XCTAssertEqual(d.validation.count >= 1, true, "\(spec.scheme): device \(d.id) has no validation text")
                XCTAssertTrue(Set(d.train).isDisjoint(with: d.validation))
            }
        }
    }

    func testDomainSchemeGivesEachDeviceOneDomainWithSkewedSizes() throws {
        let (m, _) = try DataPreparation.build(corpus: syntheticCorpus(), spec: PartitionSpec(devices: 8, scheme: .domain, seed: 5),
                                               chunkBytes: 512)
        for d in m.devices {
            XCTAssertEqual(d.domainMix.count, 1)
            XCTAssertEqual(d.domainMix[d.dominantDomain] ?? 0, 1, accuracy: 1e-12)
        }
        XCTAssertEqual(Set(m.devices.map(\.dominantDomain)).count, 4, "every domain has devices")
        let sizes = m.devices.map { $0.train.count + $0.validation.count }
        XCTAssertNotEqual(sizes.min(), sizes.max(), "log-normal sizes should differ")
    }

    func testSameSeedGivesSamePartitionAndDifferentSeedADifferentOne() throws {
        for spec in schemes {
            let a = try DataPreparation.build(corpus: syntheticCorpus(), spec: spec, chunkBytes: 512).manifest
            let b = try DataPreparation.build(corpus: syntheticCorpus(), spec: spec, chunkBytes: 512).manifest
            var other = spec
            other.seed = 4
            let c = try DataPreparation.build(corpus: syntheticCorpus(), spec: other, chunkBytes: 512).manifest
            XCTAssertEqual(a, b, "\(spec.scheme)")
            XCTAssertNotEqual(a.devices.map(\.train), c.devices.map(\.train), "\(spec.scheme)")
            // The held-out split does not depend on the partition seed.
            XCTAssertEqual(a.domains.map(\.testChunks), c.domains.map(\.testChunks))
        }
    }

    func testDirichletWithLargeAlphaIsCloseToIID() throws {
        let corpus = syntheticCorpus(domains: 4, docsPerDomain: 240)
        let (m, _) = try DataPreparation.build(corpus: corpus, spec: PartitionSpec(devices: 8, scheme: .dirichlet, alpha: 1000, seed: 9),
                                               chunkBytes: 512)
        var global: [String: Double] = [:]
        var total = 0.0
        for d in m.devices {
            let bytes = Double(d.trainBytes + d.validationBytes)
            for (k, v) in d.domainMix { global[k, default: 0] += v * bytes }
            total += bytes
        }
        global = global.mapValues { $0 / total }
        let meanTV = m.devices.map { totalVariation($0.domainMix, global) }.reduce(0, +) / Double(m.devices.count)
        XCTAssertLessThan(meanTV, 0.1)
    }

    func testDirichletWithSmallAlphaConcentratesDevicesOnFewDomains() throws {
        let corpus = syntheticCorpus(domains: 4, docsPerDomain: 240)
        var shares: [Double] = []
        for seed in UInt64(0)..<5 {
            let (m, _) = try DataPreparation.build(corpus: corpus, spec: PartitionSpec(devices: 8, scheme: .dirichlet, alpha: 0.1, seed: seed),
                                                   chunkBytes: 512)
            shares += m.devices.map { $0.domainMix.values.max() ?? 0 }
        }
        XCTAssertGreaterThan(shares.reduce(0, +) / Double(shares.count), 0.8)
    }

    func testTooManyDevicesForTheDataIsATypedError() {
        let corpus = syntheticCorpus(domains: 1, docsPerDomain: 10)
        XCTAssertThrowsError(try DataPreparation.build(corpus: corpus, spec: PartitionSpec(devices: 500, scheme: .iid), chunkBytes: 512)) {
            guard case DataError.invalidPartition = $0 else { return XCTFail("got \($0)") }
        }
    }

    func testGammaSamplerHasTheRightMean() {
        var rng = SplitMix64(seed: 11)
        for shape in [0.1, 0.5, 2.0, 7.5] {
            let n = 20000
            let mean = (0..<n).reduce(0.0) { acc, _ in acc + rng.gamma(shape: shape) } / Double(n)
            XCTAssertEqual(mean, shape, accuracy: 0.05 * max(1, shape), "Gamma(\(shape)) mean")
        }
    }
}

final class PartitionSpecTests: XCTestCase {
    func testDomainSchemeWithFewerDevicesThanDomainsListsTheUnusedDomains() throws {
        let (m, _) = try DataPreparation.build(corpus: syntheticCorpus(), spec: PartitionSpec(devices: 2, scheme: .domain, seed: 1),
                                               chunkBytes: 512)
        XCTAssertEqual(m.unusedDomains.count, 2)
        XCTAssertEqual(Set(m.deviceDomains).union(m.unusedDomains), Set(m.domainNames))
        XCTAssertTrue(Set(m.deviceDomains).isDisjoint(with: m.unusedDomains))
    }

    func testSpecDecodesFromAConfigThatNamesOnlyDevicesAndScheme() throws {
        let spec = try JSONDecoder().decode(PartitionSpec.self, from: Foundation.Data(#"{"devices": 5, "scheme": "dirichlet", "alpha": 0.2}"#.utf8))
        XCTAssertEqual(spec, PartitionSpec(devices: 5, scheme: .dirichlet, alpha: 0.2))
        XCTAssertThrowsError(try JSONDecoder().decode(PartitionSpec.self, from: Foundation.Data(#"{"devices": 5, "scheme": "zipf"}"#.utf8)))
    }
}
