import ArgumentParser
import Bus
import Foundation

/// The CURVE flags every executable takes (`@OptionGroup var curve: CurveOptions`), also as FI_CURVE_SECRET,
/// FI_CURVE_ALLOW and FI_CURVE_SERVER. With none of them the process speaks plaintext; with `--curve-secret`
/// every tcp socket it binds or connects uses CURVE (inproc stays plain).
public struct CurveOptions: ParsableArguments, Sendable {
    /// For `EnvOptions.merge(knownFlags:)`.
    public static let knownFlags = ["--curve-secret", "--curve-allow", "--curve-server"]

    @Option(name: .customLong("curve-secret"),
            help: "This process's CURVE secret key file (fi keys generate): turns on CURVE for every tcp socket.")
    public var curveSecret: String?
    @Option(name: .customLong("curve-allow"), help: "Folder of client public keys (NAME.key) that this process's tcp binds admit.")
    public var curveAllow: String?
    @Option(name: .customLong("curve-server"), help: "Public key file (NAME.key) of the servers this process connects to.")
    public var curveServer: String?

    public init() {}

    public init(secret: String?, allow: String? = nil, server: String? = nil) {
        curveSecret = secret; curveAllow = allow; curveServer = server
    }

    public func validate() throws {
        if curveSecret == nil, curveAllow != nil || curveServer != nil {
            throw ValidationError("--curve-allow and --curve-server need --curve-secret (FI_CURVE_SECRET): the key this process signs with")
        }
    }

    /// The flags as given, for commands that re-parse their arguments after merging the environment.
    public var arguments: [String] {
        [("--curve-secret", curveSecret), ("--curve-allow", curveAllow), ("--curve-server", curveServer)]
            .flatMap { flag, value in value.map { [flag, $0] } ?? [] }
    }

    /// Loads the key files and secures `context`; returns false (and leaves the context plain) without
    /// `--curve-secret`. A bad key file is a `CurveKeyError` naming the file.
    @discardableResult
    public func apply(to context: BusContext = .shared) throws -> Bool {
        try validate()
        guard let secret = curveSecret else { return false }
        func load<T>(_ flag: String, _ body: () throws(CurveKeyError) -> T) throws -> T {
            do { return try body() } catch { throw CurveOptionsError(flag: flag, error: error) }
        }
        let identity = try load("--curve-secret") { () throws(CurveKeyError) in try CurveKeyPair(secret: CurveKeyFile.readSecret(secret)) }
        let allowed = try curveAllow.map { dir in try load("--curve-allow") { () throws(CurveKeyError) in try CurveKeyFile.readAllowList(dir) } }
        let server = try curveServer.map { file in try load("--curve-server") { () throws(CurveKeyError) in try CurveKeyFile.readPublic(file) } }
        try context.secure(CurveSecurity(identity: identity, allowed: allowed, serverKey: server))
        return true
    }
}

/// A bad key file behind one of the CURVE flags: names the flag, its variable and the file.
public struct CurveOptionsError: Error, Equatable, CustomStringConvertible {
    public var flag: String
    public var error: CurveKeyError

    public var description: String { "\(flag) (\(EnvOptions.variable(for: flag))): \(error)" }
}
