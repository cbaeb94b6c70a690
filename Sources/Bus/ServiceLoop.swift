import CZMQ
import Foundation

/// The actor pattern of the ZeroMQ guide: one OS thread owns some sockets, polls them, and hands each
/// incoming multipart message to that socket's handler; timers drive heartbeats and deadlines.
///
/// Threading contract:
/// - `add`, `remove`, `every`, `after`, `cancel` run either before `start()` or on the loop thread
///   (inside a handler, timer or posted work). Handlers and timers always run on the loop thread.
/// - `post`, `perform` and `stop` may be called from any thread or task; `perform` never blocks the
///   cooperative pool (the loop is woken through a pipe, the result comes back through a continuation).
/// - `stop()` closes every socket that was added.
///
/// A service is a `final class` whose state only its loop touches; mark it `@unchecked Sendable` with
/// that reason, and reach it from async code through `loop.perform { ... }`:
///
///     final class Manager: @unchecked Sendable {  // safe: state only touched on `loop`
///         let loop = ServiceLoop(name: "cluster-manager")
///         var live = PeerLiveness<[UInt8]>()
///         init(endpoint: String) throws {
///             let router = try Socket(.router)
///             try router.set(.routerMandatory(true))
///             try router.bind(endpoint)
///             loop.add(router) { [weak self] socket, frames in          // [peer id, envelope frames...]
///                 let env = try Envelope.decode(received: frames, prefixCount: 1)
///                 self?.live.heard(from: frames[0])
///                 try socket.send(Envelope(sender: "cm", replyTo: env.seq, body: ...), prefix: [frames[0]])
///             }
///             loop.every(.seconds(1)) { [weak self] in _ = self?.live.expire() }
///             loop.start()
///         }
///         func memberCount() async throws -> Int { try await loop.perform { self.live.peers.count } }
///     }
public final class ServiceLoop: @unchecked Sendable {  // safe: mutable state is loop-confined or behind `lock`
    public typealias Handler = (Socket, [[UInt8]]) throws -> Void

    public struct TimerID: Hashable, Sendable { let raw: Int }

    public let name: String
    /// Called on the loop thread when a handler, timer or posted work throws. Default: print to stderr.
    public var onError: (Error) -> Void

    /// At most this many messages are taken from one socket per poll, so one busy socket cannot starve the rest.
    public var batchLimit = 64

    private final class Entry {
        let socket: Socket
        let handler: Handler
        var active = true
        init(_ socket: Socket, _ handler: @escaping Handler) { self.socket = socket; self.handler = handler }
    }

    private struct Timer {
        let id: Int
        var due: UInt64
        let interval: UInt64?
        let body: () throws -> Void
    }

    // Loop-confined state.
    private var entries: [Entry] = []
    private var timers: [Timer] = []
    private var nextTimerID = 0

    // Shared state, behind `lock`.
    private let lock = NSLock()
    private var queue: [() -> Void] = []
    private var stopRequested = false
    private var running = false
    private var loopThread: pthread_t?
    private let finished = DispatchSemaphore(value: 0)

    private let wakeRead: Int32
    private let wakeWrite: Int32

