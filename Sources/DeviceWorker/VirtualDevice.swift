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
    /// local training, then the update's encoding. A privacy stage (clipping, noise) belongs between the two.
    public mutating func train(_ task: LocalTask, trainer: any LocalTrainer, data: DeviceData, cost: any EdgeCostModel,
                               experimentSeed: UInt64, layout: ParameterLayout) throws -> UpdateUpload {
        precondition(!task.models.isEmpty, "a task names at least one model")
        let seed = trainingSeed(experiment: experimentSeed, wire: task.round)
        var chosen = task.models[0]
        if task.models.count > 1 {
            let losses = try task.models.map { try trainer.trainingLoss($0.parameters, data: data, seed: seed) }
            chosen = task.models[ifcaAssign(losses: losses) ?? 0]
        }
        let out = try trainer.train(from: chosen.parameters, data: data, settings: task.settings, seed: seed)
        let delta = encoder.encode(out.delta, layout: layout)
        return UpdateUpload(round: task.round, cluster: UInt32(max(0, chosen.cluster)), baseVersion: chosen.version, samples: UInt64(data.samples),
                            trainLoss: out.loss, delta: delta, tier: .device,
                            computeS: cost.computeSeconds(flops: out.flops, device: deviceOrdinal(id)))
    }

    /// Validation loss of `parameters` (the model of round `round`) on the device's validation tokens.
    public func evaluate(round: UInt64, parameters: [Float], trainer: any LocalTrainer, data: DeviceData) throws -> EvalResult {
        let out = try trainer.evaluate(parameters, data: data)
        return EvalResult(round: round, domain: data.domain, valLoss: out.loss, tokens: UInt64(out.tokens))
    }
}
