import Foundation

/// DP for FedBuff, per buffer: each update is clipped to C (central; distributed devices clip and noise their own) and
/// weighted by s(τ) ≤ 1, and each release adds N(0, (σ·C)²) to the buffer's sum. A release is a Gaussian mechanism for
/// every device in its buffer, without sampling amplification (who lands in a buffer follows from timing, not from a
/// random draw); a device with c updates in one buffer has sensitivity c·C there. RDP composes per device as
/// α·Σc²/(2σ²), and the run's ε is the worst device's.
public struct BufferPrivacy: Sendable, Equatable, Codable {
    public let settings: PrivacySettings
    let key: [UInt8]
    /// Releases so far (each one's noise nonce).
    public private(set) var releases: UInt64 = 0
    /// Device → Σ over its releases of c²·(noise shares planned / shares summed): its RDP is α·load/(2σ²).
    public private(set) var load: [String: Double] = [:]

    public init(settings: PrivacySettings, key: [UInt8] = ChaChaRandom.freshKey()) { self.settings = settings; self.key = key }

    var sigma: Double { settings.noiseMultiplier }

    /// What a device adds before uploading into buffers of `k`.
    public func task(bufferSize k: Int) -> DevicePrivacy {
        DevicePrivacy(clip: settings.clip, noiseStd: settings.mode == .distributed ? sigma * settings.clip / Double(max(1, k)).squareRoot() : 0)
    }

    /// Clips an arriving update (central mode).
    func admit(_ delta: inout [Float]) {
        if settings.mode == .central { GaussianMechanism.clip(&delta, to: settings.clip) }
    }

    /// Noises a buffer's sum of `devices`' updates (planned size k) and accounts the release.
    mutating func release(_ sum: inout [Float], devices: [String], bufferSize k: Int) {
        if settings.mode == .central {
            var rng = ChaChaRandom(key: key, nonce: releases)
            GaussianMechanism.addNoise(&sum, std: sigma * settings.clip, using: &rng)
        }
        releases += 1
        guard sigma > 0 else { return }
        let shortfall = settings.mode == .distributed ? Double(k) / Double(max(1, devices.count)) : 1
        var counts: [String: Int] = [:]
        for d in devices { counts[d, default: 0] += 1 }
        for (d, c) in counts { load[d, default: 0] += Double(c * c) * shortfall }
    }

    static func epsilon(load: Double, sigma: Double, delta: Double) -> Double {
        guard load > 0 else { return 0 }
        return RDPAccountant.epsilon(rdp: RDPAccountant.orders.map { $0 * load / (2 * sigma * sigma) }, delta: delta).epsilon
    }

    /// The worst device's ε at δ.
    public var epsilon: Double { Self.epsilon(load: load.values.max() ?? 0, sigma: sigma, delta: settings.delta) }

    /// Would `more` further releases with the worst device in each take ε past the target?
    public func exhausted(more: Int) -> Bool {
        guard let target = settings.targetEpsilon, sigma > 0 else { return false }
        return Self.epsilon(load: (load.values.max() ?? 0) + Double(more), sigma: sigma, delta: settings.delta) > target
    }

    public var notes: [String: String] {
        var n = ["dp_mode": settings.mode.rawValue, "dp_noise_multiplier": String(format: "%.4f", sigma), "dp_clip": "\(settings.clip)",
                 "dp_delta": "\(settings.delta)", "dp_releases": "\(releases)", "dp_accounting": "per device, per buffer release"]
        if sigma > 0 { n["dp_epsilon"] = String(format: "%.4f", epsilon) }
        if let t = settings.targetEpsilon { n["dp_target_epsilon"] = "\(t)" }
        return n
    }
}