    public init(name: String) {
        self.name = name
        self.onError = { error in FileHandle.standardError.write(Data("[\(name)] \(error)\n".utf8)) }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { fatalError("pipe() failed: out of file descriptors") }
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    deinit {
        for e in entries { e.socket.close() }
        close(wakeRead)
        close(wakeWrite)
    }

    // MARK: registration (before start, or on the loop thread)

    /// Hands `socket` to the loop: each incoming message goes to `handler` on the loop thread.
    public func add(_ socket: Socket, _ handler: @escaping Handler) {
        entries.append(Entry(socket, handler))
    }

    /// Stops watching `socket` (and closes it unless `close` is false).
    public func remove(_ socket: Socket, close: Bool = true) {
        for e in entries where e.socket === socket { e.active = false }
        entries.removeAll { $0.socket === socket }
        if close { socket.close() }
    }

    /// Runs `body` every `interval`, first after one interval.
    @discardableResult
    public func every(_ interval: Duration, _ body: @escaping () throws -> Void) -> TimerID {
        let ns = max(1, interval.nanoseconds)
        return addTimer(due: Self.now() + ns, interval: ns, body)
    }

    /// Runs `body` once after `delay`.
    @discardableResult
    public func after(_ delay: Duration, _ body: @escaping () throws -> Void) -> TimerID {
        addTimer(due: Self.now() + max(0, delay.nanoseconds), interval: nil, body)
    }

    public func cancel(_ timer: TimerID) {
        timers.removeAll { $0.id == timer.raw }
    }

    private func addTimer(due: UInt64, interval: UInt64?, _ body: @escaping () throws -> Void) -> TimerID {
        nextTimerID += 1
        timers.append(Timer(id: nextTimerID, due: due, interval: interval, body: body))
        return TimerID(raw: nextTimerID)
    }

    // MARK: cross-thread API

    public var isRunning: Bool {
        lock.lock(); defer { lock.unlock() }
        return running
    }

    /// Starts the loop thread. Call once.
    public func start() {
        lock.lock()
        guard !running, !stopRequested else { lock.unlock(); return }
        running = true
        lock.unlock()
        let thread = Thread { [self] in run() }
        thread.name = name
        thread.start()
    }

    /// Runs `work` on the loop thread soon. Returns false (and drops `work`) if the loop is stopping.
    @discardableResult
    public func post(_ work: @escaping @Sendable () -> Void) -> Bool {
        lock.lock()
        guard !stopRequested else { lock.unlock(); return false }
        queue.append(work)
        lock.unlock()
        wake()
        return true
    }

    /// Runs `work` on the loop thread and returns its result to async code (throws `.stopped` if the loop stops first).
    public func perform<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<T, Error>) in
            lock.lock()
            guard !stopRequested else {
                lock.unlock()
                cont.resume(throwing: BusError.stopped)
                return
            }
            queue.append { cont.resume(with: Result { try work() }) }
            lock.unlock()
            wake()
        }
    }

    /// Asks the loop to finish, then waits until it has closed its sockets (bounded by LINGER).
    /// Called on the loop thread itself, it only asks.
    public func stop() {
        lock.lock()
        let wasRunning = running
        let alreadyStopping = stopRequested
        stopRequested = true
        let onLoop = loopThread.map { pthread_equal($0, pthread_self()) != 0 } ?? false
        lock.unlock()
        guard wasRunning else { return }
        wake()
        if onLoop || alreadyStopping { return }
        finished.wait()
        finished.signal()  // let a second waiter through too
    }

    private func wake() {
        var b: UInt8 = 1
        _ = write(wakeWrite, &b, 1)  // a full pipe already means "wake up"
    }

    // MARK: the loop

    private func run() {
        lock.lock(); loopThread = pthread_self(); lock.unlock()
        while true {
            runDueTimers()
            let work: [() -> Void]
            lock.lock()
            work = queue
            queue.removeAll()
            let stopping = stopRequested
            lock.unlock()
            for w in work { w() }
            if stopping { break }

            var poller = Poller()
            poller.add(fd: wakeRead)
            entries.removeAll { $0.socket.isClosed }  // closed behind our back: stop polling it
            let polled = entries
            for e in polled { poller.add(e.socket) }
            let timeout = nextTimeoutMilliseconds()
            do {
                _ = try poller.poll(timeoutMilliseconds: timeout)
            } catch {
                onError(error)
                break
            }
            if poller.isReadable(0) { drainWakePipe() }
            for (i, e) in polled.enumerated() where poller.isReadable(i + 1) {
                dispatch(e)
            }
        }
        // Fail outstanding async work, then close everything we own.
        lock.lock()
        let leftover = queue
        queue.removeAll()
        lock.unlock()
        for w in leftover { w() }
        for e in entries { e.socket.close() }
        entries.removeAll()
        timers.removeAll()
        lock.lock(); running = false; lock.unlock()
        finished.signal()
    }

    private func dispatch(_ e: Entry) {
        for _ in 0..<batchLimit {
            guard e.active else { return }
            let frames: [[UInt8]]
            do {
                frames = try e.socket.receive(dontWait: true)
            } catch BusError.wouldBlock {
                return
            } catch {
                onError(error)
                return
            }
            do { try e.handler(e.socket, frames) } catch { onError(error) }
        }
    }

    private func runDueTimers() {
        let now = Self.now()
        let due = timers.filter { $0.due <= now }.map(\.id)
        for id in due {
            guard let i = timers.firstIndex(where: { $0.id == id }) else { continue }  // cancelled by an earlier timer
            let t = timers[i]
            if let interval = t.interval {
                timers[i].due = t.due + interval > now ? t.due + interval : now + interval  // skip missed ticks
            } else {
                timers.remove(at: i)
            }
            do { try t.body() } catch { onError(error) }
        }
    }

    private func nextTimeoutMilliseconds() -> Int {
        guard let next = timers.map(\.due).min() else { return -1 }
        let now = Self.now()
        guard next > now else { return 0 }
        return Int((next - now + 999_999) / 1_000_000)
    }

    private func drainWakePipe() {
        var buf = [UInt8](repeating: 0, count: 64)
        while read(wakeRead, &buf, buf.count) > 0 {}
    }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

extension Duration {
    var nanoseconds: UInt64 {
        let c = components
        guard c.seconds >= 0 else { return 0 }
        return UInt64(c.seconds) * 1_000_000_000 + UInt64(max(0, c.attoseconds) / 1_000_000_000)
    }
}
