import ArgumentParser
import Bus
import Config
import Foundation

/// `fi proxy`: the telemetry XSUB/XPUB proxy. Runs until SIGINT/SIGTERM.
struct Proxy: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Telemetry proxy: publishers connect to --xsub, taps to --xpub. Stops on SIGINT/SIGTERM.",
        discussion: "Every flag can also come from FI_<FLAG> (e.g. FI_XSUB); a flag on the command line wins."
    )
    static let knownFlags = ["--xsub:endpoint", "--xpub:endpoint", "--verbose:bool"] + CurveOptions.knownFlags

    @Option(help: "XSUB bind endpoint for publishers (e.g. tcp://0.0.0.0:5580). Env: FI_XSUB.") var xsub: String?
    @Option(help: "XPUB bind endpoint for subscribers (e.g. tcp://0.0.0.0:5581). Env: FI_XPUB.") var xpub: String?
    @Flag(help: "Log every subscribe/unsubscribe to stderr. Env: FI_VERBOSE.") var verbose = false
    @OptionGroup var curve: CurveOptions

    func run() throws {
        let given = (xsub.map { ["--xsub", $0] } ?? []) + (xpub.map { ["--xpub", $0] } ?? []) + (verbose ? ["--verbose"] : []) + curve.arguments
        let resolved = try Self.parse(try EnvOptions.merge(arguments: given, environment: ProcessInfo.processInfo.environment,
                                                           knownFlags: Self.knownFlags))
        guard let xsub = resolved.xsub else { throw ValidationError("give --xsub ENDPOINT or set FI_XSUB (e.g. tcp://0.0.0.0:5580)") }
        guard let xpub = resolved.xpub else { throw ValidationError("give --xpub ENDPOINT or set FI_XPUB (e.g. tcp://0.0.0.0:5581)") }

        try resolved.curve.apply()
        let shutdown = ShutdownSignal.interruptOrTerminate()
        var log: (@Sendable (TelemetryProxy.SubscriptionChange) -> Void)?
        if resolved.verbose {
            log = { change in
                let what = change.subscribe ? "subscribe" : "unsubscribe"
                FileHandle.standardError.write(Data("proxy: \(what) '\(change.prefix)'\n".utf8))
            }
        }
        let proxy = try TelemetryProxy(xsub: xsub, xpub: xpub, onSubscription: log)
        proxy.start()
        FileHandle.standardError.write(Data("proxy: xsub \(proxy.xsubEndpoint), xpub \(proxy.xpubEndpoint)\n".utf8))
        shutdown.wait()
        proxy.stop()
        let s = proxy.stats
        FileHandle.standardError.write(Data("proxy: stopped (signal \(shutdown.caught ?? 0)): \(s.forwarded) forwarded, \(s.dropped) dropped\n".utf8))
    }
}
