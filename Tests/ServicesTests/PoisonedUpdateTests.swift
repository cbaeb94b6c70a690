import ClusterManager
import Aggregator
import Bus
import Experiments
import Wire
import Engine
import FederatedRun
import Foundation
import Messages
import XCTest

/// A fake device on raw sockets sends bad uploads to a real aggregator.
final class PoisonedUpdateTests: XCTestCase {
    func receive(_ socket: Socket, seconds: Double) throws -> Envelope? {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if let frames = try? socket.receive(dontWait: true) { return try Envelope.decode(frames: frames, limits: serviceDecodeLimits) }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return nil
    }

    func testMalformedAndPoisonedUpdatesAreRejectedCountedAndLeaveTheGlobalUnchanged() async throws {
        let s = try Kit.setup("poison", devices: 1, rounds: 1, deadline: 30)
        let context = BusContext()
        let manager = try ClusterManagerService(.init(router: "inproc://pm", pub: "inproc://pm-pub", heartbeatMs: 200, liveness: 50, partitions: 1),
                                                context: context)
        var o = AggregatorService.Options(manager: "inproc://pm", router: "inproc://pa", pub: "inproc://pa-pub", experiment: s.experiment)
        o.heartbeatMs = 100; o.quiet = true; o.evaluate = false
        let initial = try s.experiment.initialAdapter()
        let aggregator = try AggregatorService(o, initial: initial, context: context)
        manager.start(); aggregator.start()
        defer { aggregator.stop(); manager.stop() }

        let toManager = try Socket(.dealer, context: context)
        try toManager.set(.routingId(Array("device-0".utf8)))
        try toManager.connect("inproc://pm")
        try toManager.send(Envelope(sender: "device-0", seq: 1, body: .register(Register(role: .device, nodeId: "device-0"))))
        let device = try Socket(.dealer, context: context)
        try device.set(.routingId(Array("device-0".utf8)))
        try device.connect("inproc://pa")
        defer { device.close(); toManager.close() }

        // Wait for round 1's announcement and model.
        var announcement: RoundAnnouncement?, model: ModelBroadcast?
        let end = Date().addingTimeInterval(20)
        while (announcement == nil || model == nil) && Date() < end {
            try toManager.send(Envelope(sender: "device-0", seq: 2, body: .heartbeat(Heartbeat())))
            guard let env = try receive(device, seconds: 0.2) else { continue }
            if case .round(let r) = env.body { announcement = r }
            if case .model(let m) = env.body { model = m }
        }
        let round = try XCTUnwrap(announcement).round
        let version = try XCTUnwrap(announcement).modelVersion
        let global = try XCTUnwrap(model).tensors
        XCTAssertEqual(round, 1)

        func upload(_ delta: [Messages.Tensor]) -> Envelope {
            Envelope(sender: "device-0", seq: 10, body: .update(UpdateUpload(round: round, baseVersion: version,
                                                                             samples: 10, trainLoss: 1, delta: delta)))
        }
        func ack() throws -> UpdateAck {
            while let env = try receive(device, seconds: 5) {
                if case .ack(let a) = env.body { return a }
            }
            XCTFail("the aggregator did not acknowledge within 5 s")
            throw CancellationError()
        }
        let good = global.map { Messages.Tensor(name: $0.name, shape: $0.shape, floats: [Float](repeating: 0.01, count: $0.elementCount ?? 0)) }
        var nan = good
        var values = try nan[0].floats(); values[3] = .nan
        nan[0] = Messages.Tensor(name: nan[0].name, shape: nan[0].shape, floats: values)
        var wrongShape = good
        wrongShape[0] = Messages.Tensor(name: good[0].name, shape: [1, 3], floats: [0, 0, 0])
        var oversized = good
        oversized[0] = Messages.Tensor(name: good[0].name, shape: [good[0].elementCount! * 4], floats: [Float](repeating: 0, count: good[0].elementCount! * 4))

        try device.send(upload(nan)); XCTAssertFalse(try ack().accepted)
        try device.send(upload(wrongShape)); XCTAssertFalse(try ack().accepted)
        try device.send(upload(oversized)); XCTAssertFalse(try ack().accepted)
        try device.send([[0x0A, 0xFF, 0xFF, 0x13, 0x00]]); XCTAssertFalse(try ack().accepted)

        var st = try await aggregator.status()
        XCTAssertEqual(st.rejections["non_finite"], 1)
        XCTAssertEqual(st.rejections["wrong_shape"], 1)
        XCTAssertEqual(st.rejections["too_large"], 1)
        XCTAssertEqual(st.rejections["undecodable"], 1)
        XCTAssertEqual(st.global, initial.flatten(), "rejected updates must not touch the global adapter")
        XCTAssertEqual(st.version, 0)

        // A good update is accepted, its retry is a duplicate, and FedAvg of one device applies exactly its delta.
        try device.send(upload(good))
        let accepted = try ack()
        XCTAssertTrue(accepted.accepted)
        let closed = try await eventually(10) { try await aggregator.status().completedRound == 1 }
        XCTAssertTrue(closed)
        st = try await aggregator.status()
        XCTAssertEqual(st.version, 1)
        for (g, x) in zip(st.global, initial.flatten()) { XCTAssertEqual(g, x + 0.01, accuracy: 1e-6) }
    }
}
