import Foundation

/// How two devices exchange data in a horizontal peer chain.
public enum DeviceToDeviceMode: String, Codable, Sendable {
    /// A sidelink: the same channel model over the device–device distance, at device power,
    /// using a share of the serving AP's band.
    case direct
    /// Relayed: uplink to the sender's AP, then downlink from the receiver's AP
    /// (through the cloud if the two devices sit in different cells).
    case viaAccessPoint
}

/// Constants of the radio channel. Defaults follow 3GPP TR 36.814 macro-cell numbers.
public struct ChannelParameters: Sendable, Equatable {
    /// Path loss PL(d) = intercept + slope·log10(d / 1 km), in dB.
    public var pathLossInterceptDB: Double = 128.1
    public var pathLossSlopeDB: Double = 37.6
    /// Standard deviation of log-normal shadowing in dB (0 disables it).
    public var shadowingSigmaDB: Double = 8
    /// Rayleigh block fading: |h|² ~ Exp(1), redrawn every coherence interval.
    public var rayleighFading: Bool = true
    /// Length of one fading block, in seconds.
    public var coherenceTimeSeconds: Double = 0.1
    /// Thermal noise power spectral density, dBm/Hz.
    public var noiseDensityDBmPerHz: Double = -174
    /// Receiver noise figure, dB.
    public var noiseFigureDB: Double = 9
    /// Distances are clamped to at least this, in metres, so the log-distance law stays finite.
    public var minDistanceMeters: Double = 10
    public var deviceToDevice: DeviceToDeviceMode = .direct

    public init() {}
}

/// Unit conversions used throughout (dB is 10·log10 of a power ratio).
public enum Decibel {
    public static func toLinear(_ dB: Double) -> Double { pow(10, dB / 10) }
    public static func fromLinear(_ ratio: Double) -> Double { 10 * log10(ratio) }
    public static func dBmToWatts(_ dBm: Double) -> Double { pow(10, (dBm - 30) / 10) }
}

/// The wireless channel: path loss, shadowing, fading, SNR and Shannon rate.
/// Random terms are keyed by (seed, link, time block), so queries are pure functions.
public struct ChannelModel: Sendable {
    public var parameters: ChannelParameters
    public var seed: UInt64

    public init(parameters: ChannelParameters = ChannelParameters(), seed: UInt64 = 0) {
        self.parameters = parameters
        self.seed = seed
    }

    /// Large-scale path loss in dB at a distance in metres.
    public func pathLossDB(distanceMeters: Double) -> Double {
        let km = max(distanceMeters, parameters.minDistanceMeters) / 1000
        return parameters.pathLossInterceptDB + parameters.pathLossSlopeDB * log10(km)
    }

    /// Noise power in dBm over a band in Hz, including the receiver noise figure.
    public func noisePowerDBm(bandwidthHz: Double) -> Double {
        parameters.noiseDensityDBmPerHz + 10 * log10(bandwidthHz) + parameters.noiseFigureDB
    }

    /// Shadowing in dB for the pair {a, b}: fixed per pair (it follows the geometry) and
    /// reciprocal, drawn from N(0, σ²).
    public func shadowingDB(between a: NodeID, and b: NodeID) -> Double {
        guard parameters.shadowingSigmaDB > 0 else { return 0 }
        var rng = SplitMix64.keyed(seed: seed, 0x5348_4144, pairKey(a, b))
        return parameters.shadowingSigmaDB * rng.nextGaussian()
    }

    /// Index of the coherence block that contains time t (seconds).
    public func coherenceBlock(at time: Double) -> Int64 {
        guard parameters.coherenceTimeSeconds > 0 else { return 0 }
        return Int64((time / parameters.coherenceTimeSeconds).rounded(.down))
    }

    /// Small-scale power gain |h|² for {a, b} at time t: Exp(1) per coherence block
    /// (reciprocal, same time → same draw), or 1 when fading is off.
    public func fadingGain(between a: NodeID, and b: NodeID, at time: Double) -> Double {
        guard parameters.rayleighFading else { return 1 }
        let block = UInt64(bitPattern: coherenceBlock(at: time))
        var rng = SplitMix64.keyed(seed: seed, 0x4641_4445, pairKey(a, b), block)
        return rng.nextExponential()
    }

    /// Linear SNR = P·g / (N0·F·B), with g = 10^(−(PL + shadowing)/10)·|h|².
    public func snr(txPowerDBm: Double, distanceMeters: Double, bandwidthHz: Double,
                    shadowingDB: Double = 0, fadingGain: Double = 1) -> Double {
        let rxDBm = txPowerDBm - pathLossDB(distanceMeters: distanceMeters) - shadowingDB
        return Decibel.toLinear(rxDBm - noisePowerDBm(bandwidthHz: bandwidthHz)) * fadingGain
    }

    /// Shannon capacity B·log2(1 + SNR), in bit/s.
    public func shannonRate(bandwidthHz: Double, snr: Double) -> Double {
        bandwidthHz * log2(1 + max(snr, 0))
    }

    private func pairKey(_ a: NodeID, _ b: NodeID) -> UInt64 {
        let (lo, hi) = a <= b ? (a, b) : (b, a)
        return SplitMix64.mix(stableHash(lo)) ^ stableHash(hi)
    }
}
