import Foundation

// Every executable flag `--some-flag` may also come from the environment as `FI_SOME_FLAG`
// (compose configures services this way). A flag on the command line wins over the variable.
// Values are checked before the service starts, so a typo in compose fails fast and names
// the variable instead of surfacing later as a socket error.

/// What kind of value a flag takes. Declared in `knownFlags` as "--name:kind".
public enum FlagKind: String, Sendable, CaseIterable {
    case string      // any text (default)
    case endpoint    // inproc://name, ipc://path, tcp://host:port
    case int         // integer
    case number      // decimal number
    case bool        // a switch without a value; env values 1/0, true/false, yes/no, on/off
}

public enum EnvOptionsError: Error, Equatable, CustomStringConvertible {
    case malformedEndpoint(source: String, value: String, reason: String)
    case notAnInteger(source: String, value: String)
    case notANumber(source: String, value: String)
    case notABoolean(source: String, value: String)
    case missingValue(flag: String)
    case badFlagSpec(spec: String)

    public var description: String {
        switch self {
        case .malformedEndpoint(let s, let v, let r):
            return "\(s)=\"\(v)\" is not a valid endpoint: \(r); use inproc://name, ipc://path or tcp://host:port"
        case .notAnInteger(let s, let v): return "\(s)=\"\(v)\" is not an integer: give a whole number such as 1000"
        case .notANumber(let s, let v): return "\(s)=\"\(v)\" is not a number: give a decimal number such as 0.5"
        case .notABoolean(let s, let v): return "\(s)=\"\(v)\" is not a switch value: use 1/0, true/false, yes/no or on/off"
        case .missingValue(let f): return "\(f) needs a value: give it as \(f) VALUE or \(f)=VALUE"
        case .badFlagSpec(let s): return "bad flag declaration \"\(s)\": write --name or --name:kind with kind one of \(FlagKind.allCases.map(\.rawValue).joined(separator: ", "))"
        }
    }
}

public enum EnvOptions {
    /// The variable for a flag: `--heartbeat-ms` -> `FI_HEARTBEAT_MS`.
    public static func variable(for flag: String) -> String {
        var name = flag
        while name.hasPrefix("-") { name.removeFirst() }
        return "FI_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
    }

    /// Returns `arguments` plus one flag per set `FI_*` variable of a known flag that the
    /// arguments do not already give. Env-derived flags go at the end (before a `--`
    /// terminator), so subcommands and positional arguments keep their places.
    ///
    /// `knownFlags` declares flags as "--name" (text) or "--name:kind" (see `FlagKind`).
    /// Endpoint, integer, number and bool values are checked, from the environment and
    /// from the arguments alike; the error names the variable or flag. Unknown `FI_*`
    /// variables are ignored: compose may share one environment between services.
    public static func merge(arguments: [String], environment: [String: String],
                             knownFlags: [String]) throws -> [String] {
        let specs = try knownFlags.map(parseSpec)
        let kinds = Dictionary(specs, uniquingKeysWith: { _, b in b })

        // Flags already on the command line, with their values checked.
        var given = Set<String>()
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            if arg == "--" { break }
            let (flag, inline) = splitInline(arg)
            if let kind = kinds[flag] {
                given.insert(flag)
                if kind != .bool {
                    let value: String
                    if let inline { value = inline } else {
                        guard i + 1 < arguments.count else { throw EnvOptionsError.missingValue(flag: flag) }
                        value = arguments[i + 1]
                        i += 1
                    }
                    try check(value, kind: kind, source: flag)
                }
            }
            i += 1
        }

