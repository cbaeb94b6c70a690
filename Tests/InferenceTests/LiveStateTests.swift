import Bus
import EdgeEnvironment
import Engine
import InferenceRouter
import Messages
import Stage
import XCTest

/// The pure pieces of live state: link estimates from echoes, the load meter, radio state, and the router's view.
final class LiveStateTests: XCTestCase {
    func testLinkEstimateSeparatesLatencyFromThroughput() {
        var e = LinkEstimate()
        e.add(bytes: 64, rttSeconds: 0.010)  // base RTT 10 ms
        XCTAssertEqual(e.rttSeconds ?? 0, 0.010, accuracy: 1e-12)
        XCTAssertNil(e.rateBitsPerSecond)
        // 25 000 bytes back in 30 ms: 20 ms of serialisation → 10 Mbit/s.
        e.add(bytes: 25_000, rttSeconds: 0.030)
        XCTAssertEqual(e.rateBitsPerSecond ?? 0, 10e6, accuracy: 1)
        // A similar sample is smoothed (weight 0.5): 25 000 B in 35 ms → 8 Mbit/s, estimate 9 Mbit/s.
        e.add(bytes: 25_000, rttSeconds: 0.035)
        XCTAssertEqual(e.rateBitsPerSecond ?? 0, 9e6, accuracy: 1)
        // The link is cut to 1 Mbit/s: one sample more than 2× off may be a busy host; a second one replaces the estimate.
        e.add(bytes: 25_000, rttSeconds: 0.210)
        XCTAssertEqual(e.rateBitsPerSecond ?? 0, 9e6, accuracy: 1)
        e.add(bytes: 25_000, rttSeconds: 0.210)
        XCTAssertEqual(e.rateBitsPerSecond ?? 0, 1e6, accuracy: 1)
        // Too fast to time (excess under the 1 ms floor = 10% of the base RTT): only a lower bound, 8·25 000 / 1 ms.
        e.add(bytes: 25_000, rttSeconds: 0.0105)
        XCTAssertEqual(e.rateBitsPerSecond ?? 0, 200e6, accuracy: 1)
        e.add(bytes: 2_500, rttSeconds: 0.0101)  // a small message passing quickly (a shaper's burst) says nothing
        XCTAssertEqual(e.rateBitsPerSecond ?? 0, 200e6, accuracy: 1)
        XCTAssertEqual(e.report(peer: "b"), LinkReport(peer: "b", rttS: 0.010, rateBps: 200e6, samples: 7))
        // A transfer outstanding far longer than the estimate allows lowers it before its echo: 25 kB for 0.51 s.
        e.cap(bytes: 25_000, outstandingSeconds: 0.51)
        XCTAssertEqual(e.rateBitsPerSecond ?? 0, 0.4e6, accuracy: 1)
        e.cap(bytes: 25_000, outstandingSeconds: 0.41)  // a bound above half the estimate leaves it
        XCTAssertEqual(e.rateBitsPerSecond ?? 0, 0.4e6, accuracy: 1)
    }

