import Bus
import XCTest

final class GapDetectorTests: XCTestCase {
    func testSkippedSeqIsReportedAsAGapOfTheMissingRange() {
        var d = GapDetector()
        XCTAssertEqual(d.observe(sender: "a", seq: 1), .first)
        XCTAssertEqual(d.observe(sender: "a", seq: 2), .inOrder)
        XCTAssertEqual(d.observe(sender: "a", seq: 4), .gap(missing: 3...3))
        XCTAssertEqual(d.observe(sender: "a", seq: 5), .inOrder)
        XCTAssertEqual(d.observe(sender: "a", seq: 9), .gap(missing: 6...8))
        let s = try? XCTUnwrap(d.stats(for: "a"))
        XCTAssertEqual(s?.received, 5)
        XCTAssertEqual(s?.gaps, 2)
        XCTAssertEqual(s?.lost, 4)
        XCTAssertEqual(s?.lastSeq, 9)
        XCTAssertEqual(d.holes(for: "a"), [3...3, 6...8])
    }

    func testLateJoinerStartsMidStreamWithoutAGap() {
        var d = GapDetector()
        XCTAssertEqual(d.observe(sender: "a", seq: 57), .first)
        XCTAssertEqual(d.observe(sender: "a", seq: 58), .inOrder)
        XCTAssertEqual(d.stats(for: "a")?.lost, 0)
    }

    func testSendersAreTrackedIndependently() {
        var d = GapDetector()
        _ = d.observe(sender: "a", seq: 1)
        XCTAssertEqual(d.observe(sender: "b", seq: 1), .first)
        XCTAssertEqual(d.observe(sender: "a", seq: 2), .inOrder)
        XCTAssertEqual(d.observe(sender: "b", seq: 3), .gap(missing: 2...2))
        XCTAssertEqual(d.stats(for: "a")?.gaps, 0)
        XCTAssertEqual(d.allStats.keys.sorted(), ["a", "b"])
    }

    func testLateArrivalFillsItsHoleAndARepeatIsADuplicate() {
        var d = GapDetector()
        _ = d.observe(sender: "a", seq: 1)
        XCTAssertEqual(d.observe(sender: "a", seq: 5), .gap(missing: 2...4))
        XCTAssertEqual(d.observe(sender: "a", seq: 3), .late)
        XCTAssertEqual(d.holes(for: "a"), [2...2, 4...4])
        XCTAssertEqual(d.observe(sender: "a", seq: 3), .duplicate)
        XCTAssertEqual(d.observe(sender: "a", seq: 5), .duplicate)
        XCTAssertEqual(d.observe(sender: "a", seq: 2), .late)
        XCTAssertEqual(d.observe(sender: "a", seq: 4), .late)
        let s = d.stats(for: "a")
        XCTAssertEqual(s?.lost, 0)
        XCTAssertEqual(s?.late, 3)
        XCTAssertEqual(s?.duplicates, 2)
        XCTAssertEqual(d.holes(for: "a"), [])
    }

    func testSeqBackToOneIsARestartAndTrackingStartsOver() {
        var d = GapDetector()
        for seq in 1...10 as ClosedRange<UInt64> { _ = d.observe(sender: "a", seq: seq) }
        XCTAssertEqual(d.observe(sender: "a", seq: 1), .restart)
        XCTAssertEqual(d.observe(sender: "a", seq: 2), .inOrder)
        XCTAssertEqual(d.stats(for: "a")?.restarts, 1)
        XCTAssertEqual(d.stats(for: "a")?.lastSeq, 2)
        XCTAssertEqual(d.stats(for: "a")?.received, 12)
    }

    func testUnnumberedMessagesAreNotTracked() {
        var d = GapDetector()
        XCTAssertEqual(d.observe(sender: "a", seq: 0), .unnumbered)
        XCTAssertNil(d.stats(for: "a"))
    }

    func testOnlyTheNewestHolesAreRemembered() {
        var d = GapDetector(maxTrackedHoles: 2)
        _ = d.observe(sender: "a", seq: 1)
        _ = d.observe(sender: "a", seq: 3)  // hole 2
        _ = d.observe(sender: "a", seq: 5)  // hole 4
        _ = d.observe(sender: "a", seq: 7)  // hole 6; hole 2 forgotten
        XCTAssertEqual(d.holes(for: "a"), [4...4, 6...6])
        XCTAssertEqual(d.observe(sender: "a", seq: 2), .duplicate)
        XCTAssertEqual(d.observe(sender: "a", seq: 4), .late)
        XCTAssertEqual(d.observe(sender: "a", seq: UInt64.max), .gap(missing: 8...(UInt64.max - 1)))
    }
}
