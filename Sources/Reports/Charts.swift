import Foundation

// Hand-written SVG charts. Every mark carries a class and `data-series` so tests (and people
// reading the source) can find them: polyline.series, circle.point, rect.bar, rect.cell.

public struct Series: Sendable, Equatable {
    public var name: String
    public var points: [(x: Double, y: Double)]
    public var color: String

    public init(name: String, points: [(x: Double, y: Double)], color: String) {
        self.name = name; self.points = points; self.color = color
    }

    public static func == (a: Series, b: Series) -> Bool {
        a.name == b.name && a.color == b.color && a.points.count == b.points.count
            && zip(a.points, b.points).allSatisfy { $0.x == $1.x && $0.y == $1.y }
    }
}

/// Plot area geometry shared by the charts.
struct Frame {
    var width = 660.0, height = 300.0
    var left = 62.0, right = 160.0, top = 34.0, bottom = 46.0
    var plotW: Double { width - left - right }
    var plotH: Double { height - top - bottom }
    func x(_ f: Double) -> Double { left + f * plotW }
    func y(_ f: Double) -> Double { top + (1 - f) * plotH }
}

/// A line chart (polylines with point markers) or a scatter plot (markers only).
/// Non-finite points are dropped; lines longer than `markerLimit` points get no markers.
public struct LineChart: Sendable {
    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    public var drawLines: Bool
    /// Draws y = x (for "chosen against oracle" scatter plots).
    public var diagonal: Bool
    public var markerLimit: Int

    public init(title: String, xLabel: String, yLabel: String, series: [Series],
                drawLines: Bool = true, diagonal: Bool = false, markerLimit: Int = 100) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel
        self.series = series.map { s in
            var s = s
            s.points = s.points.filter { $0.x.isFinite && $0.y.isFinite }
            return s
        }
        self.drawLines = drawLines; self.diagonal = diagonal; self.markerLimit = markerLimit
    }

    public func svg() -> String {
        let f = Frame()
        let xs = series.flatMap { $0.points.map(\.x) }, ys = series.flatMap { $0.points.map(\.y) }
        var xa = Axis.nice(xs.min() ?? 0, xs.max() ?? 1)
        var ya = Axis.nice(ys.min() ?? 0, ys.max() ?? 1)
        if diagonal {
            let lo = min(xa.lo, ya.lo), hi = max(xa.hi, ya.hi)
            xa = Axis.nice(lo, hi); ya = xa
        }
        var s = open(f, kind: "line-chart")
        s += axes(f, xa, ya, xLabel: xLabel, yLabel: yLabel)
        if diagonal {
            s += "<line class=\"diagonal\" x1=\"\(fmt(f.x(0)))\" y1=\"\(fmt(f.y(0)))\" x2=\"\(fmt(f.x(1)))\" y2=\"\(fmt(f.y(1)))\"/>\n"
        }
        for sr in series {
            let name = htmlEscape(sr.name)
            let pts = sr.points.map { (f.x(xa.fraction($0.x)), f.y(ya.fraction($0.y)), $0) }
            if drawLines, pts.count > 1 {
                let coords = pts.map { "\(fmt($0.0)),\(fmt($0.1))" }.joined(separator: " ")
                s += "<polyline class=\"series\" data-series=\"\(name)\" stroke=\"\(sr.color)\" points=\"\(coords)\"/>\n"
            }
            for (px, py, p) in pts where !drawLines || pts.count <= markerLimit {
                s += "<circle class=\"point\" data-series=\"\(name)\" cx=\"\(fmt(px))\" cy=\"\(fmt(py))\" r=\"\(drawLines ? 2.5 : 4)\" fill=\"\(sr.color)\">"
                s += "<title>\(name): \(formatTick(p.x)), \(String(format: "%.4g", p.y))</title></circle>\n"
            }
        }
        s += legend(f, series.map { ($0.name, $0.color) })
        return s + "</svg>\n"
    }

    func open(_ f: Frame, kind: String) -> String {
        "<svg class=\"chart \(kind)\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(Int(f.width)) \(Int(f.height))\" width=\"\(Int(f.width))\" height=\"\(Int(f.height))\" role=\"img\" aria-label=\"\(htmlEscape(title))\">\n"
            + "<text class=\"title\" x=\"\(fmt(f.left))\" y=\"20\">\(htmlEscape(title))</text>\n"
    }
}

