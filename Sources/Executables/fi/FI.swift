import ArgumentParser

/// `fi`: the one command for users. Each subcommand lives in its own file.
@main
struct FI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fi",
        abstract: "Federated Intelligence: federated LoRA fine-tuning and split inference at the edge.",
        subcommands: [
            Bench.self,
            Report.self,
            DataCommand.self,
            Eval.self,
            Quantize.self,
            Demo.self,
            Pretrain.self,
            Run.self,
            ExperimentCommand.self,
            Proxy.self,
            TapCommand.self,
            Infer.self,
            Keys.self,
            TestbedCommand.self,
            PrivacyCommand.self,
        ]
    )
}

/// `fi bench …`: benchmarks that print ratios against a baseline measured in the same run.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks, each against a baseline measured in the same run.",
        subcommands: [
            BenchBus.self,
            BenchEngine.self,
            BenchFederation.self,
            BenchPoisoning.self,
            BenchRouter.self,
            BenchInference.self,
            BenchSecAgg.self,
        ]
    )
}
