import Foundation

/// One task of one device in a simulated run (`arrivals.jsonl`, one line each): when it started, how long its
/// download, compute and upload took on the virtual clock, when it arrived, and what became of it.
public struct TaskRecord: Codable, Sendable, Equatable {
    /// inFlight: the run ended before the upload arrived.
    public enum Outcome: String, Codable, Sendable, CaseIterable { case delivered, late, offline, failed, inFlight = "in_flight" }
    /// The task's wire id (its round's number on the wire).
    public var wire: UInt64
    public var device: String
    public var start: Double
    public var downloadS: Double
    public var computeS: Double
    public var uploadS: Double
    public var arrival: Double
    public var outcome: Outcome

    public init(wire: UInt64, device: String, start: Double, downloadS: Double, computeS: Double, uploadS: Double, arrival: Double,
                outcome: Outcome) {
        self.wire = wire; self.device = device; self.start = start; self.downloadS = downloadS; self.computeS = computeS
        self.uploadS = uploadS; self.arrival = arrival; self.outcome = outcome
    }
}

extension RunFiles {
    /// Every task of a simulated run (TaskRecord per line).
    public static let arrivals = "arrivals.jsonl"
}

/// Per-round distributions of a run's tasks: what stays readable with thousands of devices (no line per device).
public struct TaskDistribution: Sendable, Equatable {
    /// Round number (1-based order of the tasks' wire ids).
    public var rounds: [Int]
    /// Task time (arrival − start) per round: 10th, 50th and 90th percentile and maximum.
    public var p10: [Double], p50: [Double], p90: [Double], max: [Double]
    /// Tasks per round by outcome.
    public var outcomes: [TaskRecord.Outcome: [Int]]
    public var devices: Int
    public var tasks: Int

    public init(_ tasks: [TaskRecord]) {
        let wires = Array(Set(tasks.map(\.wire))).sorted()
        let byWire = Dictionary(grouping: tasks, by: \.wire)
        rounds = wires.indices.map { $0 + 1 }
        func quantile(_ sorted: [Double], _ q: Double) -> Double {
            sorted.isEmpty ? .nan : sorted[Swift.min(sorted.count - 1, Int((q * Double(sorted.count - 1)).rounded()))]
        }
        let durations = wires.map { w in (byWire[w] ?? []).map { $0.arrival - $0.start }.sorted() }
        p10 = durations.map { quantile($0, 0.1) }
        p50 = durations.map { quantile($0, 0.5) }
        p90 = durations.map { quantile($0, 0.9) }
        max = durations.map { $0.last ?? .nan }
        outcomes = Dictionary(uniqueKeysWithValues: TaskRecord.Outcome.allCases.map { o in
            (o, wires.map { w in (byWire[w] ?? []).filter { $0.outcome == o }.count })
        })
        devices = Set(tasks.map(\.device)).count
        self.tasks = tasks.count
    }
}
