import CZMQ

/// Waits on several sockets (and plain file descriptors) at once: zmq_poll with a timeout.
public struct Poller {
    private var items: [zmq_pollitem_t] = []
    private var sockets: [Socket?] = []  // keeps the sockets alive while polled

    public init() {}

    public var count: Int { items.count }

    /// Watches `socket` for incoming messages; returns its index for `isReadable`.
    @discardableResult
    /// A closed socket is never reported ready.
    public mutating func add(_ socket: Socket) -> Int {
        guard socket.rawHandle != nil else { return add(fd: -1) }
        items.append(zmq_pollitem_t(socket: socket.rawHandle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0))
        sockets.append(socket)
        return items.count - 1
    }

    /// Watches a file descriptor for readability (e.g. a wake-up pipe).
    @discardableResult
    public mutating func add(fd: Int32) -> Int {
        items.append(zmq_pollitem_t(socket: nil, fd: fd, events: Int16(ZMQ_POLLIN), revents: 0))
        sockets.append(nil)
        return items.count - 1
    }

    /// Waits up to `timeoutMilliseconds` (-1 forever, 0 just checks); returns how many items are ready.
    /// An interrupted wait (EINTR) returns 0.
    public mutating func poll(timeoutMilliseconds: Int) throws -> Int {
        let n = items.count
        let rc = items.withUnsafeMutableBufferPointer { zmq_poll($0.baseAddress, Int32(n), timeoutMilliseconds) }
        if rc < 0 {
            if zmq_errno() == EINTR { return 0 }
            throw BusError.last("zmq_poll")
        }
        return Int(rc)
    }

    public func isReadable(_ index: Int) -> Bool {
        items[index].revents & Int16(ZMQ_POLLIN) != 0
    }
}
