import EdgeEnvironment
import Foundation

// Hierarchical federation (HierFAVG) as real tiers: which edge aggregator serves which device, how many rounds
// each tier runs, and the cost of the device↔edge and edge↔cloud hops on the virtual clock.
//
// Rounds: `federation.rounds` counts local rounds. An edge round is κ1 local rounds: the edge announces
// κ1·local_steps, so each device does its κ1 local rounds back to back without an edge step in between (the same
// model as HierFAVG; only the optimizer moments carry over). A cloud round is κ2 edge rounds. Cloud rounds =
// rounds / (κ1·κ2), at least 1.
//
// Clustered + hierarchical (`hierarchical.clustered: true`): the cloud keeps one adapter per cluster
// (Federation.ClusteredHierarchy), each edge one per cluster of its devices. The experiment's `clustered:` section
// drives assignment, with warm-up and re-clustering counted in cloud rounds; edges relay per-device sketches in
// the cloud rounds that (re)cluster. Services: Aggregator/ClusteredCloudDriver.swift and ClusteredEdgeDriver.swift.

extension Experiment {
    /// `hierarchical:` section (only read with `federation.paradigm: hierarchical`).
    public struct HierarchicalSection: Sendable, Equatable {
        /// Edge aggregators; device → edge = its scenario access point's ordinal mod `edges`.
        public var edges = 2
        public var kappa1 = 1
        public var kappa2 = 2
        /// One adapter per cluster under the hierarchy; the `clustered:` section says how devices get clusters.
        public var clustered = false
        public init() {}

        static func parse(_ h: Keys) throws -> HierarchicalSection {
            try h.only(["edges", "kappa1", "kappa2", "clustered"])
            var s = HierarchicalSection()
            s.edges = try h.int("edges", min: 1) ?? s.edges
            s.kappa1 = try h.int("kappa1", min: 1) ?? s.kappa1
            s.kappa2 = try h.int("kappa2", min: 1) ?? s.kappa2
            s.clustered = try h.bool("clustered") ?? s.clustered
            return s
        }
    }

    public var isHierarchical: Bool { federation.paradigm == "hierarchical" }
    /// Hierarchical with one adapter per cluster.
    public var isClusteredHierarchical: Bool { isHierarchical && hierarchical?.clustered == true }
}

/// Why an aggregator cannot take its place in the hierarchy.
public enum HierarchyError: Error, Equatable, CustomStringConvertible {
    case edgeNeedsUpstream(id: String)
    case edgeNeedsHierarchicalParadigm(paradigm: String)

    public var description: String {
        switch self {
        case .edgeNeedsUpstream(let id):
            return "edge aggregator \(id) has no upstream: pass --upstream <cloud aggregator ROUTER endpoint> (or FI_UPSTREAM)"
        case .edgeNeedsHierarchicalParadigm(let p):
            return "--tier edge needs federation.paradigm: hierarchical in the experiment file, got '\(p)'"
        }
    }
}

/// The hierarchy an experiment asks for: edges, κ1, κ2, device → edge, and rounds per tier.
public struct HierarchyPlan: Sendable, Equatable {
    public var edges: Int
    public var kappa1: Int
    public var kappa2: Int
    /// Edge ordinal of device ordinal i (cyclic over the list).
    public var deviceEdges: [Int]
    public var localRounds: Int
    public var devices: Int
    public var quorum: Int

    public init(_ e: Experiment) {
        let h = e.hierarchical ?? Experiment.HierarchicalSection()
        edges = max(1, h.edges); kappa1 = max(1, h.kappa1); kappa2 = max(1, h.kappa2)
        localRounds = e.federation.rounds
        devices = max(1, e.data.devices)
        quorum = e.federation.quorum
        deviceEdges = Self.deviceEdges(scenario: e.scenario, devices: devices, edges: edges)
    }

    /// Device i's edge: the ordinal of the access point serving scenario node "device-i", mod `edges`
    /// (i mod `edges` when the scenario cannot be built).
    public static func deviceEdges(scenario: EdgeEnvironment.Scenario, devices: Int, edges: Int) -> [Int] {
        var s = scenario
        s.devices.count = max(s.devices.count, devices, 1)
        guard let topology = try? s.build().topology else { return (0..<devices).map { $0 % max(1, edges) } }
        let aps = topology.accessPoints
        return (0..<devices).map { i in
            let ap = topology["device-\(i)"]?.accessPoint.flatMap { aps.firstIndex(of: $0) } ?? i
            return ap % max(1, edges)
        }
    }

    public func edge(ofDevice ordinal: Int) -> Int {
        deviceEdges.isEmpty ? 0 : deviceEdges[((ordinal % deviceEdges.count) + deviceEdges.count) % deviceEdges.count]
    }

    public var cloudRounds: Int { max(1, localRounds / (kappa1 * kappa2)) }
    public var edgeRounds: Int { cloudRounds * kappa2 }

    /// Devices of one edge among the experiment's devices.
    public func devices(ofEdge k: Int) -> Int { (0..<devices).filter { edge(ofDevice: $0) == k }.count }

    /// An edge's share of the device quorum (all of its devices when the quorum is all devices).
    public func edgeQuorum(_ k: Int) -> Int {
        let n = devices(ofEdge: k)
        return max(1, min(n, Int((Double(quorum) * Double(n) / Double(devices)).rounded(.up))))
    }
}
