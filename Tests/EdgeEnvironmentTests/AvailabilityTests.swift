import EdgeEnvironment
import XCTest

final class AvailabilityTests: XCTestCase {
    func testGivenChangesToggleInOrder() {
        var t = AvailabilityTimeline(online: true, changes: [25, 60])
        XCTAssertTrue(t.online); XCTAssertEqual(t.nextChange, 25)
        t.advance()
        XCTAssertFalse(t.online); XCTAssertEqual(t.nextChange, 60)
        t.advance()
        XCTAssertTrue(t.online); XCTAssertEqual(t.nextChange, .infinity)
        t.advance()
        XCTAssertTrue(t.online, "no more changes")
        XCTAssertTrue(AvailabilityTimeline.always.online)
        XCTAssertEqual(AvailabilityTimeline.always.nextChange, .infinity)
    }

    /// The alternating renewal process spends meanOn / (meanOn + meanOff) of its time online, and each device's
    /// timeline is its own (seeded per device, the same on every call).
    func testChurnIsOnlineForItsLongRunShareAndSeededPerDevice() {
        let spec = AvailabilitySpec(meanOnlineSeconds: 600, meanOfflineSeconds: 300)
        var t = AvailabilityTimeline(spec: spec, seed: 1, device: 3)
        var online = 0.0, now = 0.0
        for _ in 0..<20_000 {
            let next = t.nextChange
            if t.online { online += next - now }
            now = next
            t.advance()
        }
        XCTAssertEqual(online / now, 2.0 / 3.0, accuracy: 0.02)
        let a = AvailabilityTimeline(spec: spec, seed: 1, device: 7), b = AvailabilityTimeline(spec: spec, seed: 1, device: 7)
        XCTAssertEqual(a.nextChange, b.nextChange)
        XCTAssertNotEqual(a.nextChange, AvailabilityTimeline(spec: spec, seed: 1, device: 8).nextChange)
        // At time 0 about two thirds of the devices are online (the stationary start).
        let up = (0..<3000).filter { AvailabilityTimeline(spec: spec, seed: 2, device: $0).online }.count
        XCTAssertEqual(Double(up) / 3000, 2.0 / 3.0, accuracy: 0.03)
    }

    func testScenarioAvailabilityParsesAndBadValuesNameTheField() throws {
        let s = try Scenario.decode(yaml: "devices:\n  availability: {meanOnlineSeconds: 120, meanOfflineSeconds: 60}\n")
        XCTAssertEqual(s.devices.availability, AvailabilitySpec(meanOnlineSeconds: 120, meanOfflineSeconds: 60))
        XCTAssertNil(try Scenario.decode(yaml: "seed: 1\n").devices.availability)
        XCTAssertThrowsError(try Scenario.decode(yaml: "devices:\n  availability: {meanOnlineSeconds: 0}\n").build()) { error in
            guard case .invalidValue(let field, _, _)? = error as? ScenarioError else { return XCTFail("\(error)") }
            XCTAssertEqual(field, "devices.availability.meanOnlineSeconds")
        }
        XCTAssertThrowsError(try Scenario.decode(yaml: "devices:\n  availability: {meanOnline: 5}\n")) { error in
            guard case .unknownKey(let field, _)? = error as? ScenarioError else { return XCTFail("\(error)") }
            XCTAssertEqual(field, "devices.availability.meanOnline")
        }
    }
}
