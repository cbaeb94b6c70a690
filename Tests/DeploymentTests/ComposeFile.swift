import Foundation
import Yams

/// The parts of a docker-compose file that decide what runs: per service its command, environment,
/// volumes, working dir, dependencies, health check and profiles. Variables (`${X:-default}`) are
/// interpolated from a given environment the way docker-compose does it.
struct ComposeFile {
    struct Volume: Equatable {
        enum Source: Equatable { case named(String), bind(URL) }
        var source: Source
        var target: String
    }

    struct Service {
        var name: String
        var command: [String]
        var environment: [String: String]
        var volumes: [Volume]
        var workingDir: String?
        var dependsOn: [String: String]  // service -> condition
        var healthcheck: [String]?  // ["CMD", ...] or ["CMD-SHELL", "..."]
        var profiles: [String]
    }

    struct ParseError: Error, CustomStringConvertible {
        var description: String
    }

    var directory: URL
    var services: [String: Service]

    static func load(_ url: URL, variables: [String: String]) throws -> ComposeFile {
        let text = try String(contentsOf: url, encoding: .utf8)
        guard let root = try Yams.load(yaml: interpolate(text, variables)) as? [String: Any],
              let raw = root["services"] as? [String: Any] else { throw ParseError(description: "\(url.path): no services mapping") }
        let dir = url.deletingLastPathComponent()
        var services: [String: Service] = [:]
        for (name, value) in raw {
            guard let s = value as? [String: Any] else { throw ParseError(description: "service \(name) is not a mapping") }
            let env = (s["environment"] as? [String: Any] ?? [:]).mapValues { "\($0)" }
            let volumes = try (s["volumes"] as? [String] ?? []).map { try volume($0, relativeTo: dir) }
            var depends: [String: String] = [:]
            if let d = s["depends_on"] as? [String: Any] {
                for (k, v) in d { depends[k] = (v as? [String: Any])?["condition"] as? String ?? "service_started" }
            } else if let d = s["depends_on"] as? [String] {
                for k in d { depends[k] = "service_started" }
            }
            services[name] = Service(name: name, command: s["command"] as? [String] ?? [], environment: env, volumes: volumes,
                                     workingDir: s["working_dir"] as? String, dependsOn: depends,
                                     healthcheck: (s["healthcheck"] as? [String: Any])?["test"] as? [String],
                                     profiles: s["profiles"] as? [String] ?? [])
        }
        return ComposeFile(directory: dir, services: services)
    }

    /// `${X}`, `${X:-default}` (default also when X is empty), `${X-default}`, `$$` -> `$`.
    static func interpolate(_ text: String, _ variables: [String: String]) -> String {
        var out = ""
        var i = text.startIndex
        while i < text.endIndex {
            let c = text[i]
            let next = text.index(after: i)
            if c == "$", next < text.endIndex, text[next] == "$" {
                out.append("$"); i = text.index(after: next); continue
            }
            if c == "$", next < text.endIndex, text[next] == "{", let close = text[next...].firstIndex(of: "}") {
                let expr = String(text[text.index(after: next)..<close])
                if let r = expr.range(of: ":-") {
                    let v = variables[String(expr[..<r.lowerBound])] ?? ""
                    out += v.isEmpty ? String(expr[r.upperBound...]) : v
                } else if let r = expr.range(of: "-") {
                    out += variables[String(expr[..<r.lowerBound])] ?? String(expr[r.upperBound...])
                } else {
                    out += variables[expr] ?? ""
                }
                i = text.index(after: close); continue
            }
            out.append(c); i = next
        }
        return out
    }

    static func volume(_ spec: String, relativeTo dir: URL) throws -> Volume {
        let parts = spec.split(separator: ":").map(String.init)
        guard parts.count >= 2 else { throw ParseError(description: "volume '\(spec)' has no target") }
        let src = parts[0]
        if src.hasPrefix("/") || src.hasPrefix(".") || src.hasPrefix("~") {
            let url = src.hasPrefix("/") ? URL(fileURLWithPath: src) : URL(fileURLWithPath: src, relativeTo: dir).standardizedFileURL
            return Volume(source: .bind(url), target: parts[1])
        }
        return Volume(source: .named(src), target: parts[1])
    }

    /// Services of the default profile in an order where every dependency comes first.
    /// Dependencies first; `first` (and what they depend on) before the rest, which go in name order.
    func startOrder(profiles: Set<String> = [], first: [String] = []) throws -> [Service] {
        let active = services.values.filter { $0.profiles.isEmpty || !Set($0.profiles).isDisjoint(with: profiles) }
        var done: [String] = [], visiting: Set<String> = []
        func visit(_ name: String) throws {
            if done.contains(name) { return }
            guard let s = active.first(where: { $0.name == name }) else {
                throw ParseError(description: "a dependency '\(name)' is not an active service")
            }
            guard visiting.insert(name).inserted else { throw ParseError(description: "dependency cycle at \(name)") }
            for d in s.dependsOn.keys.sorted() { try visit(d) }
            done.append(name)
        }
        for s in first + active.map(\.name).sorted() { try visit(s) }
        return done.compactMap { services[$0] }
    }
}
