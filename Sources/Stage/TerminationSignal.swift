import Dispatch
import Foundation

/// Blocks the calling thread until SIGINT or SIGTERM (for the service executables).
public func waitForTerminationSignal() {
    let done = DispatchSemaphore(value: 0)
    var sources: [DispatchSourceSignal] = []
    for sig in [SIGINT, SIGTERM] {
        signal(sig, SIG_IGN)
        let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        src.setEventHandler { done.signal() }
        src.resume()
        sources.append(src)
    }
    done.wait()
    sources.forEach { $0.cancel() }
}
