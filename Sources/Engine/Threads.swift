import COpenBLAS
import Foundation

/// OpenBLAS threads: OPENBLAS_NUM_THREADS when set, otherwise 2 (the target edge box).
public enum BLASThreads {
    /// Applies the policy once; every model init calls it.
    public static func configure() { _ = applied }

    private static let applied: Bool = {
        if ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"] == nil { openblas_set_num_threads(2) }
        return true
    }()

    public static var count: Int { Int(openblas_get_num_threads()) }
}
