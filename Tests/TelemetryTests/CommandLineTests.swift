import Bus
import Foundation
import Messages
import XCTest

/// `fi proxy` and `fi tap` as processes: FI_* configuration, JSON lines, clean exit on SIGTERM.
final class CommandLineTests: XCTestCase {
    /// The fi executable next to the test bundle (`swift build --build-tests` builds every product).
    static let fi = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("fi")

    static func freePort() throws -> Int {
        let probe = try Socket(.pub)
        defer { probe.close() }
        let endpoint = try probe.bind("tcp://127.0.0.1:0")
        return Int(endpoint.split(separator: ":").last ?? "") ?? 0
    }

    func testProxyFromEnvironmentCarriesTelemetryToTapAndStopsCleanlyOnSIGTERM() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.fi.path) else {
            return XCTFail("missing \(Self.fi.path): run swift build --build-tests")
        }
        let xsub = "tcp://127.0.0.1:\(try Self.freePort())", xpub = "tcp://127.0.0.1:\(try Self.freePort())"
        let proxy = Process()
        proxy.executableURL = Self.fi
        proxy.arguments = ["proxy"]
        proxy.environment = ["FI_XSUB": xsub, "FI_XPUB": xpub]
        let proxyErr = Pipe()
        proxy.standardError = proxyErr
        try proxy.run()
        defer { if proxy.isRunning { proxy.terminate() } }

        let tap = Process()
        tap.executableURL = Self.fi
        tap.arguments = ["tap", "--count", "3", "--timeout", "20"]
        tap.environment = ["FI_CONNECT": xpub, "FI_JSON": "1"]
        let out = Pipe(), err = Pipe()
        tap.standardOutput = out
        tap.standardError = err
        try tap.run()
        defer { if tap.isRunning { tap.terminate() } }

        let publisher = try TelemetryPublisher(connect: xsub, sender: "cli-node")
        XCTAssertTrue(waitUntil(20) {
            _ = try? publisher.publish(.metric(Metric(name: "tick", value: 1)))
            Thread.sleep(forTimeInterval: 0.02)
            return !tap.isRunning
        }, "fi tap did not stop after --count 3")
        XCTAssertEqual(tap.isRunning ? nil : tap.terminationStatus, 0)  // reading a running process's status traps
        let lines = try String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(separator: "\n").map { try object(String($0)) }
        XCTAssertEqual(lines.compactMap { $0["kind"] as? String }, ["metric", "metric", "metric"])
        XCTAssertEqual(lines.first?["topic"] as? String, "telemetry/metric/cli-node")
        let seqs = lines.compactMap { $0["seq"] as? Int }
        XCTAssertEqual(seqs.count, 3)
        XCTAssertEqual(seqs, seqs.first.map { Array($0..<($0 + 3)) })
        let summary = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertTrue(summary.contains(#""tap_summary":{"messages":3,"decoded":3,"undecodable":0"#), summary)

        let stopAsked = Date()
        kill(proxy.processIdentifier, SIGTERM)
        XCTAssertTrue(waitUntil(5) { !proxy.isRunning }, "fi proxy ignored SIGTERM")
        XCTAssertLessThan(Date().timeIntervalSince(stopAsked), 2)  // bounded linger
        XCTAssertEqual(proxy.terminationReason, .exit)
        XCTAssertEqual(proxy.isRunning ? nil : proxy.terminationStatus, 0)
        let log = String(decoding: proxyErr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertTrue(log.contains("proxy: xsub \(xsub), xpub \(xpub)"), log)
        XCTAssertTrue(log.contains("stopped (signal 15)"), log)
    }

    func testMalformedEndpointInEnvironmentFailsNamingTheVariable() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.fi.path) else {
            return XCTFail("missing \(Self.fi.path): run swift build --build-tests")
        }
        let proxy = Process()
        proxy.executableURL = Self.fi
        proxy.arguments = ["proxy", "--xpub", "tcp://127.0.0.1:1"]
        proxy.environment = ["FI_XSUB": "tcp://127.0.0.1:http"]
        let err = Pipe()
        proxy.standardError = err
        try proxy.run()
        XCTAssertTrue(waitUntil(10) { !proxy.isRunning })
        XCTAssertNotEqual(proxy.isRunning ? 0 : proxy.terminationStatus, 0)
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertTrue(text.contains("FI_XSUB=\"tcp://127.0.0.1:http\" is not a valid endpoint"), text)
    }

    func testPretrainRejectsUnknownDomainAndTextWithDomainsBeforeTraining() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.fi.path) else {
            return XCTFail("missing \(Self.fi.path): run swift build --build-tests")
        }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("pretrain-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        for (args, expected) in [(["--domains", "klingon-poetry"], "domain 'klingon-poetry'"),
                                 (["--domains", "bible-kjv", "--text", "/dev/null"], "--text and --domains are exclusive")] {
            let p = Process()
            p.executableURL = Self.fi
            p.arguments = ["pretrain", "--out", out, "--steps", "1"] + args
            let err = Pipe()
            p.standardError = err
            p.standardOutput = Pipe()
            try p.run()
            XCTAssertTrue(waitUntil(60) { !p.isRunning })
            XCTAssertNotEqual(p.terminationStatus, 0, "\(args)")
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            XCTAssertTrue(text.contains(expected), text)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no model is written on bad input")
        }
    }
}
