import Foundation

/// Axis ticks at 1, 2 or 5 × 10^k, covering [lo, hi].
public struct Axis: Sendable, Equatable {
    public var lo: Double
    public var hi: Double
    public var ticks: [Double]

    /// About `target` ticks from round numbers; the axis widens to the outer ticks.
    public static func nice(_ lo: Double, _ hi: Double, target: Int = 5) -> Axis {
        var lo = lo.isFinite ? lo : 0, hi = hi.isFinite ? hi : 1
        if lo > hi { swap(&lo, &hi) }
        if hi - lo < 1e-12 {
            let pad = abs(lo) > 1e-12 ? abs(lo) * 0.1 : 1
            lo -= pad; hi += pad
        }
        let raw = (hi - lo) / Double(max(target, 1))
        let mag = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
        let first = floor(lo / step + 1e-9) * step
        let last = ceil(hi / step - 1e-9) * step
        var ticks: [Double] = []
        var t = first
        while t <= last + step * 1e-6, ticks.count < 100 {
            ticks.append(abs(t) < step * 1e-9 ? 0 : t)
            t += step
        }
        return Axis(lo: first, hi: last, ticks: ticks)
    }

    /// Maps a value to [0, 1] along the axis.
    public func fraction(_ v: Double) -> Double { hi > lo ? (v - lo) / (hi - lo) : 0.5 }
}

/// A tick label without trailing noise: 0.5, 2, 1.5k, 3M.
func formatTick(_ v: Double) -> String {
    let a = abs(v)
    if a >= 1e9 { return trim(v / 1e9) + "G" }
    if a >= 1e6 { return trim(v / 1e6) + "M" }
    if a >= 1e4 { return trim(v / 1e3) + "k" }
    return trim(v)
}

private func trim(_ v: Double) -> String {
    if v == v.rounded(), abs(v) < 1e15 { return String(Int(v)) }
    var s = String(format: "%.3f", v)
    while s.hasSuffix("0") { s.removeLast() }
    if s.hasSuffix(".") { s.removeLast() }
    return s
}

/// A number with two decimals for SVG coordinates (keeps files small and diffs stable).
func fmt(_ v: Double) -> String { String(format: "%.2f", v) }

/// Escapes text for HTML/SVG content and attribute values.
public func htmlEscape(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.count)
    for ch in s {
        switch ch {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.append(ch)
        }
    }
    return out
}

/// Colour-blind friendly categorical palette (Okabe–Ito plus greys), cycled.
public func paletteColor(_ i: Int) -> String {
    let p = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
             "#999999", "#882255", "#44AA99", "#117733"]
    return p[((i % p.count) + p.count) % p.count]
}
