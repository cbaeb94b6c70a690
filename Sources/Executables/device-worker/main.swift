import ArgumentParser
import DeviceWorker

struct DeviceWorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "device-worker",
        abstract: "Trains LoRA adapters on local data and serves layer ranges."
    )

    func run() throws {
        throw ValidationError("not implemented yet")
    }
}

DeviceWorkerCommand.main()
