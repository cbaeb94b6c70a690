import Foundation

/// Why a run directory could not be read. Each case names the file (and line) at fault.
public enum RunDirectoryError: Error, Equatable, CustomStringConvertible {
    case notADirectory(path: String)
    case noRuns(path: String)
    case unreadable(file: String, reason: String)
    case malformedLine(file: String, line: Int, reason: String)
    case malformedSummary(file: String, reason: String)
    case malformedTable(file: String, reason: String)

    public var description: String {
        switch self {
        case .notADirectory(let p):
            return "\(p) is not a directory: pass the run directory that holds metrics.jsonl"
        case .noRuns(let p):
            return "\(p) holds no \(RunFiles.metrics) (neither at the top nor in a sub-directory) and no \(RunFiles.router): is it a run directory?"
        case .unreadable(let f, let r):
            return "cannot read \(f): \(r)"
        case .malformedLine(let f, let l, let r):
            return "\(f):\(l): malformed JSON line: \(r); fix or delete that line"
        case .malformedSummary(let f, let r):
            return "\(f): malformed summary: \(r); fix it or delete it (the report works without it)"
        case .malformedTable(let f, let r):
            return "\(f): malformed comparison table: \(r); write it again with ParadigmComparison, or delete it"
        }
    }
}

/// The records of one paradigm's run.
public struct Run: Sendable, Equatable {
    public var paradigm: String
    public var summary: RunSummary?
    public var records: [MetricRecord]
    /// A simulated run's tasks (`arrivals.jsonl`), empty otherwise.
    public var tasks: [TaskRecord]

    public init(paradigm: String, summary: RunSummary? = nil, records: [MetricRecord], tasks: [TaskRecord] = []) {
        self.paradigm = paradigm; self.summary = summary; self.records = records; self.tasks = tasks
    }
}

/// Everything found in an experiment directory.
public struct RunDirectory: Sendable, Equatable {
    public var url: URL
    /// One run per paradigm, sorted by paradigm name.
    public var runs: [Run]
    public var router: [RouterRecord]
    /// `<dir>/table.json` of an experiment directory (ParadigmComparison), when present.
    public var comparison: ParadigmComparison?

    public init(url: URL, runs: [Run], router: [RouterRecord], comparison: ParadigmComparison? = nil) {
        self.url = url; self.runs = runs; self.router = router; self.comparison = comparison
    }

    /// Reads `<dir>/metrics.jsonl` and every `<dir>/<sub>/metrics.jsonl`, with their summaries
    /// and router records. A sub-directory's run is named by the sub-directory; a record at the top by its
    /// `paradigm` field, else the summary's, else the directory's name (or "run").
    public static func load(_ url: URL) throws -> RunDirectory {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue else {
            throw RunDirectoryError.notADirectory(path: url.path)
        }
        var dirs: [(URL, String)] = [(url, url.lastPathComponent.isEmpty ? "run" : url.lastPathComponent)]
        let children = (try? FileManager.default.contentsOfDirectory(
            at: url, includingPropertiesForKeys: [.isDirectoryKey])) ?? []
        for child in children.sorted(by: { $0.lastPathComponent < $1.lastPathComponent }) {
            if (try? child.resourceValues(forKeys: [.isDirectoryKey]).isDirectory) == true {
                dirs.append((child, child.lastPathComponent))
            }
        }

        var byParadigm: [String: Run] = [:]
        var router: [RouterRecord] = []
        var foundMetrics = false
        for (dir, name) in dirs {
            let summary = try loadSummary(dir.appendingPathComponent(RunFiles.summary))
            let routerFile = dir.appendingPathComponent(RunFiles.router)
            if FileManager.default.fileExists(atPath: routerFile.path) {
                router += try readJSONLines(routerFile, as: RouterRecord.self)
            }
            let metricsFile = dir.appendingPathComponent(RunFiles.metrics)
            guard FileManager.default.fileExists(atPath: metricsFile.path) else { continue }
            foundMetrics = true
            // A sub-directory is one run of an experiment folder, named by the folder (local-only and oracle runs
            // record paradigm "clustered"); the top directory's records keep their own paradigm.
            let child = dir != url
            let fallback = child ? name : summary?.paradigm ?? name
            let arrivals = dir.appendingPathComponent(RunFiles.arrivals)
            if FileManager.default.fileExists(atPath: arrivals.path) {
                let tasks = try readJSONLines(arrivals, as: TaskRecord.self)
                byParadigm[fallback, default: Run(paradigm: fallback, records: [])].tasks += tasks
            }
            for record in try readJSONLines(metricsFile, as: MetricRecord.self) {
                let paradigm = child ? name : record.paradigm ?? fallback
                var run = byParadigm[paradigm] ?? Run(paradigm: paradigm, records: [])
                var r = record
                r.paradigm = paradigm
                run.records.append(r)
                if run.summary == nil, child || summary?.paradigm == nil || summary?.paradigm == paradigm {
                    run.summary = summary
                }
                byParadigm[paradigm] = run
            }
        }
        // A router benchmark directory holds only router.jsonl.
        guard foundMetrics || !router.isEmpty else { throw RunDirectoryError.noRuns(path: url.path) }
        let runs = byParadigm.values.sorted { $0.paradigm < $1.paradigm }
        return RunDirectory(url: url, runs: runs, router: router,
                            comparison: try loadComparison(url.appendingPathComponent(ParadigmComparison.jsonFile)))
    }

