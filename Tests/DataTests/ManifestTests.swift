import Data
import Foundation
import XCTest

final class ManifestTests: XCTestCase {
    func testManifestRoundTripsThroughDiskAndReturnsTheText() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let corpus = syntheticCorpus()
        let written = try DataPreparation.prepare(corpus: corpus, spec: PartitionSpec(devices: 4, scheme: .domain, seed: 0xFEDC_BA98_7654_3210),
                                                  chunkBytes: 512, into: dir)
        let loaded = try PartitionManifest.load(dir)
        XCTAssertEqual(loaded, written)
        XCTAssertEqual(loaded.corpusVersion, "synthetic-v1")
        XCTAssertEqual(loaded.scheme, .domain)
        XCTAssertEqual(loaded.domainNames, ["alpha", "beta", "gamma", "delta"])

        // Device 0 holds one domain: all its training text names that domain only.
        let domain = loaded.devices[0].dominantDomain
        let train = try loaded.trainText(device: 0)
        XCTAssertGreaterThan(train.utf8.count, 1000)
        for other in loaded.domainNames where other != domain {
            XCTAssertFalse(train.contains("\(other)-word"), "device 0 (\(domain)) holds \(other) text")
        }
        XCTAssertEqual(try loaded.trainChunks(device: 0).reduce(0) { $0 + $1.utf8.count }, loaded.devices[0].trainBytes)
        XCTAssertFalse(try loaded.validationText(device: 0).isEmpty)
        XCTAssertTrue(try loaded.testText(domain: "beta").contains("beta-word"))
        XCTAssertTrue(try loaded.generalText().contains("only pretraining sees"))

        XCTAssertThrowsError(try loaded.trainText(device: 9)) {
            XCTAssertEqual($0 as? DataError, .unknownDevice(9, deviceCount: 4))
        }
        XCTAssertThrowsError(try loaded.testText(domain: "omega"))
        XCTAssertTrue(ManifestStats(loaded).table.contains("alpha"))
    }

    /// The rule in HeldOutRule: no test document is in the general corpus or on a device.
    func testNoTestDocumentLeaksIntoTheGeneralCorpusOrDevices() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let corpus = syntheticCorpus()
        let chunked = try ChunkedCorpus(corpus: corpus, chunkBytes: 512)
        let general = Set(chunked.generalDocumentTexts)
        for (domain, tests) in chunked.testDocumentTexts {
            XCTAssertFalse(tests.isEmpty, "\(domain) has a test set")
            XCTAssertTrue(general.isDisjoint(with: tests), "\(domain): a test document is in the general corpus")
        }
        // Same check on the text a prepared folder hands out.
        let m = try DataPreparation.prepare(corpus: corpus, spec: PartitionSpec(devices: 4, scheme: .iid, seed: 2),
                                            chunkBytes: 512, into: dir)
        let generalText = try m.generalText()
        let deviceText = try (0..<4).map { try m.trainText(device: $0) + m.validationText(device: $0) }.joined()
        for name in m.domainNames {
            for doc in chunked.testDocumentTexts[name] ?? [] {
                let firstLine = String(doc.prefix { $0 != "\n" }) + "\n"
                XCTAssertFalse(generalText.contains(firstLine), "test document '\(firstLine)' leaked into general")
                XCTAssertFalse(deviceText.contains(firstLine), "test document '\(firstLine)' leaked onto a device")
            }
        }
    }

    func testCorruptManifestIsATypedError() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Foundation.Data("{\"format\": 1}".utf8).write(to: dir.appendingPathComponent("manifest.json"))
        XCTAssertThrowsError(try PartitionManifest.load(dir)) {
            guard case DataError.malformedManifest = $0 else { return XCTFail("got \($0)") }
        }
        XCTAssertThrowsError(try PartitionManifest.load(dir.appendingPathComponent("nowhere"))) {
            guard case DataError.unreadableFile = $0 else { return XCTFail("got \($0)") }
        }
    }
}
