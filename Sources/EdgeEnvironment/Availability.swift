import Foundation

/// Availability churn (`devices.availability` in a scenario): each device alternates between online and offline
/// periods with exponential durations of the given means (an alternating renewal process, as in traces of phones
/// that charge, roam and sleep). Offline devices neither take tasks nor deliver updates.
public struct AvailabilitySpec: Sendable, Equatable {
    public var meanOnlineSeconds: Double
    public var meanOfflineSeconds: Double
    public init(meanOnlineSeconds: Double, meanOfflineSeconds: Double) {
        self.meanOnlineSeconds = meanOnlineSeconds; self.meanOfflineSeconds = meanOfflineSeconds
    }

    /// Long-run share of time a device is online.
    public var onlineFraction: Double { meanOnlineSeconds / (meanOnlineSeconds + meanOfflineSeconds) }
}

/// One device's availability over virtual time: whether it is online now and when that next changes. Seeded per
/// device, so a device's timeline does not depend on how many devices there are.
public struct AvailabilityTimeline: Sendable {
    public private(set) var online: Bool
    /// When `online` next flips (infinity: never).
    public private(set) var nextChange: Double
    private var rng: SplitMix64
    private let spec: AvailabilitySpec?
    private var fixed: [Double]

    /// Always online.
    public static let always = AvailabilityTimeline(online: true, changes: [])

    /// The stationary process: online at time 0 with the long-run probability, the first change after a residual
    /// period (exponential, so memoryless: the same law as a full one).
    public init(spec: AvailabilitySpec, seed: UInt64, device: Int) {
        self.spec = spec
        fixed = []
        rng = SplitMix64.keyed(seed: seed, stableHash("availability"), UInt64(device))
        online = rng.nextUnit() < spec.onlineFraction
        nextChange = 0
        nextChange = draw(after: 0)
    }

    /// Given changes (ascending times), starting `online` (tests, traces).
    public init(online: Bool, changes: [Double]) {
        self.online = online
        spec = nil
        rng = SplitMix64(seed: 0)
        fixed = Array(changes.reversed())
        nextChange = fixed.popLast() ?? .infinity
    }

    /// Flips the state at `nextChange` and draws the change after it.
    public mutating func advance() {
        guard nextChange.isFinite else { return }
        let at = nextChange
        online.toggle()
        nextChange = draw(after: at)
    }

    private mutating func draw(after t: Double) -> Double {
        guard let spec else { return fixed.popLast() ?? .infinity }
        let mean = online ? spec.meanOnlineSeconds : spec.meanOfflineSeconds
        return t + mean * rng.nextExponential()
    }
}
