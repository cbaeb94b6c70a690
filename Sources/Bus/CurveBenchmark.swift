import Foundation

/// `fi bench bus --curve`: what CURVE costs. PUSH -> PULL over tcp loopback through the Bus API, sender and
/// receiver on separate contexts (as in two processes: each has its own I/O thread doing the crypto), plaintext
/// and CURVE measured alternately in the same run.
public enum CurveBenchmark {
    public struct Row: Sendable {
        public let size: Int
        public let count: Int
        public let plainSeconds: Double
        public let curveSeconds: Double

        public var plainMessagesPerSecond: Double { Double(count) / plainSeconds }
        public var curveMessagesPerSecond: Double { Double(count) / curveSeconds }
        /// CURVE throughput over plaintext throughput.
        public var ratio: Double { plainSeconds / curveSeconds }
        /// The issue's goal: at least half the plaintext throughput for large (model-sized) messages; none for small ones.
        public var goal: Double? { size >= (1 << 20) ? 0.5 : nil }
    }

    public static func run(smallCount: Int = 100_000, largeCount: Int = 200, repeats: Int = 3) throws -> [Row] {
        try [(64, smallCount), (4 << 20, largeCount)].map { size, count in
            // Alternate and keep the best of each, so a noisy neighbour hurts both alike.
            var plain = Double.infinity, curve = Double.infinity
            for _ in 0..<max(1, repeats) {
                plain = min(plain, try measure(size: size, count: count, secured: false))
                curve = min(curve, try measure(size: size, count: count, secured: true))
            }
            return Row(size: size, count: count, plainSeconds: plain, curveSeconds: curve)
        }
    }

    public static func format(_ rows: [Row]) -> String {
        func f(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
        var lines = ["size       count   plain msg/s  plain GB/s   curve msg/s  curve GB/s  curve/plain  goal"]
        for r in rows {
            let size = r.size >= 1 << 20 ? "\(r.size >> 20) MB" : "\(r.size) B"
            let gb = { (rate: Double) in rate * Double(r.size) / 1e9 }
            let goal = r.goal.map { ">= \(f($0, 1)) \(r.ratio >= $0 ? "ok" : "MISSED")" } ?? "-"
            lines.append([size.padding(toLength: 8, withPad: " ", startingAt: 0), pad(String(r.count), 7),
                          pad(f(r.plainMessagesPerSecond, 0), 13), pad(f(gb(r.plainMessagesPerSecond), 3), 11),
                          pad(f(r.curveMessagesPerSecond, 0), 13), pad(f(gb(r.curveMessagesPerSecond), 3), 11),
                          pad(f(r.ratio, 2), 12), goal].joined(separator: " "))
        }
        return lines.joined(separator: "\n")
    }

    /// Seconds for `count` messages of `size` bytes, sender and receiver on separate (secured) contexts.
    static func measure(size: Int, count: Int, secured: Bool) throws -> Double {
        let receiver = BusContext(), sender = BusContext()
        if secured {
            let server = try CurveKeyPair.generate(), client = try CurveKeyPair.generate()
            try receiver.secure(CurveSecurity(identity: server, allowed: [client.publicKey: "bench"]))
            try sender.secure(CurveSecurity(identity: client, serverKey: server.publicKey))
        }
        return try BusBenchmark.measure(.init(transport: "tcp", size: size, count: count), viaBus: true, receiver: receiver, sender: sender)
    }
}