        var extra: [String] = []
        for (flag, kind) in specs where !given.contains(flag) {
            let name = variable(for: flag)
            guard let raw = environment[name] else { continue }
            let value = raw.trimmingCharacters(in: .whitespaces)
            if kind == .bool {
                if try parseBool(value, source: name) { extra.append(flag) }
                continue
            }
            if value.isEmpty { continue }  // `FI_X=` in compose means "not set"
            try check(value, kind: kind, source: name)
            extra += [flag, value]
        }
        var out = arguments
        let insertAt = arguments.firstIndex(of: "--") ?? arguments.count
        out.insert(contentsOf: extra, at: insertAt)
        return out
    }

    /// `merge` applied to this process: its arguments (without the program name) and its
    /// environment. An executable's main: `Command.main(try EnvOptions.processArguments(knownFlags: …))`.
    public static func processArguments(knownFlags: [String]) throws -> [String] {
        try merge(arguments: Array(CommandLine.arguments.dropFirst()),
                  environment: ProcessInfo.processInfo.environment, knownFlags: knownFlags)
    }

    /// Checks one value; `source` (a variable or flag name) goes into the error.
    public static func check(_ value: String, kind: FlagKind, source: String) throws {
        switch kind {
        case .string: return
        case .bool: _ = try parseBool(value, source: source)
        case .int:
            guard Int(value) != nil else { throw EnvOptionsError.notAnInteger(source: source, value: value) }
        case .number:
            guard let d = Double(value), d.isFinite else { throw EnvOptionsError.notANumber(source: source, value: value) }
        case .endpoint:
            if let reason = endpointProblem(value) {
                throw EnvOptionsError.malformedEndpoint(source: source, value: value, reason: reason)
            }
        }
    }

    /// nil when `value` is a ZeroMQ endpoint this project accepts, else why not.
    public static func endpointProblem(_ value: String) -> String? {
        guard let sep = value.range(of: "://") else { return "missing the transport (inproc://, ipc://, tcp://)" }
        let transport = String(value[..<sep.lowerBound]), rest = String(value[sep.upperBound...])
        switch transport {
        case "inproc", "ipc":
            return rest.isEmpty ? "\(transport):// needs a name after it" : nil
        case "tcp":
            // Host part: a name, an address, `*`, or [ipv6]; the port is after the last colon.
            guard let colon = rest.lastIndex(of: ":") else { return "tcp:// needs host:port" }
            let host = String(rest[..<colon]), port = String(rest[rest.index(after: colon)...])
            if host.isEmpty { return "the host is empty" }
            if host.hasPrefix("[") != host.hasSuffix("]") { return "unbalanced brackets in the host" }
            if !host.hasPrefix("["), host.contains(":") { return "write an IPv6 host in brackets, e.g. tcp://[::1]:5550" }
            if host.contains(where: { $0 == " " || $0 == "/" }) { return "the host contains a space or slash" }
            if port == "*" { return nil }  // bind to an ephemeral port
            guard let p = Int(port), port.allSatisfy(\.isNumber) else { return "the port \"\(port)\" is not a number" }
            guard (1...65535).contains(p) else { return "the port \(p) is outside 1...65535" }
            return nil
        default:
            return "unknown transport \"\(transport)\""
        }
    }

    static func parseSpec(_ spec: String) throws -> (String, FlagKind) {
        let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
        guard let flag = parts.first, flag.hasPrefix("--"), flag.count > 2 else {
            throw EnvOptionsError.badFlagSpec(spec: spec)
        }
        guard parts.count == 2 else { return (flag, .string) }
        guard let kind = FlagKind(rawValue: parts[1]) else { throw EnvOptionsError.badFlagSpec(spec: spec) }
        return (flag, kind)
    }

    static func splitInline(_ arg: String) -> (String, String?) {
        guard arg.hasPrefix("--"), let eq = arg.firstIndex(of: "=") else { return (arg, nil) }
        return (String(arg[..<eq]), String(arg[arg.index(after: eq)...]))
    }

    static func parseBool(_ value: String, source: String) throws -> Bool {
        switch value.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off", "": return false
        default: throw EnvOptionsError.notABoolean(source: source, value: value)
        }
    }
}
