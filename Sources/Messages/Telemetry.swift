import CMessages

// Telemetry: PUB -> XSUB/XPUB proxy -> SUB. Sequence numbers (Envelope.seq) let a tap detect gaps.

public struct LoadReport: Sendable, Equatable {
    /// 0...1 fraction of compute busy.
    public var load: Double
    public var flops: Double
    public var queue: UInt32

    public init(load: Double, flops: Double = 0, queue: UInt32 = 0) { self.load = load; self.flops = flops; self.queue = queue }
}

public struct ChannelState: Sendable, Equatable {
    /// "<node>-><peer>"
    public var link: String
    public var rateBps: Double
    public var snrDb: Double
    public var rttS: Double

    public init(link: String, rateBps: Double = 0, snrDb: Double = 0, rttS: Double = 0) {
        self.link = link; self.rateBps = rateBps; self.snrDb = snrDb; self.rttS = rttS
    }
}

public struct Metric: Sendable, Equatable {
    public var name: String
    public var value: Double
    public var labels: [String: String]

    public init(name: String, value: Double, labels: [String: String] = [:]) { self.name = name; self.value = value; self.labels = labels }
}

public enum Severity: UInt32, Sendable, Equatable, CaseIterable {
    case unspecified = 0, debug, info, warn, error
}

public struct Event: Sendable, Equatable {
    public var severity: Severity
    public var kind: String
    public var text: String

    public init(severity: Severity, kind: String, text: String = "") { self.severity = severity; self.kind = kind; self.text = text }
}

/// One telemetry report (proto `Telemetry`, a oneof).
public enum Telemetry: Sendable, Equatable {
    case load(LoadReport)
    case channel(ChannelState)
    case metric(Metric)
    case event(Event)
}

extension Telemetry {
    init(c: UnsafeMutablePointer<Fi__V1__Telemetry>) throws {
        let m = c.pointee
        switch m.report_case {
        case FI__V1__TELEMETRY__REPORT_LOAD:
            guard let r = m.load?.pointee else { throw MessageError.missingField("Telemetry.load") }
            self = .load(LoadReport(load: r.load, flops: r.flops, queue: r.queue))
        case FI__V1__TELEMETRY__REPORT_CHANNEL:
            guard let r = m.channel?.pointee else { throw MessageError.missingField("Telemetry.channel") }
            self = .channel(ChannelState(link: readString(r.link), rateBps: r.rate_bps, snrDb: r.snr_db, rttS: r.rtt_s))
        case FI__V1__TELEMETRY__REPORT_METRIC:
            guard let r = m.metric?.pointee else { throw MessageError.missingField("Telemetry.metric") }
            var labels: [String: String] = [:]
            for entry in readScalars(r.labels, r.n_labels) {
                guard let e = entry?.pointee else { throw MessageError.missingField("Metric.labels") }
                labels[readString(e.key)] = readString(e.value)
            }
            self = .metric(Metric(name: readString(r.name), value: r.value, labels: labels))
        case FI__V1__TELEMETRY__REPORT_EVENT:
            guard let r = m.event?.pointee else { throw MessageError.missingField("Telemetry.event") }
            self = .event(Event(severity: try readEnum(r.severity.rawValue, field: "Event.severity"),
                                kind: readString(r.kind), text: readString(r.text)))
        default:
            throw MessageError.missingField("Telemetry.report")
        }
    }

    func c(_ arena: Arena) -> UnsafeMutablePointer<Fi__V1__Telemetry> {
        let p: UnsafeMutablePointer<Fi__V1__Telemetry> = arena.message(fi__v1__telemetry__init)
        switch self {
        case .load(let r):
            let q: UnsafeMutablePointer<Fi__V1__LoadReport> = arena.message(fi__v1__load_report__init)
            q.pointee.load = r.load; q.pointee.flops = r.flops; q.pointee.queue = r.queue
            p.pointee.report_case = FI__V1__TELEMETRY__REPORT_LOAD; p.pointee.load = q
        case .channel(let r):
            let q: UnsafeMutablePointer<Fi__V1__ChannelState> = arena.message(fi__v1__channel_state__init)
            q.pointee.link = arena.string(r.link); q.pointee.rate_bps = r.rateBps; q.pointee.snr_db = r.snrDb; q.pointee.rtt_s = r.rttS
            p.pointee.report_case = FI__V1__TELEMETRY__REPORT_CHANNEL; p.pointee.channel = q
        case .metric(let r):
            let q: UnsafeMutablePointer<Fi__V1__Metric> = arena.message(fi__v1__metric__init)
            q.pointee.name = arena.string(r.name); q.pointee.value = r.value
            let keys = r.labels.keys.sorted()  // deterministic bytes
            q.pointee.n_labels = keys.count
            q.pointee.labels = arena.messages(keys) { key in
                let e: UnsafeMutablePointer<Fi__V1__Metric__LabelsEntry> = arena.message(fi__v1__metric__labels_entry__init)
                e.pointee.key = arena.string(key); e.pointee.value = arena.string(r.labels[key] ?? "")
                return e
            }
            p.pointee.report_case = FI__V1__TELEMETRY__REPORT_METRIC; p.pointee.metric = q
        case .event(let r):
            let q: UnsafeMutablePointer<Fi__V1__Event> = arena.message(fi__v1__event__init)
            q.pointee.severity = Fi__V1__Severity(rawValue: r.severity.rawValue)
            q.pointee.kind = arena.string(r.kind); q.pointee.text = arena.string(r.text)
            p.pointee.report_case = FI__V1__TELEMETRY__REPORT_EVENT; p.pointee.event = q
        }
        return p
    }
}
