import ArgumentParser
import Dispatch
import Foundation
import InferenceRouter
import Stage
import Testbed

/// `fi testbed`: the multi-host testbed in Linux network namespaces (root).
struct TestbedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "testbed",
        abstract: "Hosts in network namespaces with kernel-shaped links, a stage node in each, the router on the driver's address.",
        subcommands: [Up.self, Clean.self])

    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build the testbed of a scenario and serve until Ctrl-C (then everything is removed).")

        @Option(help: "Testbed scenario (examples/testbed/*.yaml).") var scenario: String
        @Option(help: "Router port on the driver's address.") var port = 5570
        @Option(help: "direct or hub.") var forwarding = "direct"

        func run() async throws {
            guard let mode = Forwarding(rawValue: forwarding) else { throw ValidationError("--forwarding must be direct or hub") }
            let spec = try TestbedSpec.load(URL(fileURLWithPath: scenario))
            guard let bin = ServiceProcess.executablesNextTo(needing: "stage-node") else {
                throw ValidationError("stage-node is not built next to fi: run swift build")
            }
            let bed = try TestbedDeployment(spec: spec, bin: bin, forwarding: mode, routerPort: port)
            do { try await bed.waitReady() } catch {
                bed.stop()
                throw error
            }
            print("testbed \(bed.net.tag) is up; router \(bed.routerEndpoint)")
            for h in spec.hosts {
                print("  \(h.name) (\(h.role)) \(bed.net.address(h.name)) in namespace \(bed.net.namespace(h.name))")
            }
            let first = spec.hosts.first { $0.role == "device" }?.name ?? spec.hosts[0].name
            let keys = bed.keys.map { " " + $0.clientArguments("client").joined(separator: " ") } ?? ""
            print("try:  fi infer --router \(bed.routerEndpoint) --device \(first) --prompt \"The \"\(keys)")
            print("cut a link:  ip netns exec \(bed.net.namespace(first)) tc class show dev eth0   (then tc class change … rate …)")
            print("Ctrl-C removes the namespaces and stops the services.")
            await Task.detached { waitForTerminationSignal() }.value
            bed.stop()
        }
    }

    struct Clean: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove testbed namespaces and interfaces left by a killed run.")

        func run() throws {
            guard geteuid() == 0 else { throw TestbedError.notRoot }
            let removed = try NetworkTestbed.cleanAll()
            print(removed.isEmpty ? "nothing to remove" : "removed " + removed.joined(separator: ", "))
        }
    }
}
