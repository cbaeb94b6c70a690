import Crypto
import Foundation

// The one cryptographic PRG of the privacy code: the ChaCha20 keystream of a 32-byte key, taken as ChaCha20-Poly1305
// encrypts zeros (swift-crypto exposes ChaCha20 through its AEAD; the tag is dropped). Secure aggregation expands
// mask seeds with it; DP noise is drawn from it, so noise is unpredictable to anyone without the key (a seeded
// xoshiro stream could be recomputed from the experiment's seed and subtracted).

public enum ChaChaStream {
    /// `count` little-endian 32-bit words of the keystream of `key` (32 bytes) under nonce `nonce`.
    public static func words(key: [UInt8], nonce: UInt64 = 0, count: Int) -> [UInt32] {
        guard count > 0 else { return [] }
        var out = [UInt32](repeating: 0, count: count)
        out.withUnsafeMutableBytes { raw in fill(raw, key: key, nonce: nonce) }
        return out
    }

    /// Adds (sign +1) or subtracts (−1) the keystream words of `key` to `vector`, mod 2³².
    public static func add(key: [UInt8], nonce: UInt64 = 0, sign: Int, to vector: inout [UInt32]) {
        let mask = words(key: key, nonce: nonce, count: vector.count)
        vector.withUnsafeMutableBufferPointer { v in
            mask.withUnsafeBufferPointer { m in
                if sign >= 0 { for i in 0..<v.count { v[i] &+= m[i] } } else { for i in 0..<v.count { v[i] &-= m[i] } }
            }
        }
    }

    /// Keystream bytes into `buffer`: chunks of at most 1 MiB, chunk k under the 96-bit nonce (firstChunk + k, nonce).
    static func fill(_ buffer: UnsafeMutableRawBufferPointer, key: [UInt8], nonce: UInt64, firstChunk: UInt32 = 0) {
        precondition(key.count == 32, "ChaCha20 keys are 32 bytes (internal)")
        var n = [UInt8](repeating: 0, count: 12)
        for i in 0..<8 { n[4 + i] = UInt8(truncatingIfNeeded: nonce >> (8 * UInt64(i))) }
        // One AEAD call per MiB keeps the zero buffer small; ChaCha20's block counter runs within a call only, so each
        // chunk takes its own nonce (its index in the nonce's first 4 bytes).
        let chunk = 1 << 20
        let zeros = Data(count: min(chunk, buffer.count))
        var at = 0, index = firstChunk
        while at < buffer.count {
            let length = min(chunk, buffer.count - at)
            for i in 0..<4 { n[i] = UInt8(truncatingIfNeeded: index >> (8 * UInt32(i))) }
            // Cannot fail: the key and nonce sizes are fixed above.
            let box = try! ChaChaPoly.seal(zeros.prefix(length), using: SymmetricKey(data: key), nonce: try! ChaChaPoly.Nonce(data: n))
            box.ciphertext.withUnsafeBytes { c in
                UnsafeMutableRawBufferPointer(rebasing: buffer[at..<(at + length)]).copyMemory(from: c)
            }
            at += length; index += 1
        }
    }
}

/// A RandomNumberGenerator over the ChaCha20 keystream (DP noise, secret shares' random coefficients in tests).
public struct ChaChaRandom: RandomNumberGenerator, Sendable {
    private let key: [UInt8]
    private let nonce: UInt64
    private var buffer: [UInt64] = []
    private var at = 0
    private var block: UInt32 = 0

    /// `key`: 32 secret bytes; `nonce`: one stream per use of the key (a round, a cluster).
    public init(key: [UInt8], nonce: UInt64) {
        precondition(key.count == 32, "ChaCha20 keys are 32 bytes (internal)")
        self.key = key; self.nonce = nonce
    }

    public mutating func next() -> UInt64 {
        if at == buffer.count {
            // 32 KiB per refill, each under its own chunk index of (key, nonce).
            var words = [UInt64](repeating: 0, count: 4096)
            words.withUnsafeMutableBytes { ChaChaStream.fill($0, key: key, nonce: nonce, firstChunk: block) }
            buffer = words; at = 0; block += 1
        }
        defer { at += 1 }
        return buffer[at]
    }

    /// Standard normal (Box–Muller on 53-bit uniforms).
    public mutating func nextGaussian() -> Double {
        let u1 = (Double(next() >> 11) + 0.5) * 0x1.0p-53
        let u2 = Double(next() >> 11) * 0x1.0p-53
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
    }

    /// 32 bytes from the system's cryptographic generator (a fresh secret key).
    public static func freshKey() -> [UInt8] {
        var g = SystemRandomNumberGenerator()
        return (0..<32).map { _ in UInt8.random(in: 0...255, using: &g) }
    }
}
