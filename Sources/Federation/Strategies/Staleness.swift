/// s(τ): how much an update that is τ versions old still counts (Xie et al., FedAsync).
public enum StalenessFunction: Sendable, Equatable, Codable {
    /// s = 1
    case constant
    /// s = (τ + 1)^−a
    case polynomial(a: Double)
    /// s = 1 if τ ≤ b, else 1 / (a(τ − b) + 1)
    case hinge(a: Double, b: Double)

    public func weight(staleness tau: UInt64) -> Double {
        let t = Double(tau)
        switch self {
        case .constant:
            return 1
        case let .polynomial(a):
            return _pow(t + 1, -a)
        case let .hinge(a, b):
            return t <= b ? 1 : 1 / (a * (t - b) + 1)
        }
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func _pow(_ x: Double, _ y: Double) -> Double { Glibc.pow(x, y) }
#elseif canImport(Darwin)
import Darwin
@inline(__always) func _pow(_ x: Double, _ y: Double) -> Double { Darwin.pow(x, y) }
#endif
