import CZMQ

/// Keeps a `[UInt8]` alive while libzmq sends from its storage.
private final class FrameBox {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
}

enum ZeroCopy {
    /// Points `msg` at the array's storage; libzmq calls `release` (from any thread) when it is done.
    /// The box holds an immutable copy of the array value, so its contiguous storage cannot move or be
    /// freed until the release, which drops the box.
    static func initMessage(_ msg: UnsafeMutablePointer<zmq_msg_t>, _ frame: [UInt8]) {
        let box = FrameBox(frame)
        let data = box.bytes.withUnsafeBufferPointer { UnsafeMutableRawPointer(mutating: $0.baseAddress!) }
        let hint = Unmanaged.passRetained(box).toOpaque()
        zmq_msg_init_data(msg, data, frame.count, { _, hint in
            if let hint { Unmanaged<AnyObject>.fromOpaque(hint).release() }
        }, hint)
    }
}
