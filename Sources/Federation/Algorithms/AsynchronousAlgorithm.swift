/// Asynchronous federation (FedAsync, FedBuff) on the virtual clock: every device has one task in flight; updates
/// apply in sim-arrival order as the AsyncScheduler releases them, so a straggler only delays its own updates.
public struct AsynchronousAlgorithm: FederatedAlgorithm {
    public private(set) var scheduler: AsyncScheduler
    public let settings: LocalSettings
    /// Device → the wire of its task in flight, and the dispatch behind it.
    public private(set) var tasks: [String: (wire: UInt64, dispatch: AsyncDispatch)] = [:]
    /// Device → the wire of its last reported task (a retry of it is a duplicate).
    public private(set) var reported: [String: UInt64] = [:]

    public init(scheduler: AsyncScheduler, settings: LocalSettings) { self.scheduler = scheduler; self.settings = settings }

    public var name: String { scheduler.strategy.name }
    public var models: [Int: GlobalModel] { [0: scheduler.global] }
    public func cluster(of device: String) -> Int? { 0 }
    public var clusterMap: [String: Int] { [:] }
    public var ari: Double? { nil }
    public var notes: [String: String] {
        ["async_mode": scheduler.strategy.name, "applied": "\(scheduler.accepted)", "rejected_async": "\(scheduler.rejected)",
         "lookahead_s": String(format: "%.3f", scheduler.lookahead), "version": "\(scheduler.global.version)"]
            .merging(privacy?.notes ?? [:]) { $1 }
    }

    /// FedBuff's DP stage, if any.
    public var privacy: BufferPrivacy? { (scheduler.strategy as? FedBuff)?.privacy }
    var taskPrivacy: DevicePrivacy? {
        guard let b = scheduler.strategy as? FedBuff, let p = b.privacy else { return nil }
        return p.task(bufferSize: b.bufferSize)
    }

    /// The task (and its model) for a dispatch under wire `wire`.
    public mutating func task(for d: AsyncDispatch, wire: UInt64) -> (RoundTask, [Float]) {
        tasks[d.device] = (wire, d)
        return (RoundTask(wire: wire, round: Int(d.sequence), cluster: 0, models: [0], settings: settings, privacy: taskPrivacy), scheduler.model(for: d))
    }

    /// The open task of a device, for resends.
    public func openTask(of device: String) -> (RoundTask, [Float])? {
        guard let t = tasks[device] else { return nil }
        return (RoundTask(wire: t.wire, cluster: 0, models: [0], settings: settings, privacy: taskPrivacy), scheduler.model(for: t.dispatch))
    }

    public mutating func start(devices: [String]) -> [AsyncDispatch] { scheduler.start(devices: devices) }
    public mutating func join(_ device: String) -> AsyncDispatch? { scheduler.join(device) }
    public mutating func finish() -> AggregationResult? { scheduler.finish() }

    /// A device's report of its task: what it released, in application order.
    public mutating func report(_ update: ModelUpdate, from device: String, durations: TaskDurations) throws(ParadigmError) -> [AsyncApplication] {
        guard let t = tasks[device] else { throw .notDispatched(device: device) }
        var u = update
        u.baseVersion = t.dispatch.version
        let out = try scheduler.report(u, durations: durations)
        tasks[device] = nil
        reported[device] = t.wire
        return out
    }

    /// Restores the task table a snapshot kept (the scheduler is restored on its own).
    mutating func restore(tasks: [String: UInt64], reported: [String: UInt64]) {
        self.reported = reported
        for (d, w) in tasks { if let disp = scheduler.inFlight[d] { self.tasks[d] = (w, disp) } }
    }
}
