import EdgeEnvironment
import XCTest

final class ChannelTests: XCTestCase {
    /// No shadowing, no fading: the channel is pure path loss, so numbers can be checked by hand.
    static func deterministicChannel() -> ChannelModel {
        var p = ChannelParameters()
        p.shadowingSigmaDB = 0
        p.rayleighFading = false
        return ChannelModel(parameters: p, seed: 1)
    }

    func testPathLossFollowsLogDistanceLaw() {
        let channel = Self.deterministicChannel()
        // 1 km: 128.1 + 37.6·log10(1) = 128.1 dB; 100 m: 128.1 − 37.6 = 90.5 dB.
        XCTAssertEqual(channel.pathLossDB(distanceMeters: 1000), 128.1, accuracy: 1e-9)
        XCTAssertEqual(channel.pathLossDB(distanceMeters: 100), 90.5, accuracy: 1e-9)
        // Clamped at the 10 m minimum: 128.1 − 2·37.6 = 52.9 dB.
        XCTAssertEqual(channel.pathLossDB(distanceMeters: 0), 52.9, accuracy: 1e-9)
    }

    func testUplinkSNRAndShannonRateMatchHandComputation() {
        let channel = Self.deterministicChannel()
        // Device 23 dBm at 100 m, B = 10 MHz, NF = 9 dB:
        //   received = 23 − 90.5 = −67.5 dBm
        //   noise    = −174 + 10·log10(1e7) + 9 = −174 + 70 + 9 = −95 dBm
        //   SNR      = 27.5 dB = 10^2.75 = 562.341
        //   rate     = 1e7 · log2(1 + 562.341) = 1e7 · 9.137865 = 91.3787 Mbit/s
        XCTAssertEqual(channel.noisePowerDBm(bandwidthHz: 10e6), -95, accuracy: 1e-9)
        let snr = channel.snr(txPowerDBm: 23, distanceMeters: 100, bandwidthHz: 10e6)
        XCTAssertEqual(snr, 562.341, accuracy: 1e-3)
        XCTAssertEqual(channel.shannonRate(bandwidthHz: 10e6, snr: snr), 91.3787e6, accuracy: 100)
    }

    func testDownlinkSNRAtCellEdgeMatchesHandComputation() {
        let channel = Self.deterministicChannel()
        // AP 40 dBm at 250 m: PL = 128.1 + 37.6·log10(0.25) = 128.1 − 22.6375 = 105.4625 dB
        //   SNR = 40 − 105.4625 + 95 = 29.5375 dB = 898.97; rate = 1e7·log2(899.97) = 98.137 Mbit/s
        let snr = channel.snr(txPowerDBm: 40, distanceMeters: 250, bandwidthHz: 10e6)
        XCTAssertEqual(snr, 898.97, accuracy: 0.01)
        XCTAssertEqual(channel.shannonRate(bandwidthHz: 10e6, snr: snr), 98.137e6, accuracy: 1e3)
    }

    func testRayleighFadingGainHasUnitMeanOver100kBlocks() {
        let channel = ChannelModel(parameters: ChannelParameters(), seed: 7)
        let n = 100_000
        var sum = 0.0, sumSquares = 0.0
        for block in 0..<n {
            let g = channel.fadingGain(between: "edge-0", and: "device-1", at: Double(block) * 0.1 + 0.05)
            sum += g
            sumSquares += g * g
        }
        // Exp(1): mean 1, E[g²] = 2. Std error of the mean is 1/√1e5 ≈ 0.003, so ±0.02 is > 6σ.
        XCTAssertEqual(sum / Double(n), 1, accuracy: 0.02)
        XCTAssertEqual(sumSquares / Double(n), 2, accuracy: 0.1)
    }

    func testFadingIsKeyedByTimeBlockAndReciprocal() {
        let channel = ChannelModel(parameters: ChannelParameters(), seed: 3)
        let a = channel.fadingGain(between: "edge-0", and: "device-1", at: 1.01)
        // Same coherence block (0.1 s): same draw, whatever happened in between.
        _ = channel.fadingGain(between: "edge-0", and: "device-2", at: 5)
        XCTAssertEqual(channel.fadingGain(between: "edge-0", and: "device-1", at: 1.09), a)
        XCTAssertEqual(channel.fadingGain(between: "device-1", and: "edge-0", at: 1.05), a)
        XCTAssertNotEqual(channel.fadingGain(between: "edge-0", and: "device-1", at: 1.11), a)
        // Another seed gives another draw.
        let other = ChannelModel(parameters: ChannelParameters(), seed: 4)
        XCTAssertNotEqual(other.fadingGain(between: "edge-0", and: "device-1", at: 1.01), a)
    }

    func testShadowingHasConfiguredSpread() {
        let channel = ChannelModel(parameters: ChannelParameters(), seed: 11)
        let draws = (0..<20_000).map { channel.shadowingDB(between: "edge-0", and: "device-\($0)") }
        let mean = draws.reduce(0, +) / Double(draws.count)
        let std = (draws.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(draws.count)).squareRoot()
        // σ = 8 dB; the sample std of 20k normals is within ±0.2 dB (> 4 standard errors).
        XCTAssertEqual(mean, 0, accuracy: 0.2)
        XCTAssertEqual(std, 8, accuracy: 0.2)
        XCTAssertEqual(channel.shadowingDB(between: "device-5", and: "edge-0"), draws[5])
    }

    func testSplitMix64IsReproducible() {
        var a = SplitMix64(seed: 42), b = SplitMix64(seed: 42)
        let first = (0..<5).map { _ in a.next() }
        XCTAssertEqual(first, (0..<5).map { _ in b.next() })
        // Reference value of SplitMix64 seeded with 0 (Vigna's splitmix64.c).
        var zero = SplitMix64(seed: 0)
        XCTAssertEqual(zero.next(), 0xE220_A839_7B1D_CDAF)
    }
}
