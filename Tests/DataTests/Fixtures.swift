import Data
import Foundation
import XCTest

/// A small synthetic corpus: `domains` domains of `docsPerDomain` documents, each document a
/// distinct ~300-byte text that names its domain and index.
func syntheticCorpus(domains: Int = 4, docsPerDomain: Int = 120) -> Corpus {
    let names = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
    let ds = (0..<domains).map { k in
        DomainDocuments(name: names[k], documents: (0..<docsPerDomain).map { i in
            let body = (0..<12).map { w in "\(names[k])-word-\(i)-\(w)" }.joined(separator: " ")
            return Document(domain: names[k], source: "doc\(i)", text: "Document \(i) of \(names[k]).\n\(body)")
        })
    }
    let extra = [Document(domain: "general-extra", source: "license", text: "A license text that only pretraining sees.")]
    return Corpus(version: "synthetic-v1", domains: ds, generalOnly: extra)
}

func temporaryDirectory(_ name: String = #function) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("fi-data-tests-\(name.filter { $0.isLetter })-\(ProcessInfo.processInfo.processIdentifier)")
    try? FileManager.default.removeItem(at: url)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Total-variation distance between two distributions over the same keys.
func totalVariation(_ p: [String: Double], _ q: [String: Double]) -> Double {
    Set(p.keys).union(q.keys).reduce(0) { $0 + abs((p[$1] ?? 0) - (q[$1] ?? 0)) } / 2
}
