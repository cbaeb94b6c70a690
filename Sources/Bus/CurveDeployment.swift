import Foundation

/// The key files of one deployment on one machine (`fi run --processes`, tests): one `server` pair that every
/// binding service signs with, and one pair per client process. The folder doubles as the allow-list (only
/// NAME.key files count), so every generated identity is admitted and nothing else is.
public struct CurveDeployment: Sendable {
    public static let serverName = "server"
    public let directory: URL

    /// Generates fresh pairs into `directory` (made empty first: keys of an earlier run are not reused).
    public static func create(in directory: URL, clients: [String]) throws -> CurveDeployment {
        try? FileManager.default.removeItem(at: directory)
        for name in [serverName] + clients { try CurveKeyFile.generate(name: name, in: directory) }
        return CurveDeployment(directory: directory)
    }

    public init(directory: URL) { self.directory = directory }

    public func secretFile(_ name: String) -> String { directory.appendingPathComponent("\(name).\(CurveKeyFile.secretExtension)").path }
    public func publicFile(_ name: String) -> String { directory.appendingPathComponent("\(name).\(CurveKeyFile.publicExtension)").path }

    /// Flags of a service: it binds (admitting every key here) and may dial other services.
    public var serviceArguments: [String] {
        ["--curve-secret", secretFile(Self.serverName), "--curve-allow", directory.path, "--curve-server", publicFile(Self.serverName)]
    }

    /// Flags of the client process `name` (it only dials services).
    public func clientArguments(_ name: String) -> [String] {
        ["--curve-secret", secretFile(name), "--curve-server", publicFile(Self.serverName)]
    }

    /// The same settings for a context in this process (tests, tools).
    public func security(as name: String, binds: Bool = false) throws -> CurveSecurity {
        try CurveSecurity.load(secret: secretFile(name), allow: binds ? directory.path : nil, server: publicFile(Self.serverName))
    }
}