    func testProberMatchesEchoesAndSpacesThroughputProbes() {
        var p = LinkProber()
        p.targetSeconds = 0.02
        let first = p.probes(to: ["b"], nowUs: 1_000_000, roundUs: 200_000)
        XCTAssertEqual(first.count, 2)  // small + throughput probe (16 KiB before any estimate)
        XCTAssertEqual(first[1].probe.padding.count, 16 << 10)
        let small = first[0].probe, big = first[1].probe
        // An echo from the wrong peer, or of an unknown id, is ignored.
        p.echo(Probe(id: small.id, sentUs: small.sentUs, echo: true), from: "c", nowUs: 1_004_000)
        p.echo(Probe(id: 999, sentUs: 0, echo: true), from: "b", nowUs: 1_004_000)
        XCTAssertTrue(p.reports().isEmpty)
        p.echo(Probe(id: small.id, sentUs: small.sentUs, echo: true), from: "b", nowUs: 1_004_000)  // 4 ms
        p.echo(Probe(id: big.id, sentUs: big.sentUs, echo: true), from: "b", nowUs: 1_017_147)  // + 13.107 ms for 16 448 B
        let r = p.reports()[0]
        XCTAssertEqual(r.rttS, 0.004, accuracy: 1e-9)
        XCTAssertEqual(r.rateBps, Double(16448 * 8) / 0.013147, accuracy: 1)
        // Now sized to ~20 ms at the estimate (~25 KB); at 5% of the link the next may go 0.4 s later.
        let second = p.probes(to: ["b"], nowUs: 1_200_000, roundUs: 200_000)
        XCTAssertEqual(second.count, 2)
        XCTAssertEqual(second[1].probe.padding.count, Int(r.rateBps * 0.02 / 8))
        // While a throughput probe is unanswered no other goes; its echo 24 ms later frees the link.
        XCTAssertEqual(p.probes(to: ["b"], nowUs: 1_210_000, roundUs: 10_000).count, 1)
        for probe in second.map(\.probe) { p.echo(Probe(id: probe.id, sentUs: probe.sentUs, echo: true), from: "b", nowUs: 1_224_000) }
        XCTAssertEqual(p.probes(to: ["b"], nowUs: 1_400_000, roundUs: 200_000).count, 1)
        XCTAssertEqual(p.probes(to: ["b"], nowUs: 1_600_000, roundUs: 200_000).count, 2)
        // A link an activation measured within the round (its echo: id 0, own send time and size) gets no throughput probe.
        p.echo(Probe(id: 0, sentUs: 2_030_000, size: 20_000, echo: true), from: "b", nowUs: 2_050_000)
        XCTAssertEqual(p.probes(to: ["b"], nowUs: 2_100_000, roundUs: 200_000).count, 1)
        p.forget("b")
        XCTAssertTrue(p.reports().isEmpty)
    }

    func testLoadMeterCountsOnlyOpenSessionsAndTracksSpeed() {
        var m = LoadMeter(window: 1)
        m.record(start: 10.0, end: 10.3, flops: 3e8, sessions: ["a"])
        m.record(start: 10.4, end: 10.6, flops: 2e8, sessions: ["a", "b"])
        XCTAssertEqual(m.flopsPerSecond ?? 0, 1e9, accuracy: 1)
        XCTAssertEqual(m.busy(now: 10.8), 0.5, accuracy: 1e-9)
        XCTAssertEqual(m.busy(now: 10.8, runningSince: 10.7), 0.6, accuracy: 1e-9)
        m.release(session: "a")
        XCTAssertEqual(m.busy(now: 10.8), 0.2, accuracy: 1e-9)  // b's share stays until b ends
        m.release(session: "b")
        XCTAssertEqual(m.busy(now: 10.8), 0, accuracy: 1e-12)
        // A speed probe (no session) moves the speed, not the load; one 4× slower sample may be a busy CPU, a second
        // one replaces the estimate.
        m.record(start: 11, end: 11.1, flops: 2.5e7, sessions: [])
        XCTAssertEqual(m.flopsPerSecond ?? 0, 1e9, accuracy: 1)
        m.record(start: 11.1, end: 11.2, flops: 2.5e7, sessions: [])
        XCTAssertEqual(m.flopsPerSecond ?? 0, 2.5e8, accuracy: 1)
        XCTAssertEqual(m.busy(now: 11.2), 0, accuracy: 1e-12)
    }

    func testRadioStateIsTheChannelModelAtThatTime() throws {
        var scenario = Scenario()
        scenario.devices.count = 2
        let network = try scenario.build()
        let radio = try RadioState(network: network, device: "device-1", accessPointPeer: "e1")
        let t = 3.25
        let c = try network.channelReport(device: "device-1", at: t)
        let r = try radio.report(at: t)
        XCTAssertEqual(r.peer, "e1")
        XCTAssertTrue(r.radio)
        XCTAssertEqual(r.rateBps, c.uplinkBitsPerSecond)
        XCTAssertEqual(r.reverseRateBps, c.downlinkBitsPerSecond)
        XCTAssertEqual(r.snrDb, c.uplinkSNRDB)
        XCTAssertNotEqual(try radio.report(at: t + 1).rateBps, r.rateBps)  // fading redraws each coherence block
        XCTAssertThrowsError(try RadioState(network: network, device: "edge-0"))
    }

