import Data
import XCTest

/// examples/paper: 4 domains, 12 devices, scheme domain must give exactly 3 devices per domain.
final class PaperPartitionTests: XCTestCase {
    func testDomainSchemeWithTwelveDevicesOverFourDomainsGivesThreeEach() throws {
        let corpus = try syntheticCorpus(domains: 6).selecting(domains: ["alpha", "gamma", "delta", "zeta"])
        let (m, _) = try DataPreparation.build(corpus: corpus, spec: PartitionSpec(devices: 12, scheme: .domain, seed: 7),
                                               chunkBytes: 512)
        let perDomain = Dictionary(grouping: m.deviceDomains, by: { $0 }).mapValues(\.count)
        XCTAssertEqual(perDomain, ["alpha": 3, "gamma": 3, "delta": 3, "zeta": 3])
        XCTAssertEqual(m.unusedDomains, [])
        // Device i holds the (i mod 4)-th domain of a seeded order.
        for i in 4..<12 { XCTAssertEqual(m.deviceDomains[i], m.deviceDomains[i - 4]) }
    }
}
