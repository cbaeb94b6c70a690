import ArgumentParser
import InferenceRouter

struct InferenceRouterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inference-router",
        abstract: "Plans and runs split inference across nodes."
    )

    func run() throws {
        throw ValidationError("not implemented yet")
    }
}

InferenceRouterCommand.main()