/// Grouped bars: one group per category, one bar per series.
public struct BarChart: Sendable {
    public var title: String
    public var yLabel: String
    public var categories: [String]
    /// Series name, colour, one value per category (nil: no bar).
    public var series: [(name: String, color: String, values: [Double?])]

    public init(title: String, yLabel: String, categories: [String],
                series: [(name: String, color: String, values: [Double?])]) {
        self.title = title; self.yLabel = yLabel; self.categories = categories; self.series = series
    }

    public func svg() -> String {
        let f = Frame()
        let values = series.flatMap { $0.values.compactMap { $0 } }
        let ya = Axis.nice(min(0, values.min() ?? 0), max(values.max() ?? 1, 0))
        let xa = Axis(lo: 0, hi: 1, ticks: [])
        var s = LineChart(title: title, xLabel: "", yLabel: yLabel, series: []).open(f, kind: "bar-chart")
        s += axes(f, xa, ya, xLabel: "", yLabel: yLabel)
        let groupW = f.plotW / Double(max(categories.count, 1))
        let barW = groupW * 0.8 / Double(max(series.count, 1))
        // Long names that would overlap become their 1-based number (the full name in a tooltip).
        let numbered = categories.contains { Double($0.count) * 6.5 > groupW }
        for (ci, cat) in categories.enumerated() {
            let gx = f.left + Double(ci) * groupW
            let label = numbered ? "\(ci + 1)<title>\(htmlEscape(cat))</title>" : htmlEscape(cat)
            s += "<text class=\"category\" x=\"\(fmt(gx + groupW / 2))\" y=\"\(fmt(f.top + f.plotH + 16))\" text-anchor=\"middle\">\(label)</text>\n"
            for (si, sr) in series.enumerated() {
                guard ci < sr.values.count, let v = sr.values[ci] else { continue }
                let y0 = f.y(ya.fraction(0)), y1 = f.y(ya.fraction(v))
                let x = gx + groupW * 0.1 + Double(si) * barW
                s += "<rect class=\"bar\" data-series=\"\(htmlEscape(sr.name))\" data-category=\"\(htmlEscape(cat))\" x=\"\(fmt(x))\" y=\"\(fmt(min(y0, y1)))\" width=\"\(fmt(max(barW - 1, 1)))\" height=\"\(fmt(abs(y0 - y1)))\" fill=\"\(sr.color)\">"
                s += "<title>\(htmlEscape(sr.name)), \(htmlEscape(cat)): \(String(format: "%.4g", v))</title></rect>\n"
            }
        }
        s += legend(f, series.map { ($0.name, $0.color) })
        return s + "</svg>\n"
    }
}

/// Cluster assignments over time: one row per device, one column per round, coloured by cluster.
public struct AssignmentGrid: Sendable {
    public var title: String
    public var devices: [String]
    public var rounds: [Int]
    /// cluster[device][round index], nil when the device was not assigned that round.
    public var cluster: [[Int?]]

    public init(title: String, devices: [String], rounds: [Int], cluster: [[Int?]]) {
        self.title = title; self.devices = devices; self.rounds = rounds; self.cluster = cluster
    }

    public func svg() -> String {
        let cell = max(6.0, min(18.0, 480.0 / Double(max(rounds.count, 1))))
        let rowH = max(6.0, min(16.0, 400.0 / Double(max(devices.count, 1))))
        let left = 90.0, top = 34.0
        let clusters = Array(Set(cluster.flatMap { $0.compactMap { $0 } })).sorted()
        let gridW = cell * Double(rounds.count), gridH = rowH * Double(devices.count)
        let width = left + gridW + 130, height = top + gridH + 40
        var s = "<svg class=\"chart assignment-grid\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" width=\"\(Int(width))\" height=\"\(Int(height))\" role=\"img\" aria-label=\"\(htmlEscape(title))\">\n"
        s += "<text class=\"title\" x=\"\(fmt(left))\" y=\"20\">\(htmlEscape(title))</text>\n"
        let labelEvery = max(1, Int((10.0 / rowH).rounded(.up)))
        for (di, dev) in devices.enumerated() {
            let y = top + Double(di) * rowH
            if di % labelEvery == 0 {
                s += "<text class=\"tick\" x=\"\(fmt(left - 4))\" y=\"\(fmt(y + rowH * 0.75))\" text-anchor=\"end\">\(htmlEscape(dev))</text>\n"
            }
            for (ri, round) in rounds.enumerated() {
                guard di < cluster.count, ri < cluster[di].count, let c = cluster[di][ri] else { continue }
                let color = paletteColor(clusters.firstIndex(of: c) ?? c)
                s += "<rect class=\"cell\" data-device=\"\(htmlEscape(dev))\" data-round=\"\(round)\" data-cluster=\"\(c)\" x=\"\(fmt(left + Double(ri) * cell))\" y=\"\(fmt(y))\" width=\"\(fmt(cell - 0.5))\" height=\"\(fmt(rowH - 0.5))\" fill=\"\(color)\"><title>\(htmlEscape(dev)), round \(round): cluster \(c)</title></rect>\n"
            }
        }
        let tickEvery = max(1, rounds.count / 10)
        for (ri, round) in rounds.enumerated() where ri % tickEvery == 0 {
            s += "<text class=\"tick\" x=\"\(fmt(left + (Double(ri) + 0.5) * cell))\" y=\"\(fmt(top + gridH + 14))\" text-anchor=\"middle\">\(round)</text>\n"
        }
        s += "<text class=\"label\" x=\"\(fmt(left + gridW / 2))\" y=\"\(fmt(top + gridH + 32))\" text-anchor=\"middle\">round</text>\n"
        var f = Frame(); f.width = width; f.right = 120; f.top = top
        s += legend(f, clusters.enumerated().map { ("cluster \($0.element)", paletteColor($0.offset)) })
        return s + "</svg>\n"
    }
}

