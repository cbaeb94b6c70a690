import Foundation
import Reports
import XCTest

/// Collects what a progress bar prints, and a clock the test moves by hand.
final class Capture: @unchecked Sendable {  // safe: every access holds `lock`
    private let lock = NSLock()
    private var _lines: [String] = []
    private var _now = 0.0
    var lines: [String] { lock.lock(); defer { lock.unlock() }; return _lines }
    var now: Double {
        get { lock.lock(); defer { lock.unlock() }; return _now }
        set { lock.lock(); _now = newValue; lock.unlock() }
    }
    func append(_ s: String) { lock.lock(); _lines.append(s); lock.unlock() }
}

final class ProgressBarTests: XCTestCase {
    func testRenderPinsBarPercentCountETAAndStatus() {
        // 12 of 30 in 24 s: 2 s per unit, 18 left → 36 s.
        XCTAssertEqual(ProgressBar.render(label: "pretrain", completed: 12, total: 30, elapsed: 24, width: 10,
                                          status: "loss 2.31"),
                       "pretrain [####------] 40% 12/30 ETA 0:36 | loss 2.31")
        XCTAssertEqual(ProgressBar.render(label: "x", completed: 0, total: 5, elapsed: 3, width: 4),
                       "x [----] 0% 0/5 ETA --:--")
        XCTAssertEqual(ProgressBar.render(label: "x", completed: 5, total: 5, elapsed: 75, width: 4),
                       "x [####] 100% 5/5 in 1:15")
    }

    /// A federated run's status: round of rounds, devices sampled, sim time, mean validation loss.
    func testRoundStatusShowsRoundsSampledSimTimeAndLoss() {
        let r = MetricRecord(round: 3, tier: .cloud, valLoss: ["a": 2, "b": 3], participants: 100, simTimeSeconds: 754)
        XCTAssertEqual(ProgressBar.roundStatus(r, rounds: 20), "round 3/20 · 100 sampled · sim 12:34 · val 2.5000")
        XCTAssertTrue(ProgressBar.roundStatus(MetricRecord(round: 1, tier: .cloud), rounds: 2).hasSuffix("val -"))
    }

    func testETAMath() {
        XCTAssertNil(ProgressBar.eta(completed: 0, total: 10, elapsed: 5))
        XCTAssertEqual(ProgressBar.eta(completed: 1, total: 10, elapsed: 5), 45)
        XCTAssertEqual(ProgressBar.eta(completed: 10, total: 10, elapsed: 5), 0)
        XCTAssertEqual(ProgressBar.eta(completed: 3, total: 4, elapsed: 1.5), 0.5)
        XCTAssertEqual(ProgressBar.formatDuration(35), "0:35")
        XCTAssertEqual(ProgressBar.formatDuration(599.6), "10:00")
        XCTAssertEqual(ProgressBar.formatDuration(3725), "1:02:05")
        XCTAssertEqual(ProgressBar.formatDuration(nil), "--:--")
        XCTAssertEqual(ProgressBar.formatDuration(.infinity), "--:--")
        XCTAssertEqual(ProgressBar.percent(42, 100), 42)
        XCTAssertEqual(ProgressBar.percent(2, 3), 66)
        XCTAssertEqual(ProgressBar.percent(0, 0), 100)
    }

    func testPlainOutputPrintsOnlyEveryTenPercent() {
        let cap = Capture()
        let bar = ProgressBar(total: 100, label: "run", width: 10, isTerminal: false,
                              sink: { cap.append($0) }, clock: { cap.now })
        for i in 1...100 {
            cap.now = Double(i)
            bar.advance(status: "step \(i)")
        }
        bar.finish()
        // 10%, 20%, …, 100%; finish adds nothing new.
        XCTAssertEqual(cap.lines.count, 10)
        XCTAssertEqual(cap.lines[0], "run [#---------] 10% 10/100 ETA 1:30 | step 10\n")
        XCTAssertEqual(cap.lines[9], "run [##########] 100% 100/100 in 1:40 | step 100\n")
        XCTAssertTrue(cap.lines.allSatisfy { !$0.contains("\r") })
        // Stopped early: finish prints where it stopped.
        let cap2 = Capture()
        let early = ProgressBar(total: 3, label: "e", width: 3, isTerminal: false,
                                sink: { cap2.append($0) }, clock: { cap2.now })
        cap2.now = 2; early.advance()
        early.finish(status: "interrupted")
        XCTAssertEqual(cap2.lines, ["e [#--] 33% 1/3 ETA 0:04\n", "e [#--] 33% 1/3 ETA 0:04 | interrupted\n"])
    }

    func testTerminalOutputRedrawsInPlaceAndThrottles() {
        let cap = Capture()
        let bar = ProgressBar(total: 4, label: "t", width: 4, isTerminal: true, redrawInterval: 1,
                              sink: { cap.append($0) }, clock: { cap.now })
        cap.now = 0.5; bar.advance()   // drawn (first draw)
        cap.now = 0.7; bar.advance()   // throttled
        cap.now = 1.6; bar.advance()   // drawn
        cap.now = 1.7; bar.advance()   // drawn: complete
        bar.finish()
        XCTAssertEqual(cap.lines.count, 4)
        XCTAssertEqual(cap.lines[0], "\rt [#---] 25% 1/4 ETA 0:02\u{1B}[K")
        XCTAssertEqual(cap.lines[1], "\rt [###-] 75% 3/4 ETA 0:01\u{1B}[K")
        XCTAssertEqual(cap.lines[3], "\rt [####] 100% 4/4 in 0:02\n")
    }

    func testConcurrentAdvancesCountEveryUnit() {
        let cap = Capture()
        let bar = ProgressBar(total: 1000, label: "c", isTerminal: false, sink: { cap.append($0) }, clock: { 1 })
        DispatchQueue.concurrentPerform(iterations: 1000) { _ in bar.advance() }
        bar.finish()
        XCTAssertEqual(cap.lines.last, "c [####################] 100% 1000/1000 in 0:00\n")
        XCTAssertEqual(cap.lines.count, 10)
    }
}
