import Dispatch
import Foundation

/// Rate and latency of one emulated link.
public struct EmulatedLink: Sendable, Equatable {
    public var rateBitsPerSecond: Double
    public var latencySeconds: Double
    public init(rateBitsPerSecond: Double, latencySeconds: Double = 0) {
        self.rateBitsPerSecond = rateBitsPerSecond
        self.latencySeconds = latencySeconds
    }
    /// No delay at all: the default for links nobody configured.
    public static let instant = EmulatedLink(rateBitsPerSecond: .infinity, latencySeconds: 0)
}

/// Really delays deliveries by bytes·8/rate + propagation, in wall time. A link is busy
/// until its previous transmission has been serialised, so back-to-back sends queue up;
/// deliveries on one link run in send order on that link's own serial queue.
/// Knows nothing of sockets: wrap any send with `transmit`. Usable from any thread.
// @unchecked Sendable is safe: every mutable field is only touched while holding `condition`.
public final class LinkEmulator: @unchecked Sendable {
    private struct Pending { let link: LinkID; let deliver: @Sendable () -> Void }

    private let condition = NSCondition()
    private let network: EdgeNetwork?
    private var links: [LinkID: EmulatedLink]
    private let defaultLink: EmulatedLink
    private var busyUntil: [LinkID: UInt64] = [:]
    private var lastDelivery: [LinkID: UInt64] = [:]
    private var queues: [LinkID: DispatchQueue] = [:]
    private var pending = EventQueue<Pending>()
    private var inFlight = 0
    private var timerRunning = false
    private let origin = DispatchTime.now().uptimeNanoseconds
    /// Wall seconds per emulated second: 1 is real time, 0.1 runs ten times faster.
    public let timeScale: Double

    /// Fixed per-link rates; links not listed use `defaultLink`.
    public init(links: [LinkID: EmulatedLink] = [:], defaultLink: EmulatedLink = .instant, timeScale: Double = 1) {
        self.network = nil
        self.links = links
        self.defaultLink = defaultLink
        self.timeScale = max(timeScale, 0)
    }

    /// Rates from the physical model, evaluated at the emulated time each send starts (so
    /// fading varies as the run goes on), over the model's route between the link's ends.
    /// Links set with `setLink` take precedence; a link the model has no route for uses `defaultLink`.
    public init(network: EdgeNetwork, defaultLink: EmulatedLink = .instant, timeScale: Double = 1) {
        self.network = network
        self.links = [:]
        self.defaultLink = defaultLink
        self.timeScale = max(timeScale, 0)
    }

    /// Sets (or replaces) the rate of one link for sends from now on.
    public func setLink(_ link: LinkID, _ profile: EmulatedLink) {
        condition.lock(); defer { condition.unlock() }
        links[link] = profile
    }

    /// Sends `bytes` on `link`; `deliver` runs on a background thread when the last bit has
    /// arrived. Returns the wall-clock delay in seconds until delivery.
    @discardableResult
    public func transmit(bytes: Int, on link: LinkID, deliver: @Sendable @escaping () -> Void) -> Double {
        condition.lock(); defer { condition.unlock() }
        let now = DispatchTime.now().uptimeNanoseconds
        let start = max(now, busyUntil[link] ?? 0)
        let emulatedStart = Double(start - origin) / 1e9 / max(timeScale, 1e-12)
        let t = timing(link, max(bytes, 0), emulatedStart)
        let txEnd = start + nanoseconds(t.serialization * timeScale)
        busyUntil[link] = txEnd
        let deliverAt = max(txEnd + nanoseconds(t.propagation * timeScale), lastDelivery[link] ?? 0)
        lastDelivery[link] = deliverAt
        pending.push(Pending(link: link, deliver: deliver), at: Double(deliverAt))
        inFlight += 1
        if !timerRunning {
            timerRunning = true
            Thread { [self] in timerLoop() }.start()
        } else {
            condition.broadcast()
        }
        return Double(deliverAt - now) / 1e9
    }

    /// Sends `bytes` on `link` and returns once they have been delivered.
    public func transmit(bytes: Int, on link: LinkID) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            transmit(bytes: bytes, on: link) { continuation.resume() }
        }
    }

    /// Sends not yet delivered.
    public var pendingCount: Int {
        condition.lock(); defer { condition.unlock() }
        return inFlight
    }

    /// Blocks until every send so far has been delivered, or the timeout (seconds) passes.
    /// Returns true if the emulator is idle.
    @discardableResult
    public func waitUntilIdle(timeout: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock(); defer { condition.unlock() }
        while inFlight > 0 {
            if !condition.wait(until: deadline) { return inFlight == 0 }
        }
        return true
    }

    /// Emulated (serialisation, propagation) seconds of a send. Called with the lock held.
    private func timing(_ link: LinkID, _ bytes: Int, _ time: Double) -> (serialization: Double, propagation: Double) {
        let bits = Double(bytes) * 8
        if links[link] == nil, let network, let hops = try? network.route(from: link.from, to: link.to) {
            var serialization = 0.0, propagation = 0.0
            for hop in hops {
                serialization += (try? network.airtime(bits: bits, on: hop, at: time + serialization)) ?? 0
                propagation += (try? network.linkState(hop, at: time + serialization).latencySeconds) ?? 0
            }
            return (serialization, propagation)
        }
        let profile = links[link] ?? defaultLink
        return (profile.rateBitsPerSecond.isInfinite ? 0 : bits / profile.rateBitsPerSecond, profile.latencySeconds)
    }

    private func nanoseconds(_ seconds: Double) -> UInt64 {
        guard seconds.isFinite, seconds > 0 else { return 0 }
        return UInt64(min(seconds * 1e9, 1e18))
    }

    /// Runs while deliveries are pending, then exits, so an idle emulator holds no thread.
    private func timerLoop() {
        condition.lock()
        while let due = pending.nextTime {
            let now = DispatchTime.now().uptimeNanoseconds
            if Double(now) >= due, let entry = pending.pop() {
                let queue = queues[entry.event.link] ?? DispatchQueue(label: "link-emulator \(entry.event.link)")
                queues[entry.event.link] = queue
                let deliver = entry.event.deliver
                queue.async { [self] in
                    deliver()
                    condition.lock()
                    inFlight -= 1
                    condition.broadcast()
                    condition.unlock()
                }
            } else {
                _ = condition.wait(until: Date(timeIntervalSinceNow: (due - Double(now)) / 1e9))
            }
        }
        timerRunning = false
        condition.unlock()
    }
}
