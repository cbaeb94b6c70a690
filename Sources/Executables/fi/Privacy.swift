import ArgumentParser
import Federation
import Foundation

/// `fi privacy …`: differential-privacy accounting.
struct PrivacyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "privacy",
        abstract: "Differential-privacy accounting (the RDP accountant runs use).",
        subcommands: [PrivacyEpsilon.self])
}

/// `fi privacy epsilon --q Q --sigma S --rounds T --delta D`: ε of T sampled Gaussian rounds.
struct PrivacyEpsilon: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "epsilon",
        abstract: "ε at δ after T rounds of the Poisson-sampled Gaussian mechanism (rate q, noise multiplier σ), by RDP.")

    @Option(help: "Sampling rate per round, in (0, 1] (participants / population).") var q: Double
    @Option(help: "Noise multiplier σ: noise std over the clip norm (> 0).") var sigma: Double
    @Option(help: "Rounds (mechanism applications), ≥ 1.") var rounds: Int
    @Option(help: "δ, in (0, 1).") var delta: Double = 1e-5
    @Flag(help: "Print JSON (epsilon, order, q, sigma, rounds, delta).") var json = false

    func validate() throws {
        guard q.isFinite, q > 0, q <= 1 else { throw ValidationError("--q \(q) must be in (0, 1]") }
        guard sigma.isFinite, sigma > 0 else { throw ValidationError("--sigma \(sigma) must be a finite number > 0") }
        guard rounds >= 1 else { throw ValidationError("--rounds \(rounds) must be at least 1") }
        guard delta.isFinite, delta > 0, delta < 1 else { throw ValidationError("--delta \(delta) must be in (0, 1)") }
    }

    func run() throws {
        var acc = RDPAccountant()
        acc.compose(q: q, sigma: sigma, count: rounds)
        let e = acc.epsilon(delta: delta)
        if json {
            print("{\"epsilon\": \(e.epsilon), \"order\": \(e.order), \"q\": \(q), \"sigma\": \(sigma), \"rounds\": \(rounds), \"delta\": \(delta)}")
        } else {
            print(String(format: "epsilon %.4f at delta %g (q %g, sigma %g, %d rounds; best RDP order %.1f)", e.epsilon, delta, q, sigma, rounds, e.order))
        }
    }
}
