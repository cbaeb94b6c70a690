import Foundation
import Messages

/// A service's optional telemetry (Bus.TelemetryPublisher to the proxy's XSUB). Events also go to stderr, so a run
/// without a proxy still logs them.
public final class TelemetryOut: @unchecked Sendable {  // safe: TelemetryPublisher locks; `quiet` is set before use
    let publisher: TelemetryPublisher?
    private(set) var sender: String
    public var quiet = false

    public init(endpoint: String?, sender: String, context: BusContext) throws {
        self.sender = sender
        publisher = try endpoint.flatMap { $0.isEmpty ? nil : try TelemetryPublisher(connect: $0, sender: sender, context: context) }
    }

    public func publish(_ t: Telemetry, kind: String) {
        _ = try? publisher?.publish(t)
    }

    public func event(_ severity: Severity, _ kind: String, _ text: String) {
        if !quiet || severity.rawValue >= Severity.warn.rawValue {
            FileHandle.standardError.write(Foundation.Data("[\(sender)] \(kind): \(text)\n".utf8))
        }
        publish(.event(Event(severity: severity, kind: kind, text: text)), kind: "event")
    }

    /// Call on the owner's loop thread (`sender` is not locked here).
    public func rename(_ sender: String) {
        self.sender = sender
        publisher?.rename(sender)
    }

    public func close() { publisher?.close() }
}
