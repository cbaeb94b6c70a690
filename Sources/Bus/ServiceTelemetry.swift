import Foundation
import Logging
import Messages

/// A service's log and optional telemetry (Bus.TelemetryPublisher to the proxy's XSUB). Events go through swift-log
/// (`log`: node id and round as metadata, repeated kinds rate-limited) and, at the same bounded rate, to telemetry.
public final class TelemetryOut: @unchecked Sendable {  // safe: TelemetryPublisher locks; `log` and `quiet` are set on the owner's thread
    let publisher: TelemetryPublisher?
    private(set) var sender: String
    public var log: Logger
    let sink: LogSink
    public var quiet = false { didSet { log.logLevel = quiet ? .warning : .info } }

    public init(endpoint: String?, sender: String, context: BusContext, sink: LogSink = LogSink()) throws {
        self.sender = sender
        self.sink = sink
        log = .service(sender, sink: sink)
        publisher = try endpoint.flatMap { $0.isEmpty ? nil : try TelemetryPublisher(connect: $0, sender: sender, context: context) }
    }

    /// The round the service is in, on every line it logs.
    public func setRound(_ round: Int) { log[metadataKey: "round"] = "\(round)" }

    public func publish(_ t: Telemetry, kind: String) {
        _ = try? publisher?.publish(t)
    }

    public func event(_ severity: Severity, _ kind: String, _ text: String) {
        let level: Logger.Level = severity == .error ? .error : severity == .warn ? .warning : severity == .debug ? .debug : .info
        log.log(level: level, "\(text)", metadata: ["kind": "\(kind)"])
        // Telemetry at the same bounded rate as the log (a flood of bad frames must not flood the bus either).
        if sink.admit("telemetry/\(severity)/\(kind)") != nil {
            publish(.event(Event(severity: severity, kind: kind, text: text)), kind: "event")
        }
    }

    /// Call on the owner's loop thread (`sender` is not locked here).
    public func rename(_ sender: String) {
        self.sender = sender
        log[metadataKey: "node"] = "\(sender)"
        publisher?.rename(sender)
    }

    public func close() { publisher?.close() }
}
