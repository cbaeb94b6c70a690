// Asynchronous federation on the virtual clock, deterministic whatever order real training finishes in.
//
// Conservative discrete-event scheduling (Chandy–Misra style). Every device has exactly one task in flight: it was
// dispatched at sim time s with global version v, and will report once. Its sim arrival is s + download + compute +
// upload (durations from the edge cost model, passed with the report), so it is known only once it reports.
// Invariant: an update is applied only when no in-flight task can still arrive before it, i.e. when every
// unreported task's earliest possible arrival (dispatch time + lookahead) comes after it. With lookahead 0 this
// means: every in-flight device has reported. Updates are applied strictly in (arrival, dispatch order) order,
// and a device is re-dispatched at its update's arrival with the version that update produced. Wall-clock order of
// reports never changes the result; a slow device in sim time only delays its own updates.

/// When the asynchronous run ends.
public enum AsyncStopCondition: Sendable, Equatable, Codable {
    /// Apply only updates arriving at or before this sim time (seconds).
    case simTime(Double)
    /// Stop after this many accepted updates.
    case appliedUpdates(Int)
    /// Run until the caller stops dispatching.
    case never
}

/// A task handed to a device: train on `version` starting at sim time `simTime`.
public struct AsyncDispatch: Sendable, Equatable, Codable {
    public var device: String
    public var version: UInt64
    public var simTime: Double
    /// Dispatch order; breaks ties between equal arrivals (earlier dispatch first).
    public var sequence: UInt64
}

/// One update taken off the event queue.
public struct AsyncApplication: Sendable, Equatable {
    public enum Outcome: Sendable, Equatable {
        /// The global changed (FedAsync, or FedBuff releasing its buffer).
        case applied(AggregationResult)
        /// Accepted into FedBuff's buffer; the global is unchanged yet.
        case buffered
        case rejected(UpdateRejection)
    }
    public var device: String
    public var arrival: Double
    public var dispatch: AsyncDispatch
    /// τ = global version when applied − version dispatched.
    public var staleness: UInt64
    public var outcome: Outcome
    /// The device's next task (nil once the run has stopped).
    public var next: AsyncDispatch?
}

public struct AsyncScheduler: Sendable {
    public private(set) var strategy: any AsynchronousRule
    public private(set) var global: GlobalModel
    public let validator: UpdateValidator
    public let stop: AsyncStopCondition
    /// Smallest possible task duration (seconds); > 0 lets updates be released before every device has reported.
    public let lookahead: Double
    /// Sim time of the last applied update.
    public private(set) var now: Double
    /// Accepted updates so far (applied or buffered).
    public private(set) var accepted = 0
    public private(set) var rejected = 0
    public private(set) var isFinished = false
    /// Device -> its task in flight.
    public private(set) var inFlight: [String: AsyncDispatch] = [:]
    /// Version -> the model tasks dispatched at that version train from (only versions still in flight).
    public private(set) var bases: [UInt64: [Float]] = [:]
    private var reported: [String: (update: ModelUpdate, arrival: Double)] = [:]
    private var nextSequence: UInt64 = 0

    public init(strategy: any AsynchronousRule, global: GlobalModel, validator: UpdateValidator = UpdateValidator(),
                stop: AsyncStopCondition = .never, lookahead: Double = 0, start: Double = 0) {
        self.strategy = strategy; self.global = global; self.validator = validator; self.stop = stop
        self.lookahead = lookahead.isFinite ? max(0, lookahead) : 0; self.now = start
    }

    /// Devices that still owe a report.
    public var awaiting: [String] { inFlight.keys.filter { reported[$0] == nil }.sorted() }
    /// Reported updates waiting for earlier arrivals to be settled.
    public var queued: Int { reported.count }

    /// The model a dispatch trains from.
    public func model(for d: AsyncDispatch) -> [Float] { bases[d.version] ?? global.parameters }

    /// Dispatches every given device that has no task yet, at the current sim time with the current version.
    public mutating func start(devices: [String]) -> [AsyncDispatch] {
        var out: [AsyncDispatch] = []
        for d in Set(devices).sorted() { if let x = join(d) { out.append(x) } }
        return out
    }

    /// Dispatches one device (a late joiner) now; nil if it already has a task or the run has stopped.
    public mutating func join(_ device: String) -> AsyncDispatch? {
        guard !isFinished, inFlight[device] == nil else { return nil }
        return dispatch(device, at: now)
    }

    private mutating func dispatch(_ device: String, at time: Double) -> AsyncDispatch {
        let d = AsyncDispatch(device: device, version: global.version, simTime: time, sequence: nextSequence)
        nextSequence += 1
        inFlight[device] = d
        bases[d.version] = global.parameters
        return d
    }

    /// Takes a device's finished task, with its sim durations, and returns every update that became safe to apply,
    /// in application order. Late reports after the stop are ignored (empty result).
    public mutating func report(_ update: ModelUpdate, durations: TaskDurations) throws(ParadigmError) -> [AsyncApplication] {
        if isFinished { return [] }
        guard let d = inFlight[update.device] else { throw .notDispatched(device: update.device) }
        guard reported[update.device] == nil else { throw .alreadyReported(device: update.device) }
        guard durations.isValid else {
            throw .invalidDuration(device: update.device, seconds: [durations.download, durations.compute, durations.upload]
                .first { !($0.isFinite && $0 >= 0) } ?? durations.total)
        }
        guard update.baseVersion == d.version else {
            throw .versionMismatch(device: update.device, dispatched: d.version, reported: update.baseVersion)
        }
        // A task shorter than the promised lookahead is counted as lasting the lookahead, so the invariant holds.
        reported[update.device] = (update, d.simTime + max(durations.total, lookahead))
        return drain()
    }

