import EdgeEnvironment
import XCTest

final class EventQueueTests: XCTestCase {
    func testEventsComeOutByTimeWithFIFOTies() {
        var queue = EventQueue<String>()
        queue.push("c", at: 3)
        queue.push("a1", at: 1)
        queue.push("b", at: 2)
        queue.push("a2", at: 1)
        queue.push("z", at: 0.5)
        queue.push("a3", at: 1)
        var out: [String] = []
        while let entry = queue.pop() { out.append(entry.event) }
        XCTAssertEqual(out, ["z", "a1", "a2", "a3", "b", "c"])
    }

    func testManyTiesKeepInsertionOrder() {
        var queue = EventQueue<Int>()
        for i in 0..<1000 { queue.push(i, at: Double(i % 3)) }
        var out: [Int] = []
        while let entry = queue.pop() { out.append(entry.event) }
        let expected = (0..<1000).filter { $0 % 3 == 0 } + (0..<1000).filter { $0 % 3 == 1 } + (0..<1000).filter { $0 % 3 == 2 }
        XCTAssertEqual(out, expected)
    }

    func testVirtualClockAdvancesToEachEventAndHandlersCanSchedule() {
        var clock = VirtualClock<String>(start: 10)
        clock.schedule(after: 2, "ping")
        clock.schedule(at: 11, "early")
        var log: [String] = []
        let handled = clock.run { clock, time, event in
            log.append("\(event)@\(time)")
            if event == "ping" { clock.schedule(after: 0.5, "pong") }
        }
        XCTAssertEqual(handled, 3)
        XCTAssertEqual(log, ["early@11.0", "ping@12.0", "pong@12.5"])
        XCTAssertEqual(clock.now, 12.5)
        // The past is clamped to now.
        clock.schedule(at: 1, "late")
        XCTAssertEqual(clock.next()?.time, 12.5)
    }

    func testUpdateArrivalsAddComputeAndUplink() {
        let arrivals = updateArrivals(start: 100, devices: ["d0", "d1", "d2"],
                                      computeSeconds: ["d0": 5, "d1": 1, "d2": 2],
                                      uplinkSeconds: ["d0": 0.5, "d1": 3, "d2": 2])
        // d1: 100+1+3 = 104, d2: 100+2+2 = 104 (tie: d1's arrival was scheduled first), d0: 105.5.
        XCTAssertEqual(arrivals.map(\.device), ["d1", "d2", "d0"])
        XCTAssertEqual(arrivals.map(\.arrival), [104, 104, 105.5])
    }

    func testTenThousandEventsSimulateQuickly() {
        var clock = VirtualClock<Int>()
        var rng = SplitMix64(seed: 5)
        for i in 0..<10_000 { clock.schedule(at: rng.nextUnit() * 1000, i) }
        var last = -1.0, count = 0
        clock.run { _, time, _ in
            XCTAssertGreaterThanOrEqual(time, last)
            last = time
            count += 1
        }
        XCTAssertEqual(count, 10_000)
    }
}
