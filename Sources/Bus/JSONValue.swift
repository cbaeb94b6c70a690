/// A JSON value with ordered object keys, so tap lines read header-first and stay byte-stable.
/// Rendering is total: non-finite numbers become the strings "NaN", "Infinity", "-Infinity"
/// (protobuf's JSON mapping does the same), so no message can produce invalid JSON.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    /// A Float shown with its shortest decimal (3e-4, not 0.00030000001).
    public static func float(_ f: Float) -> JSONValue {
        guard f.isFinite else { return .double(Double(f)) }
        return .double(Double("\(f)") ?? Double(f))
    }

    /// The value under `key` of an object (nil otherwise).
    public subscript(key: String) -> JSONValue? {
        guard case .object(let pairs) = self else { return nil }
        return pairs.first { $0.0 == key }?.1
    }

    /// Compact JSON text (one line).
    public var rendered: String {
        var out = ""
        write(to: &out)
        return out
    }

    private func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .uint(let u): out += String(u)
        case .double(let d): Self.writeNumber(d, to: &out)
        case .string(let s): Self.writeString(s, to: &out)
        case .array(let items):
            out += "["
            for (i, v) in items.enumerated() {
                if i > 0 { out += "," }
                v.write(to: &out)
            }
            out += "]"
        case .object(let pairs):
            out += "{"
            for (i, (k, v)) in pairs.enumerated() {
                if i > 0 { out += "," }
                Self.writeString(k, to: &out)
                out += ":"
                v.write(to: &out)
            }
            out += "}"
        }
    }

    private static func writeNumber(_ d: Double, to out: inout String) {
        if d.isNaN { out += "\"NaN\""; return }
        if d.isInfinite { out += d > 0 ? "\"Infinity\"" : "\"-Infinity\""; return }
        out += "\(d)"  // Swift's shortest round-trip form ("4.25", "1e-09") is valid JSON
    }

    private static func writeString(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }

    /// Short `key=value` text for human-readable tap lines: objects as `{k=v ...}`, strings unquoted
    /// unless empty or containing spaces.
    public var humanReadable: String {
        switch self {
        case .object(let pairs): return pairs.map { "\($0.0)=\($0.1.humanReadable)" }.joined(separator: " ")
        default: return inline
        }
    }

    private var inline: String {
        switch self {
        case .string(let s): return s.isEmpty || s.contains(where: { $0 == " " || $0 == "=" }) ? JSONValue.string(s).rendered : s
        case .object(let pairs): return "{" + pairs.map { "\($0.0)=\($0.1.inline)" }.joined(separator: " ") + "}"
        case .array(let items): return "[" + items.map(\.inline).joined(separator: ",") + "]"
        default: return rendered
        }
    }

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.int(let x), .int(let y)): return x == y
        case (.uint(let x), .uint(let y)): return x == y
        case (.double(let x), .double(let y)): return x == y || (x.isNaN && y.isNaN)
        case (.string(let x), .string(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }
}