    /// Forgets a dead device's task so it no longer holds back the queue; returns what that released.
    public mutating func cancel(_ device: String) -> [AsyncApplication] {
        inFlight[device] = nil
        reported[device] = nil
        prune()
        return isFinished ? [] : drain()
    }

    /// Ends the run: flushes a partly filled FedBuff buffer.
    public mutating func finish() -> AggregationResult? {
        isFinished = true
        return strategy.flush(&global)
    }

    /// The earliest reported update, if no unreported task could still arrive before it.
    private func releasable() -> (device: String, arrival: Double, dispatch: AsyncDispatch)? {
        var best: (device: String, arrival: Double, dispatch: AsyncDispatch)? = nil
        for (device, r) in reported {
            guard let d = inFlight[device] else { continue }
            if let b = best, (b.arrival, b.dispatch.sequence) < (r.arrival, d.sequence) { continue }
            best = (device, r.arrival, d)
        }
        guard let b = best else { return nil }
        for (device, d) in inFlight where reported[device] == nil {
            // That task arrives at d.simTime + lookahead at the earliest; on a tie the earlier dispatch goes first.
            if (d.simTime + lookahead, d.sequence) < (b.arrival, b.dispatch.sequence) { return nil }
        }
        return b
    }

    private mutating func drain() -> [AsyncApplication] {
        var out: [AsyncApplication] = []
        while !isFinished, let next = releasable() {
            let (device, arrival, d) = (next.device, next.arrival, next.dispatch)
            if case let .simTime(budget) = stop, arrival > budget { isFinished = true; break }
            guard let update = reported.removeValue(forKey: device)?.update else { break }
            inFlight[device] = nil
            now = max(now, arrival)
            let tau = global.version >= d.version ? global.version - d.version : 0
            let outcome: AsyncApplication.Outcome
            do {
                _ = try validator.validate(update, against: global)
                if let r = try strategy.submit(update, base: bases[d.version] ?? global.parameters, staleness: tau, to: &global) {
                    outcome = .applied(r)
                } else {
                    outcome = .buffered
                }
                accepted += 1
            } catch {
                outcome = .rejected(error)
                rejected += 1
            }
            if case let .appliedUpdates(n) = stop, accepted >= n { isFinished = true }
            let redispatch = isFinished ? nil : dispatch(device, at: now)
            prune()
            out.append(AsyncApplication(device: device, arrival: arrival, dispatch: d, staleness: tau,
                                        outcome: outcome, next: redispatch))
        }
        return out
    }

    /// Keeps the bases of versions still in flight only.
    private mutating func prune() {
        let live = Set(inFlight.values.map(\.version))
        for v in bases.keys where !live.contains(v) { bases[v] = nil }
    }
}

/// What a snapshot keeps of an AsyncScheduler; bases and reported deltas go to the snapshot's float blobs.
public struct AsyncSchedulerSnapshot: Codable, Sendable {
    public struct Reported: Codable, Sendable, Equatable {
        public var device: String, round: UInt64, samples: Int, baseVersion: UInt64, loss: Float, arrival: Double
    }
    public var version: UInt64
    public var now: Double
    public var accepted: Int
    public var rejected: Int
    public var isFinished: Bool
    public var inFlight: [String: AsyncDispatch]
    public var reported: [Reported]
    public var nextSequence: UInt64
    public var buffer: FedBuff?
}

extension AsyncScheduler {
    public func snapshot(blobs: inout [String: [Float]], prefix: String) -> AsyncSchedulerSnapshot {
        blobs["\(prefix)global"] = global.parameters
        for (v, p) in bases { blobs["\(prefix)base/\(v)"] = p }
        var out: [AsyncSchedulerSnapshot.Reported] = []
        for (d, r) in reported.sorted(by: { $0.key < $1.key }) {
            blobs["\(prefix)reported/\(d)"] = r.update.delta
            out.append(.init(device: d, round: r.update.round, samples: r.update.samples, baseVersion: r.update.baseVersion,
                             loss: r.update.loss, arrival: r.arrival))
        }
        return AsyncSchedulerSnapshot(version: global.version, now: now, accepted: accepted, rejected: rejected, isFinished: isFinished,
                                      inFlight: inFlight, reported: out, nextSequence: nextSequence, buffer: strategy as? FedBuff)
    }

    public init(restoring s: AsyncSchedulerSnapshot, blobs: [String: [Float]], prefix: String, strategy: any AsynchronousRule,
                layout: ParameterLayout, validator: UpdateValidator, stop: AsyncStopCondition, lookahead: Double) throws(ParadigmError) {
        guard let g = blobs["\(prefix)global"], g.count == layout.count else { throw .badSnapshot(reason: "the async global does not fit the adapter layout") }
        self.init(strategy: s.buffer ?? strategy, global: GlobalModel(layout: layout, parameters: g, version: s.version), validator: validator,
                  stop: stop, lookahead: lookahead, start: s.now)
        accepted = s.accepted; rejected = s.rejected; isFinished = s.isFinished
        inFlight = s.inFlight; nextSequence = s.nextSequence
        for v in Set(s.inFlight.values.map(\.version)) {
            guard let b = blobs["\(prefix)base/\(v)"], b.count == layout.count else { throw .badSnapshot(reason: "no base for in-flight version \(v)") }
            bases[v] = b
        }
        for r in s.reported {
            guard let delta = blobs["\(prefix)reported/\(r.device)"], delta.count == layout.count else {
                throw .badSnapshot(reason: "no delta for the queued update of \(r.device)")
            }
            reported[r.device] = (ModelUpdate(device: r.device, round: r.round, samples: r.samples, baseVersion: r.baseVersion, delta: delta, loss: r.loss), r.arrival)
        }
    }
}