    func testLiveViewPlansOnMeasuredSpeedLoadAndLinks() {
        var v = LiveView(defaultLink: LinkProfile(rateBps: 100e6, latencySeconds: 0.005), staleAfter: 2)
        v.register("d", role: .device, flops: 1e9, maxLayers: 0)
        v.register("e", role: .edge, flops: 1e10, maxLayers: 0)
        XCTAssertEqual(v.view(now: 0).node("e")?.flops, 1e10)  // claimed until measured
        v.heartbeat(from: "e", Heartbeat(load: 0.6, live: NodeLoad(busy: 0.6, flopsMeasured: 4e9, maxSessions: 8),
                                         links: [LinkReport(peer: "d", rttS: 0.02, rateBps: 5e6)]), now: 10)
        v.heartbeat(from: "d", Heartbeat(links: [LinkReport(peer: "e", rttS: 0.02),  // probes timed the RTT only so far
                                                 LinkReport(peer: "e", rateBps: 2e6, snrDb: 7, radio: true, reverseRateBps: 9e6)]), now: 10)
        var view = v.view(now: 10.5, active: ["e": 1])
        XCTAssertEqual(view.node("e")?.flops, 4e9)
        XCTAssertEqual(view.node("e")?.load, 0.6)
        XCTAssertEqual(view.node("e")?.maxSessions, 8)
        XCTAssertEqual(view.link("e", "d"), LinkProfile(rateBps: 5e6, latencySeconds: 0.01))  // measured wins over radio 9e6
        XCTAssertEqual(view.link("d", "e"), LinkProfile(rateBps: 2e6, latencySeconds: 0.01))  // radio rate, measured RTT
        // The session the busy report saw has ended since: its load no longer counts.
        v.released(on: "e", now: 11)
        XCTAssertEqual(v.view(now: 11, active: [:]).node("e")?.load, 0)
        // Reports older than 2 s are forgotten: the default link again.
        view = v.view(now: 12.5)
        XCTAssertEqual(view.link("d", "e"), view.defaultLink)
        v.manualLinks = ["d->e": LinkProfile(rateBps: 1, latencySeconds: 1)]
        XCTAssertEqual(v.view(now: 12.5).link("d", "e"), LinkProfile(rateBps: 1, latencySeconds: 1))
    }

    func testClusterMapReplicaFollowsSequenceNumbersAndSnapshots() {
        var r = ClusterMapReplica()
        let m = { (seq: UInt64, cluster: UInt32, snapshot: Bool) in
            ClusterMap(mapSeq: seq, members: [ClusterMember(nodeId: "device-0", role: .device, cluster: cluster),
                                              ClusterMember(nodeId: "agg", role: .cloudAggregator, cluster: 9)], snapshot: snapshot)
        }
        XCTAssertTrue(r.apply(m(3, 1, false)))
        XCTAssertEqual(r.cluster(of: "device-0"), 1)
        XCTAssertNil(r.cluster(of: "agg"))  // not a device
        XCTAssertFalse(r.apply(m(2, 5, false)))  // an older update arriving late
        XCTAssertEqual(r.cluster(of: "device-0"), 1)
        XCTAssertTrue(r.apply(m(4, 2, false)))
        XCTAssertEqual(r.cluster(of: "device-0"), 2)
        XCTAssertTrue(r.apply(m(1, 3, true)))  // a restarted manager's snapshot counts from 1 again
        XCTAssertEqual(r.cluster(of: "device-0"), 3)
        XCTAssertEqual(r.mapSeq, 1)
        XCTAssertTrue(r.apply(ClusterMap(mapSeq: 2, members: [ClusterMember(nodeId: "device-0", role: .device, cluster: 3, alive: false)])))
        XCTAssertNil(r.cluster(of: "device-0"))  // dead devices are not served
    }
}
