import ArgumentParser
import ClusterManager

struct ClusterManagerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster-manager",
        abstract: "Registers devices, tracks liveness and publishes the cluster map."
    )

    func run() throws {
        throw ValidationError("not implemented yet")
    }
}

ClusterManagerCommand.main()
