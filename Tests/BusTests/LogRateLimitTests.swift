import Bus
import Foundation
import Logging
import XCTest

final class LogRateLimitTests: XCTestCase {
    func testABurstPassesThenTheRestIsCountedAndReportedInTheNextWindow() {
        var l = LogRateLimiter(burst: 3, window: 10)
        let first = (0..<100).map { l.admit("bad_message", now: Double($0) * 0.01) }
        XCTAssertEqual(first.filter(\.pass).count, 3)
        XCTAssertTrue(l.admit("other", now: 1).pass, "each kind has its own budget")
        let next = l.admit("bad_message", now: 10.5)
        XCTAssertTrue(next.pass)
        XCTAssertEqual(next.suppressedBefore, 97)
        XCTAssertEqual(l.admit("bad_message", now: 10.6).suppressedBefore, 0)
    }

    func testTheServiceLoggerCarriesNodeAndRoundAndBoundsAFlood() {
        final class Lines: @unchecked Sendable { let lock = NSLock(); var all: [String] = [] }
        let lines = Lines()
        nonisolated(unsafe) var t = 0.0
        let sink = LogSink(limiter: LogRateLimiter(burst: 5, window: 60), write: { s in lines.lock.lock(); lines.all.append(s); lines.lock.unlock() },
                           clock: { t })
        var log = Logger.service("cloud-0", sink: sink)
        log[metadataKey: "round"] = "3"
        for _ in 0..<20_000 { log.warning("undecodable upload", metadata: ["kind": "rejected"]) }
        log.info("round closed", metadata: ["kind": "round"])
        XCTAssertEqual(lines.all.count, 6)
        XCTAssertEqual(lines.all.first, "[cloud-0] rejected: undecodable upload (round=3)")
        XCTAssertEqual(lines.all.last, "[cloud-0] round: round closed (round=3)")
        t = 61
        log.warning("undecodable upload", metadata: ["kind": "rejected"])
        XCTAssertEqual(lines.all.last, "[cloud-0] rejected: undecodable upload (round=3) [19995 more 'rejected' messages suppressed]")
    }
}
