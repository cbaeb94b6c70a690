import Config
import XCTest

final class EnvOptionsTests: XCTestCase {
    let flags = ["--router:endpoint", "--pub:endpoint", "--config", "--heartbeat-ms:int",
                 "--liveness:int", "--lr:number", "--health:bool"]

    func testVariableNames() {
        XCTAssertEqual(EnvOptions.variable(for: "--heartbeat-ms"), "FI_HEARTBEAT_MS")
        XCTAssertEqual(EnvOptions.variable(for: "--router"), "FI_ROUTER")
    }

    func testEnvironmentFillsMissingFlagsAndTheFlagWins() throws {
        let out = try EnvOptions.merge(
            arguments: ["--router", "tcp://127.0.0.1:6000", "extra"],
            environment: ["FI_ROUTER": "tcp://0.0.0.0:5550", "FI_PUB": "tcp://*:5551",
                          "FI_HEARTBEAT_MS": "250", "FI_HEALTH": "yes", "FI_LIVENESS": "",
                          "FI_UNKNOWN": "ignored", "PATH": "/bin"],
            knownFlags: flags)
        XCTAssertEqual(out, ["--router", "tcp://127.0.0.1:6000", "extra",
                             "--pub", "tcp://*:5551", "--heartbeat-ms", "250", "--health"])
    }

    func testInlineFlagCountsAsGivenAndEnvGoesBeforeTerminator() throws {
        let out = try EnvOptions.merge(arguments: ["--config=/a.yaml", "--", "--pub"],
                                       environment: ["FI_CONFIG": "/b.yaml", "FI_LR": "0.5", "FI_HEALTH": "0"],
                                       knownFlags: flags)
        XCTAssertEqual(out, ["--config=/a.yaml", "--lr", "0.5", "--", "--pub"])
    }

    func testValidEndpoints() {
        for e in ["inproc://cluster-manager", "ipc:///tmp/fi.sock", "tcp://cluster-manager:5550",
                  "tcp://0.0.0.0:5550", "tcp://*:5550", "tcp://[::1]:5550", "tcp://127.0.0.1:*"] {
            XCTAssertNil(EnvOptions.endpointProblem(e), e)
        }
    }

    func testMalformedEndpointsNameTheVariable() {
        let bad = ["cluster-manager:5550", "tcp://cluster-manager", "tcp://host:0", "tcp://host:70000",
                   "tcp://host:55a0", "tcp://:5550", "udp://host:5550", "inproc://", "tcp://::1:5550"]
        for value in bad {
            XCTAssertThrowsError(try EnvOptions.merge(arguments: [], environment: ["FI_ROUTER": value],
                                                      knownFlags: flags), value) { error in
                guard case let EnvOptionsError.malformedEndpoint(source, v, _) = error else {
                    return XCTFail("\(value): unexpected \(error)")
                }
                XCTAssertEqual(source, "FI_ROUTER")
                XCTAssertEqual(v, value)
                XCTAssertTrue("\(error)".hasPrefix("FI_ROUTER=\"\(value)\""), "\(error)")
            }
        }
    }

    func testNonNumericValuesAreRejected() {
        XCTAssertThrowsError(try EnvOptions.merge(arguments: [], environment: ["FI_HEARTBEAT_MS": "1s"],
                                                  knownFlags: flags)) {
            XCTAssertEqual($0 as? EnvOptionsError, .notAnInteger(source: "FI_HEARTBEAT_MS", value: "1s"))
        }
        XCTAssertThrowsError(try EnvOptions.merge(arguments: [], environment: ["FI_LR": "fast"], knownFlags: flags)) {
            XCTAssertEqual($0 as? EnvOptionsError, .notANumber(source: "FI_LR", value: "fast"))
        }
        XCTAssertThrowsError(try EnvOptions.merge(arguments: [], environment: ["FI_HEALTH": "maybe"], knownFlags: flags)) {
            XCTAssertEqual($0 as? EnvOptionsError, .notABoolean(source: "FI_HEALTH", value: "maybe"))
        }
    }

    func testCommandLineValuesAreCheckedToo() {
        XCTAssertThrowsError(try EnvOptions.merge(arguments: ["--liveness", "four"], environment: [:], knownFlags: flags)) {
            XCTAssertEqual($0 as? EnvOptionsError, .notAnInteger(source: "--liveness", value: "four"))
        }
        XCTAssertThrowsError(try EnvOptions.merge(arguments: ["--pub=tcp://x"], environment: [:], knownFlags: flags)) {
            guard case EnvOptionsError.malformedEndpoint(source: "--pub", value: "tcp://x", _) = $0 else {
                return XCTFail("unexpected \($0)")
            }
        }
        XCTAssertThrowsError(try EnvOptions.merge(arguments: ["--router"], environment: [:], knownFlags: flags)) {
            XCTAssertEqual($0 as? EnvOptionsError, .missingValue(flag: "--router"))
        }
    }

    func testBadFlagDeclarationIsAnError() {
        XCTAssertThrowsError(try EnvOptions.merge(arguments: [], environment: [:], knownFlags: ["--x:float"])) {
            XCTAssertEqual($0 as? EnvOptionsError, .badFlagSpec(spec: "--x:float"))
        }
        XCTAssertThrowsError(try EnvOptions.merge(arguments: [], environment: [:], knownFlags: ["router"])) {
            XCTAssertEqual($0 as? EnvOptionsError, .badFlagSpec(spec: "router"))
        }
    }
}
