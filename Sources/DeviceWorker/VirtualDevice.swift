import EdgeEnvironment
import Federation
import Messages
import Wire

/// One device of a host: only what persists between its tasks. Its data is loaded when a task needs it, its adapter
/// copy and optimizer state live on a pool trainer while it trains, and what stays is its partition, its node id and
/// its encoder (the error-feedback residual of a lossy codec). The service and the simulator run the same code.
public struct VirtualDevice: Sendable {
    public var id: String
    public var partition: Int
    public var encoder: UpdateEncoder

    public init(id: String, partition: Int, encoder: UpdateEncoder) {
        self.id = id; self.partition = partition; self.encoder = encoder
    }

    /// The seed of this device's local training for the task with wire id `wire` (data order), in every launcher.
    public func trainingSeed(experiment seed: UInt64, wire: UInt64) -> UInt64 {
        seed ^ (wire &* 0x9E37_79B9_7F4A_7C15) ^ UInt64(deviceOrdinal(id))
    }
}

/// A training task as the device received it.
public struct LocalTask: Sendable {
    /// The announced round (the upload's round).
    public var round: UInt64
    /// The model(s) to start from: its cluster's, or (IFCA) every candidate, each with its version.
    public var models: [(cluster: Int, version: UInt64, parameters: [Float])]
    public var settings: LocalSettings

    public init(round: UInt64, models: [(cluster: Int, version: UInt64, parameters: [Float])], settings: LocalSettings) {
        self.round = round; self.models = models; self.settings = settings
    }
}

extension VirtualDevice {
    /// Runs `task` on `trainer`: with several candidate models (IFCA) the one with the lowest loss on local data, then
    /// local training, then the update's encoding.
    public mutating func train(_ task: LocalTask, trainer: any LocalTrainer, data: DeviceData, cost: any EdgeCostModel,
                               experimentSeed: UInt64, layout: ParameterLayout) throws -> UpdateUpload {
        try train(task, trainer: trainer, data: data, cost: cost, experimentSeed: experimentSeed, layout: layout, privacy: nil).upload
    }

    /// `train` with the task's privacy stage between training and encoding: the delta is clipped (and noised) with
    /// fresh system entropy; the clip report and sketch go in the upload. Under secure aggregation nothing is encoded:
    /// `secureInput` (the delta, then the clip report) is what the device masks once its shares are in.
    public mutating func train(_ task: LocalTask, trainer: any LocalTrainer, data: DeviceData, cost: any EdgeCostModel,
                               experimentSeed: UInt64, layout: ParameterLayout,
                               privacy: DevicePrivacy?) throws -> (upload: UpdateUpload, secureInput: [Float]?) {
        precondition(!task.models.isEmpty, "a task names at least one model")
        let seed = trainingSeed(experiment: experimentSeed, wire: task.round)
        var chosen = task.models[0]
        if task.models.count > 1 {
            let losses = try task.models.map { try trainer.trainingLoss($0.parameters, data: data, seed: seed) }
            chosen = task.models[ifcaAssign(losses: losses) ?? 0]
        }
        var out = try trainer.train(from: chosen.parameters, data: data, settings: task.settings, seed: seed)
        var released: (clipReport: Float?, sketch: [Float]?) = (nil, nil)
        if let privacy {
            var rng = ChaChaRandom(key: ChaChaRandom.freshKey(), nonce: 0)
            released = privacy.privatise(&out.delta, using: &rng)
        }
        let secure = privacy?.secure == true
        var upload = UpdateUpload(round: task.round, cluster: UInt32(max(0, chosen.cluster)), baseVersion: chosen.version,
                                  samples: UInt64(data.samples), trainLoss: out.loss, delta: secure ? [] : encoder.encode(out.delta, layout: layout),
                                  tier: .device, computeS: cost.computeSeconds(flops: out.flops, device: deviceOrdinal(id)))
        // Under secure aggregation the clip report travels masked, with the delta; the sketch is released as it is.
        let report = secure ? nil : released.clipReport
        if report != nil || released.sketch != nil {
            upload.privacy = UploadPrivacy(clipReport: report, sketch: released.sketch.map { Messages.Tensor(name: "sketch", shape: [$0.count], floats: $0) })
        }
        let secureInput = secure ? out.delta + (released.clipReport.map { [$0] } ?? []) : nil
        return (upload, secureInput)
    }

    /// Validation loss of `parameters` (the model of round `round`) on the device's validation tokens.
    public func evaluate(round: UInt64, parameters: [Float], trainer: any LocalTrainer, data: DeviceData) throws -> EvalResult {
        let out = try trainer.evaluate(parameters, data: data)
        return EvalResult(round: round, domain: data.domain, valLoss: out.loss, tokens: UInt64(out.tokens))
    }
}
