import Messages
import XCTest

/// Malformed privacy and secure-aggregation messages: each is a typed error naming the field, never a crash.
final class PrivacyMessageTests: XCTestCase {
    let key = [UInt8](repeating: 7, count: 32)

    func assertInvalid(_ body: Body, field: String, file: StaticString = #filePath, line: UInt = #line) {
        let frames = Samples.envelope(body).encodeFrames()
        XCTAssertThrowsError(try Envelope.decode(frames: frames), file: file, line: line) { error in
            guard case MessageError.invalidField(let got, _) = error else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertEqual(got, field, file: file, line: line)
        }
    }

    func roster(index: UInt32 = 1, threshold: UInt32 = 2, peer: SecAggPeer? = nil, step: Double = 1e-6) -> Body {
        let p = peer ?? SecAggPeer(nodeId: "d2", index: 2, cipherPublic: key, maskPublic: key)
        return .secAggRoster(SecAggRoster(round: 1, group: 0, index: index, threshold: threshold, neighbours: [p], weight: 1, step: step,
                                          bound: 8, length: 10))
    }

    func testBadKeysSharesAndRostersAreTypedErrorsNamingTheField() {
        assertInvalid(.secAggKeys(SecAggKeys(round: 1, cipherPublic: Array(key.prefix(31)), maskPublic: key)), field: "SecAggKeys.cipher_public")
        assertInvalid(.secAggKeys(SecAggKeys(round: 1, cipherPublic: key, maskPublic: key + [0])), field: "SecAggKeys.mask_public")
        assertInvalid(roster(index: 0), field: "SecAggRoster.index")
        assertInvalid(roster(threshold: 3), field: "SecAggRoster.threshold")
        assertInvalid(roster(threshold: 0), field: "SecAggRoster.threshold")
        assertInvalid(roster(step: .nan), field: "SecAggRoster.step")
        assertInvalid(roster(peer: SecAggPeer(nodeId: "d2", index: 256, cipherPublic: key, maskPublic: key)), field: "SecAggPeer.index")
        assertInvalid(roster(peer: SecAggPeer(nodeId: "d2", index: 2, cipherPublic: [], maskPublic: key)), field: "SecAggPeer.cipher_public")
        assertInvalid(.secAggReveal(SecAggReveal(round: 1, group: 0, shares: [.init(owner: "d1", selfMask: true, x: 0, y: key)])),
                      field: "SecAggRevealedShare.x")
        assertInvalid(.secAggReveal(SecAggReveal(round: 1, group: 0, shares: [.init(owner: "d1", selfMask: false, x: 3, y: Array(key.prefix(8)))])),
                      field: "SecAggRevealedShare.y")
        let many = (0..<200).map { "d\($0)" }
        assertInvalid(.secAggUnmask(SecAggUnmask(round: 1, group: 0, survivors: many, dropped: many)), field: "SecAggUnmask")
        assertInvalid(.round(RoundAnnouncement(round: 1, modelVersion: 1, privacy: TaskPrivacy(clip: -1))), field: "TaskPrivacy.clip")
        assertInvalid(.round(RoundAnnouncement(round: 1, modelVersion: 1, privacy: TaskPrivacy(clip: 1, noiseStd: .infinity))), field: "TaskPrivacy.noise_std")
        assertInvalid(.update(UpdateUpload(round: 1, privacy: UploadPrivacy(epsilon: -.infinity))), field: "UploadPrivacy.epsilon")
    }

    func testValidPrivacyMessagesRoundTrip() throws {
        let body = roster()
        let decoded = try Envelope.decode(frames: Samples.envelope(body).encodeFrames())
        XCTAssertEqual(decoded.body, body)
        let masked = Body.update(UpdateUpload(round: 2, privacy: UploadPrivacy(clipReport: 0.5, epsilon: 1.25, masked: [0, 1, 0xDEAD_BEEF, .max])))
        XCTAssertEqual(try Envelope.decode(frames: Samples.envelope(masked).encodeFrames()).body, masked)
    }
}
