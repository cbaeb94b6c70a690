import Foundation
import XCTest

/// `fi demo llama-7b` wiring on a small Llama preset: a seeded random 4-bit checkpoint written straight to disk, the
/// router and three stage nodes (device, edge, cloud) as processes over CURVE tcp on loopback, generation streamed
/// through the router over a three-stage plan, and each node's peak resident memory reported.
final class SplitDemoTests: XCTestCase {
    func testSmallPresetRunsSplitOverThreeStageNodesAndReportsMemory() throws {
        let dir = Kit.tempDir("demo")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (status, out, err) = try Kit.runExecutableOutput("fi", ["demo", "llama-7b", "--preset", "llama-small", "--layers", "6",
                                                                    "--out", dir.path, "--max-layers", "2", "--max-tokens", "4", "--threads", "1", "--timeout", "60"])
        XCTAssertEqual(status, 0, err + out)
        XCTAssertTrue(out.contains("token 4:"), out)
        let plan = try XCTUnwrap(out.split(separator: "\n").first { $0.hasPrefix("plan ") }, out)
        XCTAssertTrue(plan.contains("4 tokens"), String(plan))
        XCTAssertEqual(out.split(separator: "\n").filter { $0.hasPrefix("  stage ") }.count, 3, out)
        for node in ["device", "edge", "cloud"] {
            let line = try XCTUnwrap(out.split(separator: "\n").first { $0.hasPrefix("  \(node): peak resident") }, out)
            XCTAssertFalse(line.contains("peak resident 0.00 GiB"), String(line))
        }
        let (bad, _, message) = try Kit.runExecutableOutput("fi", ["demo", "llama-7b", "--preset", "gpt2", "--out", dir.path])
        XCTAssertNotEqual(bad, 0)
        XCTAssertTrue(message.contains("--preset must name a Llama-family preset"), message)
    }
}