    static func loadComparison(_ file: URL) throws -> ParadigmComparison? {
        guard let data = FileManager.default.contents(atPath: file.path) else { return nil }
        do { return try RunFiles.decoder().decode(ParadigmComparison.self, from: data) } catch {
            throw RunDirectoryError.malformedTable(file: file.path, reason: "\(error)")
        }
    }

    static func loadSummary(_ file: URL) throws -> RunSummary? {
        guard FileManager.default.fileExists(atPath: file.path) else { return nil }
        let data: Foundation.Data
        do { data = try Foundation.Data(contentsOf: file) } catch {
            throw RunDirectoryError.unreadable(file: file.path, reason: "\(error.localizedDescription)")
        }
        do { return try RunFiles.decoder().decode(RunSummary.self, from: data) } catch {
            throw RunDirectoryError.malformedSummary(file: file.path, reason: describe(error))
        }
    }

    /// Decodes one value per non-empty line; the error names the 1-based line number.
    public static func readJSONLines<T: Decodable>(_ file: URL, as type: T.Type) throws -> [T] {
        let data: Foundation.Data
        do { data = try Foundation.Data(contentsOf: file) } catch {
            throw RunDirectoryError.unreadable(file: file.path, reason: "\(error.localizedDescription)")
        }
        let decoder = RunFiles.decoder()
        var out: [T] = []
        var lineNumber = 0
        for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\t") }) {
                continue
            }
            do { out.append(try decoder.decode(T.self, from: Foundation.Data(line))) } catch {
                throw RunDirectoryError.malformedLine(file: file.path, line: lineNumber, reason: describe(error))
            }
        }
        return out
    }

    /// A short reason from a DecodingError, without Foundation's long debug dump.
    static func describe(_ error: Error) -> String {
        guard let e = error as? DecodingError else { return "\(error)" }
        func path(_ c: DecodingError.Context) -> String {
            c.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
        switch e {
        case .keyNotFound(let key, _): return "missing field \"\(key.stringValue)\""
        case .typeMismatch(let t, let c): return "field \"\(path(c))\" is not a \(t)"
        case .valueNotFound(let t, let c): return "field \"\(path(c))\" is null, expected \(t)"
        case .dataCorrupted(let c):
            return c.codingPath.isEmpty ? "not valid JSON" : "field \"\(path(c))\": \(c.debugDescription)"
        @unknown default: return "\(e)"
        }
    }
}
