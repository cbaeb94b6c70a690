import Messages
import XCTest

/// Truncated, random, mutated and over-cap inputs: every one decodes or throws a MessageError, never crashes.
final class FuzzTests: XCTestCase {
    static let perType = 10_000

    func testMutatedInputsOfEveryTypeGiveTypedErrorsOrValidMessages() throws {
        var rng = SplitMix64(state: 0xF1)
        let countBefore = decodeErrors.total
        var thrown = 0
        var decoded = 0
        for (name, body) in Samples.bodies {
            let frames = Samples.envelope(body).encodeFrames(externalThreshold: 8)
            let valid = frames[0]
            let smallCap = DecodeLimits(maxBytes: max(1, valid.count / 2))
            for i in 0..<Self.perType {
                var input = frames
                var limits = DecodeLimits.default
                switch i % 6 {
                case 0:  // truncate the header
                    input[0] = Array(valid.prefix(Int.random(in: 0..<valid.count, using: &rng)))
                case 1:  // flip 1-3 bits
                    for _ in 0...Int.random(in: 0...2, using: &rng) {
                        let k = Int.random(in: 0..<valid.count, using: &rng)
                        input[0][k] ^= UInt8(1) << UInt8.random(in: 0...7, using: &rng)
                    }
                case 2:  // overwrite 1-4 bytes
                    for _ in 0...Int.random(in: 0...3, using: &rng) {
                        input[0][Int.random(in: 0..<valid.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                    }
                case 3:  // random bytes
                    input[0] = (0..<Int.random(in: 1...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                case 4:  // over cap
                    limits = smallCap
                default:  // damage a tensor frame or drop frames, plus one header byte
                    if input.count > 1 {
                        if Bool.random(using: &rng) { input.removeLast() } else { input[1].removeLast() }
                    }
                    input[0][Int.random(in: 0..<valid.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
                do {
                    _ = try Envelope.decode(frames: input, limits: limits)
                    decoded += 1
                } catch is MessageError {
                    thrown += 1
                } catch {
                    XCTFail("\(name): untyped error \(error)")
                }
            }
        }
        XCTAssertEqual(thrown + decoded, Samples.bodies.count * Self.perType)
        XCTAssertGreaterThan(thrown, Samples.bodies.count * Self.perType / 3)
        XCTAssertGreaterThanOrEqual(decodeErrors.total - countBefore, thrown)
    }

    func testTruncatingAtEveryByteNeverDecodesTheOriginal() throws {
        for (name, body) in Samples.bodies {
            let env = Samples.envelope(body)
            let bytes = env.encode()
            for n in 0..<bytes.count {
                if let back = try? Envelope.decode(Array(bytes.prefix(n))) {
                    XCTAssertNotEqual(back, env, "\(name) cut at \(n)")
                }
            }
        }
    }
}
