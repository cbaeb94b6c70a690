/// GPT-2's pre-tokenisation, written out by hand instead of with a regex engine. It splits text
/// the way this pattern does:
///
///     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
///
/// so a word carries its leading space (" world"), and of a run of whitespace before a word all
/// but the last space stand alone.
public enum GPT2PreTokenizer {
    enum Kind { case letter, number, space, other }

    static func kind(_ s: Unicode.Scalar) -> Kind {
        let p = s.properties
        if p.isWhitespace { return .space }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    static let contractions: [[Unicode.Scalar]] = ["re", "ve", "ll", "s", "t", "m", "d"].map { Array($0.unicodeScalars) }

    /// The pieces of `text`, in order; joined they give `text` back.
    public static func split(_ text: String) -> [String] {
        let u = Array(text.unicodeScalars)
        let kinds = u.map(kind)
        var pieces: [String] = []
        var i = 0
        func take(_ end: Int) {
            var s = String.UnicodeScalarView()
            s.append(contentsOf: u[i..<end])
            pieces.append(String(s))
            i = end
        }
        func run(from start: Int, _ k: Kind) -> Int {
            var j = start
            while j < u.count, kinds[j] == k { j += 1 }
            return j
        }
        while i < u.count {
            // 's 't 're 've 'm 'll 'd (lowercase only, as in GPT-2)
            if u[i] == "'", let c = contractions.first(where: { c in
                i + c.count < u.count && zip(c, u[(i + 1)...]).allSatisfy { $0 == $1 }
            }) {
                take(i + 1 + c.count)
                continue
            }
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: one optional literal space, then a run.
            let start = (u[i] == " " && i + 1 < u.count && kinds[i + 1] != .space) ? i + 1 : i
            if kinds[start] != .space {
                take(run(from: start, kinds[start]))
                continue
            }
            // Whitespace: `\s+(?!\S)` leaves the last one for a following non-space; else `\s+`.
            let end = run(from: i, .space)
            if end < u.count && end - i > 1 {
                take(end - 1)
            } else {
                take(end)
            }
        }
        return pieces
    }
}
