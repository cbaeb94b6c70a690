import Foundation

/// A few trainers (one per core by default) running the tasks of whichever devices were sampled, in submission
/// order. Each trainer has its own thread; a job gets a trainer for as long as it runs, so the adapter copy and
/// optimizer state of a task live only while it trains.
public final class TrainerPool: @unchecked Sendable {  // safe: `jobs` and `stopping` only under `condition`
    public typealias Job = (any LocalTrainer) -> Void

    public let trainers: [any LocalTrainer]
    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var head = 0
    private var stopping = false
    private var threads: [Thread] = []
    private let running = DispatchGroup()

    public init(_ trainers: [any LocalTrainer], name: String = "trainer") {
        precondition(!trainers.isEmpty, "a trainer pool needs at least one trainer")
        self.trainers = trainers
        for (i, t) in trainers.enumerated() {
            running.enter()
            let thread = Thread { [unowned self] in work(t); running.leave() }
            thread.name = "\(name)-\(i)"
            thread.stackSize = 8 << 20
            threads.append(thread)
            thread.start()
        }
    }

    deinit { stop() }

    public var count: Int { trainers.count }

    /// Queues `job`; it runs on the first free trainer.
    public func submit(_ job: @escaping Job) {
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Runs `body` on a free trainer and waits for its result (callers that are not a service loop).
    public func run<T>(_ body: @escaping (any LocalTrainer) throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: Result<T, Error>!
        submit { t in result = Result { try body(t) }; done.signal() }
        done.wait()
        return try result.get()
    }

    /// Drops the queued jobs, waits for the running ones (the process may exit right after) and ends the threads.
    public func stop() {
        condition.lock()
        stopping = true
        jobs = []; head = 0
        condition.broadcast()
        condition.unlock()
        if !threads.contains(where: { $0 == Thread.current }) { running.wait() }
    }

    private func work(_ trainer: any LocalTrainer) {
        while true {
            condition.lock()
            while head == jobs.count && !stopping { condition.wait() }
            if stopping { condition.unlock(); return }
            let job = jobs[head]
            head += 1
            if head > 1024 && head * 2 > jobs.count { jobs.removeFirst(head); head = 0 }
            condition.unlock()
            job(trainer)
        }
    }
}
