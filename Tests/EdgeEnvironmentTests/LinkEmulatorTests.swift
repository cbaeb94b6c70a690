import Dispatch
import EdgeEnvironment
import XCTest

/// A thread-safe record of delivery times, for checks from the test thread.
private final class Deliveries: @unchecked Sendable {
    // Safe: every access goes through `lock`.
    private let lock = NSLock()
    private var entries: [(String, UInt64)] = []
    func record(_ name: String) {
        lock.lock(); defer { lock.unlock() }
        entries.append((name, DispatchTime.now().uptimeNanoseconds))
    }
    var all: [(String, UInt64)] { lock.lock(); defer { lock.unlock() }; return entries }
}

final class LinkEmulatorTests: XCTestCase {
    let link = LinkID(from: "device-0", to: "edge-0")

    func testOneMegabyteAtFortyMegabitsTakesTwoHundredMilliseconds() {
        // 1 MB = 8e6 bit at 40e6 bit/s = 0.2 s.
        let emulator = LinkEmulator(links: [link: EmulatedLink(rateBitsPerSecond: 40e6)])
        let delivered = expectation(description: "delivered")
        let start = DispatchTime.now().uptimeNanoseconds
        let deliveries = Deliveries()
        let planned = emulator.transmit(bytes: 1_000_000, on: link) {
            deliveries.record("1MB")
            delivered.fulfill()
        }
        XCTAssertEqual(planned, 0.2, accuracy: 0.005)
        wait(for: [delivered], timeout: 5)
        let elapsed = Double((deliveries.all.first?.1 ?? 0) - start) / 1e9
        XCTAssertEqual(elapsed, 0.2, accuracy: 0.02, "measured \(elapsed) s")
        print("emulated 1 MB at 40 Mbit/s: planned \(planned) s, measured \(elapsed) s")
        XCTAssertEqual(emulator.waitUntilIdle(timeout: 1), true)
    }

    func testBackToBackSendsQueueOnTheLinkAndArriveInOrder() {
        // 250 kB at 40 Mbit/s = 0.05 s each, plus 10 ms propagation: the link is busy until the
        // previous send is serialised, so arrivals are at 0.06, 0.11, 0.16 s.
        let emulator = LinkEmulator(links: [link: EmulatedLink(rateBitsPerSecond: 40e6, latencySeconds: 0.01)])
        let deliveries = Deliveries()
        let start = DispatchTime.now().uptimeNanoseconds
        let planned = (0..<3).map { i in
            emulator.transmit(bytes: 250_000, on: link) { deliveries.record("m\(i)") }
        }
        XCTAssertEqual(planned[0], 0.06, accuracy: 0.005)
        XCTAssertEqual(planned[1], 0.11, accuracy: 0.005)
        XCTAssertEqual(planned[2], 0.16, accuracy: 0.005)
        XCTAssertTrue(emulator.waitUntilIdle(timeout: 5))
        let got = deliveries.all
        XCTAssertEqual(got.map(\.0), ["m0", "m1", "m2"])
        XCTAssertEqual(Double(got[2].1 - start) / 1e9, 0.16, accuracy: 0.016)
    }

    func testOtherLinksAreNotBlockedAndUnknownLinksAreInstant() {
        let slow = LinkID(from: "a", to: "b"), other = LinkID(from: "c", to: "d")
        let emulator = LinkEmulator(links: [slow: EmulatedLink(rateBitsPerSecond: 8e6)])
        XCTAssertEqual(emulator.transmit(bytes: 100_000, on: slow) {}, 0.1, accuracy: 0.005)
        XCTAssertEqual(emulator.transmit(bytes: 100_000, on: other) {}, 0, accuracy: 0.005)
        XCTAssertTrue(emulator.waitUntilIdle(timeout: 5))
        XCTAssertEqual(emulator.pendingCount, 0)
    }

    func testAsyncTransmitReturnsAfterTheDelay() async {
        let emulator = LinkEmulator(links: [link: EmulatedLink(rateBitsPerSecond: 80e6)])
        let clock = ContinuousClock()
        // 1 MB at 80 Mbit/s = 0.1 s.
        let elapsed = await clock.measure { await emulator.transmit(bytes: 1_000_000, on: link) }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        // It waits at least the transfer time; how much longer depends on the machine's load, not on the emulator.
        XCTAssertGreaterThanOrEqual(seconds, 0.099)
        XCTAssertLessThan(seconds, 0.5)
    }

    func testNetworkBackedEmulatorUsesTheChannelModelAndTimeScale() {
        // The deterministic cell: device-0 → cloud for 1 MB takes 0.100548 s (EdgeNetworkTests);
        // at time scale 0.5 the wall delay is half of it.
        let emulator = LinkEmulator(network: EdgeNetworkTests.cell(devices: 1), timeScale: 0.5)
        let planned = emulator.transmit(bytes: 1_000_000, on: LinkID(from: "device-0", to: "cloud")) {}
        XCTAssertEqual(planned, 0.100548 / 2, accuracy: 0.002)
        XCTAssertTrue(emulator.waitUntilIdle(timeout: 5))
    }

    func testConcurrentSendersFromManyThreadsAllDeliverInPerLinkOrder() {
        // 8 threads, each sending 50 × 1 kB on its own 80 Mbit/s link (0.1 ms each).
        let links = (0..<8).map { LinkID(from: "device-\($0)", to: "edge-0") }
        let emulator = LinkEmulator(links: Dictionary(uniqueKeysWithValues: links.map { ($0, EmulatedLink(rateBitsPerSecond: 80e6)) }))
        let deliveries = Deliveries()
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            for i in 0..<50 {
                emulator.transmit(bytes: 1000, on: links[t]) { deliveries.record("\(t):\(i)") }
            }
        }
        XCTAssertTrue(emulator.waitUntilIdle(timeout: 10))
        let got = deliveries.all.map(\.0)
        XCTAssertEqual(got.count, 400)
        for t in 0..<8 {
            let mine = got.filter { $0.hasPrefix("\(t):") }
            XCTAssertEqual(mine, (0..<50).map { "\(t):\($0)" })
        }
    }
}