/// Axes with ticks, grid lines and labels. An axis without ticks is drawn as a bare line.
func axes(_ f: Frame, _ xa: Axis, _ ya: Axis, xLabel: String, yLabel: String) -> String {
    var s = "<g class=\"axes\">\n"
    let x0 = f.left, x1 = f.left + f.plotW, y0 = f.top + f.plotH, y1 = f.top
    for t in ya.ticks {
        let y = f.y(ya.fraction(t))
        s += "<line class=\"grid\" x1=\"\(fmt(x0))\" y1=\"\(fmt(y))\" x2=\"\(fmt(x1))\" y2=\"\(fmt(y))\"/>"
        s += "<text class=\"tick\" x=\"\(fmt(x0 - 5))\" y=\"\(fmt(y + 4))\" text-anchor=\"end\">\(formatTick(t))</text>\n"
    }
    for t in xa.ticks {
        let x = f.x(xa.fraction(t))
        s += "<line class=\"tickmark\" x1=\"\(fmt(x))\" y1=\"\(fmt(y0))\" x2=\"\(fmt(x))\" y2=\"\(fmt(y0 + 5))\"/>"
        s += "<text class=\"tick\" x=\"\(fmt(x))\" y=\"\(fmt(y0 + 17))\" text-anchor=\"middle\">\(formatTick(t))</text>\n"
    }
    s += "<line class=\"axis\" x1=\"\(fmt(x0))\" y1=\"\(fmt(y0))\" x2=\"\(fmt(x1))\" y2=\"\(fmt(y0))\"/>"
    s += "<line class=\"axis\" x1=\"\(fmt(x0))\" y1=\"\(fmt(y0))\" x2=\"\(fmt(x0))\" y2=\"\(fmt(y1))\"/>\n"
    if !xLabel.isEmpty {
        s += "<text class=\"label\" x=\"\(fmt(x0 + f.plotW / 2))\" y=\"\(fmt(f.height - 8))\" text-anchor=\"middle\">\(htmlEscape(xLabel))</text>\n"
    }
    if !yLabel.isEmpty {
        let cy = f.top + f.plotH / 2
        s += "<text class=\"label\" x=\"14\" y=\"\(fmt(cy))\" text-anchor=\"middle\" transform=\"rotate(-90 14 \(fmt(cy)))\">\(htmlEscape(yLabel))</text>\n"
    }
    return s + "</g>\n"
}

/// A legend to the right of the plot area.
func legend(_ f: Frame, _ items: [(String, String)]) -> String {
    var s = "<g class=\"legend\">\n"
    let x = f.width - f.right + 14
    for (i, (name, color)) in items.enumerated() {
        let y = f.top + 6 + Double(i) * 18
        s += "<g class=\"legend-item\"><rect x=\"\(fmt(x))\" y=\"\(fmt(y - 9))\" width=\"12\" height=\"12\" fill=\"\(color)\"/>"
        s += "<text x=\"\(fmt(x + 18))\" y=\"\(fmt(y + 1))\">\(htmlEscape(name))</text></g>\n"
    }
    return s + "</g>\n"
}
