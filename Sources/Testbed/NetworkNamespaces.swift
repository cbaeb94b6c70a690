import Foundation

/// Linux network namespaces for the testbed (ip netns, veth pairs, a bridge).
public enum NetworkNamespaces {
    public static let ipTool = Shell.which("ip")
    public static let tcTool = Shell.which("tc")
}
