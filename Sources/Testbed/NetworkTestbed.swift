import Foundation

/// A testbed network: one Linux network namespace per host, joined by veth pairs to a bridge that lives in a
/// namespace of its own, plus one veth from the caller's namespace (the driver: router, clients) into the bridge.
/// Each host shapes what it sends with htb on its interface, one class per destination host at that link's rate
/// (`tc class change` re-shapes a link while services run). Names carry a random tag, so testbeds never collide;
/// `teardown` deletes everything it made (deleting a namespace removes its veth pairs).
public final class NetworkTestbed: @unchecked Sendable {  // safe: mutated only by the caller's thread (setup, rate changes, teardown)
    public static let ipTool = Shell.which("ip")
    public static let tcTool = Shell.which("tc")
    public static let prefix = "fitb-"

    public let spec: TestbedSpec
    public let tag: String
    /// "10.a.b": hosts are 10.a.b.2…, the driver is 10.a.b.1.
    public let subnet: String
    private(set) var made: [String] = []
    private var rates: [String: Double] = [:]

    public init(spec: TestbedSpec, tag: String? = nil) throws {
        guard geteuid() == 0 else { throw TestbedError.notRoot }
        self.spec = spec
        let t = tag ?? String(format: "%06x", UInt32.random(in: 0..<0xFF_FFFF))
        self.tag = t
        let n = Int(t, radix: 16) ?? 0
        subnet = "10.\(200 + n % 50).\((n / 50) % 250)"
        do { try build() } catch {
            teardown()
            throw error
        }
    }

    public var bridgeNamespace: String { "\(Self.prefix)\(tag)-br" }
    public func namespace(_ host: String) -> String { "\(Self.prefix)\(tag)-\(host)" }
    public var driverAddress: String { "\(subnet).1" }
    var driverInterface: String { "fitb\(tag)d" }

    public func address(_ host: String) -> String {
        "\(subnet).\((spec.hosts.firstIndex { $0.name == host } ?? 0) + 2)"
    }

    private func ip(_ args: [String]) throws { try Shell.run(Self.ipTool, args) }
    private func tc(_ host: String, _ args: [String]) throws { try Shell.run(Self.ipTool, ["netns", "exec", namespace(host), Self.tcTool] + args) }

    private func build() throws {
        let br = bridgeNamespace
        try ip(["netns", "add", br]); made.append(br)
        try ip(["-n", br, "link", "set", "lo", "up"])
        try ip(["-n", br, "link", "add", "br0", "type", "bridge"])
        try ip(["-n", br, "link", "set", "br0", "up"])
        // The driver's leg: its end stays in our namespace with the subnet's first address.
        try ip(["link", "add", driverInterface, "type", "veth", "peer", "name", "drv", "netns", br])
        try ip(["-n", br, "link", "set", "drv", "master", "br0", "up"])
        try ip(["addr", "add", "\(driverAddress)/24", "dev", driverInterface])
        try ip(["link", "set", driverInterface, "up"])
        for (i, h) in spec.hosts.enumerated() {
            let ns = namespace(h.name)
            try ip(["netns", "add", ns]); made.append(ns)
            try ip(["-n", br, "link", "add", "h\(i)", "type", "veth", "peer", "name", "eth0", "netns", ns])
            try ip(["-n", br, "link", "set", "h\(i)", "master", "br0", "up"])
            try ip(["-n", ns, "link", "set", "lo", "up"])
            // Segments of at most one MTU reach the shaper, so a rate holds for small messages too.
            try? ip(["-n", ns, "link", "set", "eth0", "gso_max_size", "1500"])
            try ip(["-n", ns, "addr", "add", "\(address(h.name))/24", "dev", "eth0"])
            try ip(["-n", ns, "link", "set", "eth0", "up"])
            try shape(h.name)
        }
    }

    /// htb on the host's interface: class 1:1 (unshaped 10 Gbit/s) for the driver and unlisted traffic, and class
    /// 1:(10+j) for what goes to host j, at the link's rate.
    private func shape(_ host: String) throws {
        try tc(host, ["qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "1", "r2q", "1"])
        try tc(host, ["class", "add", "dev", "eth0", "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit"])
        for (j, peer) in spec.hosts.enumerated() where peer.name != host {
            let rate = spec.link(host, peer.name).rateBitsPerSecond
            try tc(host, ["class", "add", "dev", "eth0", "parent", "1:", "classid", "1:\(10 + j)", "htb"] + Self.rateArgs(rate))
            try tc(host, ["filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "prio", "1", "u32",
                          "match", "ip", "dst", "\(address(peer.name))/32", "flowid", "1:\(10 + j)"])
            rates["\(host)->\(peer.name)"] = rate
        }
    }

    /// htb rate with small bursts (two MTUs or 2 ms of the rate), so a message pays its transfer time.
    static func rateArgs(_ bps: Double) -> [String] {
        let burst = max(3028, Int(bps * 0.002 / 8))
        return ["rate", "\(Int(bps))bit", "burst", "\(burst)b", "cburst", "\(burst)b"]
    }

    /// Re-shapes the link from → to (what `from` sends to `to`) at once.
    public func setRate(from: String, to: String, bitsPerSecond: Double) throws {
        guard let j = spec.hosts.firstIndex(where: { $0.name == to }), spec.host(from) != nil, from != to else {
            throw TestbedError.badScenario("no link \(from) -> \(to)")
        }
        try tc(from, ["class", "change", "dev", "eth0", "parent", "1:", "classid", "1:\(10 + j)", "htb"] + Self.rateArgs(bitsPerSecond))
        rates["\(from)->\(to)"] = bitsPerSecond
    }

    /// The rate the kernel shapes from → to now.
    public func rate(from: String, to: String) -> Double? { rates["\(from)->\(to)"] }

    /// Deletes every namespace it made (their veths go with them, the driver's too).
    public func teardown() {
        for ns in made.reversed() { _ = try? Shell.run(Self.ipTool, ["netns", "del", ns]) }
        made.removeAll()
        _ = try? Shell.run(Self.ipTool, ["link", "del", driverInterface])  // only if the bridge namespace never existed
    }

    /// Deletes every testbed namespace and driver interface on this machine (left by a killed run).
    public static func cleanAll() throws -> [String] {
        var removed: [String] = []
        for line in try Shell.run(ipTool, ["netns", "list"]).split(separator: "\n") {
            let name = String(line.split(separator: " ").first ?? "")
            if name.hasPrefix(prefix) { _ = try? Shell.run(ipTool, ["netns", "del", name]); removed.append(name) }
        }
        for line in try Shell.run(ipTool, ["-o", "link", "show"]).split(separator: "\n") {
            let parts = line.split(separator: ":")
            guard parts.count > 1 else { continue }
            let name = parts[1].trimmingCharacters(in: .whitespaces).split(separator: "@").first.map(String.init) ?? ""
            if name.hasPrefix("fitb") { _ = try? Shell.run(ipTool, ["link", "del", name]); removed.append(name) }
        }
        return removed
    }
}
