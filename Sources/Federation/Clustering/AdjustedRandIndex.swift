/// Adjusted Rand index (Hubert & Arabie 1985) between two labellings of the same items: 1 for the same partition
/// (whatever the label names), about 0 for chance agreement. Returns 1 when both put everything in one cluster or n < 2.
public func adjustedRandIndex(_ a: [Int], _ b: [Int]) -> Double {
    let n = min(a.count, b.count)
    guard n >= 2 else { return 1 }
    var table: [Int: [Int: Int]] = [:]
    var rows: [Int: Int] = [:], cols: [Int: Int] = [:]
    for i in 0..<n {
        table[a[i], default: [:]][b[i], default: 0] += 1
        rows[a[i], default: 0] += 1
        cols[b[i], default: 0] += 1
    }
    func pairs(_ m: Int) -> Double { Double(m) * Double(m - 1) / 2 }
    var index = 0.0
    for row in table.values { for c in row.values { index += pairs(c) } }
    let sumRows = rows.values.reduce(0.0) { $0 + pairs($1) }
    let sumCols = cols.values.reduce(0.0) { $0 + pairs($1) }
    let expected = sumRows * sumCols / pairs(n)
    let maxIndex = (sumRows + sumCols) / 2
    guard maxIndex != expected else { return 1 }
    return (index - expected) / (maxIndex - expected)
}
