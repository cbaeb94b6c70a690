import Bus
import Foundation
import Messages

/// A service's optional telemetry PUB (connected to the proxy's XSUB): topic "telemetry/<kind>/<sender>", own seq.
/// Owned by the service's loop thread. Events are also written to stderr so a run without a proxy still logs them.
public final class TelemetryOut: @unchecked Sendable {  // safe: used only on its service's loop thread
    let socket: Socket?
    let sender: String
    var seq: UInt64 = 0
    public var quiet = false

    public init(endpoint: String?, sender: String, context: BusContext) throws {
        self.sender = sender
        if let endpoint, !endpoint.isEmpty {
            let s = try Socket(.pub, context: context)
            try s.connect(endpoint)
            socket = s
        } else {
            socket = nil
        }
    }

    public func publish(_ t: Telemetry, kind: String) {
        guard let socket else { return }
        seq += 1
        try? socket.send(Envelope(sender: sender, seq: seq, body: .telemetry(t)), prefix: [Array("telemetry/\(kind)/\(sender)".utf8)], dontWait: true)
    }

    public func event(_ severity: Severity, _ kind: String, _ text: String) {
        if !quiet || severity.rawValue >= Severity.warn.rawValue {
            FileHandle.standardError.write(Foundation.Data("[\(sender)] \(kind): \(text)\n".utf8))
        }
        publish(.event(Event(severity: severity, kind: kind, text: text)), kind: "event")
    }

    public func close() { socket?.close() }
}

/// Messages on the bus are bounded: adapters up to 64 MB.
public let serviceDecodeLimits = DecodeLimits(maxBytes: 64 << 20, maxFrames: 4096)
