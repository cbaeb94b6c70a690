import Dispatch
import Engine
import Foundation
import Messages

/// The stage node's compute thread. It takes everything queued at once and runs the activations as one
/// `StageCompute.runBatch` (so the decode steps of all sessions waiting share one forward pass), then hands the
/// results back; releases and adapter changes queued with them take effect before the batch runs.
///
/// Compute emulation (bench and testbed): after the real compute the thread sleeps max(0, modeled − real),
/// modeled = FLOPs / (flops · (1 − load)), so the node computes like one of `flops` FLOP/s with that
/// background load.
final class ComputeWorker: @unchecked Sendable {  // safe: mutable state only under `cond`; `compute` only on the thread
    /// One activation to run and where its answer goes.
    struct Inbound: Sendable {
        var activation: StageActivation
        /// ROUTER identity of the sender (hub replies); empty for work the node gave itself.
        var peer: [UInt8]
        var replyTo: UInt64
        /// Part of a multi-access pass this node coordinates: the result goes back to the coordinator.
        var coordinated = false
    }

    enum Job: Sendable {
        case activation(Inbound)
        case release(String)
        case adapter(UInt32, LoRAAdapter?)
        case speedProbe
    }

    struct Snapshot: Sendable {
        var busy: Double
        var queue: Int
        var flops: Double?
        var sessions: Int
        /// Monotonic seconds of the last finished activation (speed probes aside).
        var lastWork: Double
    }

    typealias Results = [(Inbound, Result<StageCompute.Output, StageError>)]

    /// Seconds the busy fraction covers.
    let window: Double
    private let cond = NSCondition()
    private var pending: [Job] = []
    private var stopped = false
    private var runningSince: Double?
    private var runningSessions = false
    private var meter: LoadMeter
    private var sessions = 0
    private var lastWork = 0.0
    private var emulation: (flops: Double, load: Double)?
    private let compute: StageCompute
    private let deliver: @Sendable (Results) -> Void
    /// Runs on this thread for each successful direct-mode output; true when it took care of it (sent it on, or
    /// queued the next pass here), false to hand it to the service loop like every other result.
    var fastPath: ((Inbound, StageCompute.Output) -> Bool)?
    /// Sessions released here; their next passes are not queued again.
    private var released = RecentSet(capacity: 4096)

    init(compute: StageCompute, window: Double, emulation: (flops: Double, load: Double)?, deliver: @escaping @Sendable (Results) -> Void) {
        self.compute = compute
        self.window = window
        self.meter = LoadMeter(window: window)
        self.emulation = emulation
        self.deliver = deliver
        let thread = Thread { [self] in run() }
        thread.name = "stage-compute"
        thread.start()
    }

    func submit(_ job: Job) { submit(contentsOf: [job]) }

    /// Queues jobs together, so the compute thread takes them as one batch.
    func submit(contentsOf jobs: [Job]) {
        guard !jobs.isEmpty else { return }
        cond.lock()
        pending.append(contentsOf: jobs)
        cond.signal()
        cond.unlock()
    }

    /// Queues a direct pass for this node itself (called on this thread by the fast path).
    func requeue(_ a: StageActivation) {
        guard !released.contains(a.sessionId) else { return }
        cond.lock()
        pending.append(.activation(Inbound(activation: a, peer: [], replyTo: 0)))
        cond.unlock()
    }

    func stop() {
        cond.lock()
        stopped = true
        cond.signal()
        cond.unlock()
    }

    func setLoad(_ load: Double) {
        cond.lock()
        if let e = emulation { emulation = (e.flops, min(max(load, 0), 0.99)) }
        cond.unlock()
    }

    func snapshot(now: Double) -> Snapshot {
        cond.lock(); defer { cond.unlock() }
        let queued = pending.reduce(0) { n, j in if case .activation = j { return n + 1 } else { return n } }
        return Snapshot(busy: meter.busy(now: now, runningSince: runningSessions ? runningSince : nil), queue: queued,
                        flops: meter.flopsPerSecond, sessions: sessions, lastWork: lastWork)
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    private func run() {
        while true {
            cond.lock()
            while pending.isEmpty && !stopped { cond.wait() }
            if stopped { cond.unlock(); return }
            let jobs = pending
            pending.removeAll()
            let start = Self.now()
            runningSince = start
            runningSessions = jobs.contains { if case .activation = $0 { return true } else { return false } }
            let emulate = emulation
            cond.unlock()

            var inbound: [Inbound] = [], releases: [String] = [], probe = false
            for job in jobs {
                switch job {
                case .activation(let a): inbound.append(a)
                case .release(let s): releases.append(s)
                case .adapter(let k, let adapter): compute.setAdapter(adapter, cluster: k)
                case .speedProbe: probe = true
                }
            }
            // Releases first: their slots are free for new sessions in this same batch, and a released session's
            // pending pass is dropped instead of computed.
            for s in releases { compute.release(session: s); released.insert(s) }
            inbound.removeAll { released.contains($0.activation.sessionId) }
            var results: Results = []
            if !inbound.isEmpty {
                let outputs = compute.runBatch(inbound.map(\.activation))
                let flops = outputs.reduce(0.0) { $0 + ((try? $1.get().flops) ?? 0) }
                let end = Self.emulatedEnd(start: start, flops: flops, emulate)
                results = Array(zip(inbound, outputs))
                record(start: start, end: end, flops: flops, sessions: Set(inbound.map(\.activation.sessionId)), work: true)
            }
            if let fast = fastPath {
                results.removeAll { job, result in
                    guard job.activation.direct, !job.coordinated, case .success(let out) = result else { return false }
                    return fast(job, out)
                }
            }
            if probe, inbound.isEmpty {
                let t0 = Self.now()
                let flops = compute.speedProbe()
                record(start: t0, end: Self.emulatedEnd(start: t0, flops: flops, emulate), flops: flops, sessions: [], work: false)
            }
            cond.lock()
            for s in releases { meter.release(session: s) }
            sessions = compute.sessionCount
            runningSince = nil
            runningSessions = false
            cond.unlock()
            if !results.isEmpty { deliver(results) }
        }
    }

    private func record(start: Double, end: Double, flops: Double, sessions: Set<String>, work: Bool) {
        cond.lock()
        meter.record(start: start, end: end, flops: flops, sessions: sessions)
        if work { lastWork = end }
        cond.unlock()
    }

    /// Sleeps until the modeled compute time has passed (when emulating); returns the end time.
    private static func emulatedEnd(start: Double, flops: Double, _ emulate: (flops: Double, load: Double)?) -> Double {
        if let e = emulate {
            let modeled = flops / (e.flops * max(0.01, 1 - e.load))
            let real = now() - start
            if modeled > real { usleep(UInt32(min((modeled - real) * 1e6, 60e6))) }
        }
        return now()
    }
}
