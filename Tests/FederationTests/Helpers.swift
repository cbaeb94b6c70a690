import Federation
import XCTest

func assertClose(_ a: [Float], _ b: [Float], accuracy: Float, _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "length \(message)", file: file, line: line)
    for i in 0..<min(a.count, b.count) {
        XCTAssertEqual(a[i], b[i], accuracy: accuracy, "index \(i) \(message)", file: file, line: line)
    }
}

func randomVector(_ n: Int, seed: UInt64, scale: Double = 1) -> [Float] {
    var rng = SeededRandom(seed: seed)
    return (0..<n).map { _ in Float(rng.nextGaussian() * scale) }
}

func flatGlobal(_ values: [Float], version: UInt64 = 0) -> GlobalModel {
    GlobalModel(layout: .flat(values.count), parameters: values, version: version)
}
