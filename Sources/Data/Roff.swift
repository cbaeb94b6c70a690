/// Turns man-page roff (man and mdoc macros) into plain text: good enough for LM training
/// text, not a typesetter. Requests are dropped, macros that carry words keep them, and inline
/// escapes become the characters they stand for.
enum Roff {
    /// Requests and macros whose arguments are layout, not words.
    static let dropped: Set<String> = [
        "TH", "PP", "P", "LP", "PD", "RS", "RE", "nf", "fi", "sp", "br", "in", "ti", "ft", "ps", "ad",
        "na", "hy", "nh", "ne", "ds", "nr", "so", "ie", "el", "if", "tr", "ta", "ll", "ev", "EX", "EE",
        "UR", "UE", "MT", "ME", "TP", "HP", "bp", "rm", "als", "cc", "mso", "Dd", "Dt", "Os", "Bl", "El",
        "Bd", "Ed", "TS", "TE", "ce", "ul", "cu", "lf", "pl", "po", "vs", "ls", "fam", "ig", "de", "am",
    ]
    /// Alternating-font macros join their arguments without spaces (`.BR ed (1)` → `ed(1)`).
    static let alternating: Set<String> = ["BR", "RB", "IR", "RI", "BI", "IB"]

    static func plainText(_ source: String) -> String {
        var out: [String] = []
        var skipUntilDots = false
        var inTableFormat = false
        for rawLine in source.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = Substring(rawLine)
            if skipUntilDots {
                if line.hasPrefix("..") { skipUntilDots = false }
                continue
            }
            if inTableFormat {
                // tbl: option and format lines run until the one that ends with '.'.
                if line.trimmingSuffixSpaces.hasSuffix(".") { inTableFormat = false }
                continue
            }
            guard let first = line.first, first == "." || first == "'" else {
                out.append(inline(line).replacingTabs)
                continue
            }
            let body = line.dropFirst().drop(while: { $0 == " " || $0 == "\t" })
            if body.hasPrefix("\\\"") || body.isEmpty { continue }  // comment or empty request
            let name = String(body.prefix(while: { $0 != " " && $0 != "\t" }))
            let args = arguments(body.dropFirst(name.count))
            if name == "de" || name == "ig" || name == "am" { skipUntilDots = true; continue }
            if name == "TS" { inTableFormat = true; continue }
            if name == "SH" || name == "SS" || name == "Sh" || name == "Ss" {
                out.append("")
                out.append(inline(Substring(args.joined(separator: " "))))
                continue
            }
            if name == "IP" {
                if let tag = args.first { out.append(inline(Substring(tag))) }
                continue
            }
            if dropped.contains(name) || args.isEmpty { continue }
            let separator = alternating.contains(name) ? "" : " "
            out.append(inline(Substring(args.joined(separator: separator))))
        }
        // Collapse runs of blank lines.
        var text: [String] = []
        for l in out {
            let t = l.trimmingSuffixSpaces
            if t.isEmpty, text.last?.isEmpty ?? true { continue }
            text.append(String(t))
        }
        return text.joined(separator: "\n").trimmingSuffixSpaces.description
    }

    /// Splits macro arguments on blanks, honouring double quotes.
    static func arguments(_ s: Substring) -> [String] {
        var args: [String] = []
        var current = ""
        var quoted = false
        var started = false
        for c in s {
            if c == "\"" {
                if quoted { args.append(current); current = ""; started = false; quoted = false } else { quoted = true; started = true }
            } else if (c == " " || c == "\t") && !quoted {
                if started { args.append(current); current = ""; started = false }
            } else {
                current.append(c)
                started = true
            }
        }
        if started { args.append(current) }
        return args
    }

    static let namedCharacters: [String: String] = [
        "aq": "'", "dq": "\"", "em": "—", "en": "–", "hy": "-", "bu": "•", "co": "©", "rg": "®", "tm": "™",
        "lq": "\u{201C}", "rq": "\u{201D}", "oq": "\u{2018}", "cq": "\u{2019}", "mi": "-", "pl": "+", "mu": "×",
        "di": "÷", "<=": "≤", ">=": "≥", "!=": "≠", "->": "→", "<-": "←", "de": "°", "ti": "~", "ha": "^",
        "rs": "\\", "ba": "|", "or": "|", "sl": "/", "ga": "`", "at": "@", "sh": "#", "Do": "$", "dg": "†",
        "R": "®", "Tm": "™", "sc": "§", "ua": "↑", "da": "↓", "lh": "☜", "rh": "☞", "Fo": "«", "Fc": "»",
    ]

    /// Strings that man pages commonly define (`\*(Aq` and friends).
    static let predefinedStrings: [String: String] = [
        "Aq": "'", "aq": "'", "lq": "\u{201C}", "rq": "\u{201D}", "R": "®", "Tm": "™", "dg": "†", "Lq": "\u{201C}",
        "Rq": "\u{201D}", "Ba": "|", "Le": "≤", "Ge": "≥", "Pi": "π",
    ]

    /// Resolves inline escapes: fonts and sizes vanish, characters become characters.
    static func inline(_ s: Substring) -> String {
        var out = ""
        var i = s.startIndex
        func bracketedOrShort(_ from: String.Index) -> (String, String.Index) {
            guard from < s.endIndex else { return ("", from) }
            if s[from] == "(" {
                let start = s.index(after: from)
                let end = s.index(start, offsetBy: 2, limitedBy: s.endIndex) ?? s.endIndex
                return (String(s[start..<end]), end)
            }
            if s[from] == "[" {
                let start = s.index(after: from)
                let close = s[start...].firstIndex(of: "]") ?? s.endIndex
                return (String(s[start..<close]), close < s.endIndex ? s.index(after: close) : close)
            }
            return (String(s[from]), s.index(after: from))
        }
        while i < s.endIndex {
            let c = s[i]
            guard c == "\\" else { out.append(c); i = s.index(after: i); continue }
            let n = s.index(after: i)
            guard n < s.endIndex else { break }
            let e = s[n]
            let after = s.index(after: n)
            switch e {
            case "\"": return out  // comment to end of line
            case "*":
                let (name, next) = bracketedOrShort(after)
                out += predefinedStrings[name] ?? ""
                i = next
            case "f", "F", "n", "g", "k", "m", "V", "Y":
                i = bracketedOrShort(after).1  // font, string, register: no text
            case "s":
                var j = after
                if j < s.endIndex, s[j] == "+" || s[j] == "-" { j = s.index(after: j) }
                if j < s.endIndex, s[j] == "(" || s[j] == "[" { j = bracketedOrShort(j).1 }
                while j < s.endIndex, s[j].isNumber { j = s.index(after: j) }
                i = j
            case "(", "[":
                let (name, next) = bracketedOrShort(n)
                out += namedCharacters[name] ?? (name.hasPrefix("u") && name.count > 1 ? unicode(name) : "")
                i = next
            case "e", "\\": out.append("\\"); i = after
            case "-": out.append("-"); i = after
            case "~", " ", "0": out.append(" "); i = after
            case "&", "|", "^", "c", "%", ":", "/", ",", "d", "u", "a", "t", "p", "r", "z":
                i = after
            case "h", "v", "w", "l", "L", "o", "b", "x", "D", "N", "A", "B", "C", "R", "S", "X", "Z":
                // Escapes with a delimited argument: skip the argument.
                guard after < s.endIndex else { i = after; break }
                let delim = s[after]
                let start = s.index(after: after)
                let close = s[start...].firstIndex(of: delim) ?? s.endIndex
                i = close < s.endIndex ? s.index(after: close) : close
            default:
                out.append(e)
                i = after
            }
        }
        return out
    }

    static func unicode(_ name: String) -> String {
        guard let v = UInt32(name.dropFirst(), radix: 16), let scalar = Unicode.Scalar(v) else { return "" }
        return String(Character(scalar))
    }
}

extension StringProtocol {
    var trimmingSuffixSpaces: Substring {
        var s = Substring(self)
        while let last = s.last, last == " " || last == "\t" { s = s.dropLast() }
        return s
    }

    var replacingTabs: String {
        contains("\t") ? String(map { $0 == "\t" ? " " : $0 }) : String(self)
    }
}
