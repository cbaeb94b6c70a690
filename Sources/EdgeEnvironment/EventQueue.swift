/// A min-priority queue of events keyed by time; events at the same time come out in
/// the order they were scheduled (FIFO by insertion sequence). A binary heap: O(log n).
public struct EventQueue<Event> {
    public struct Entry {
        public var time: Double
        public var sequence: UInt64
        public var event: Event
    }

    private var heap: [Entry] = []
    private var nextSequence: UInt64 = 0

    public init() {}

    public var count: Int { heap.count }
    public var isEmpty: Bool { heap.isEmpty }
    /// Time of the earliest event, if any.
    public var nextTime: Double? { heap.first?.time }

    public mutating func push(_ event: Event, at time: Double) {
        heap.append(Entry(time: time, sequence: nextSequence, event: event))
        nextSequence &+= 1
        siftUp(heap.count - 1)
    }

    /// Removes and returns the earliest event.
    public mutating func pop() -> Entry? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        if !heap.isEmpty { siftDown(0) }
        return top
    }

    private func before(_ i: Int, _ j: Int) -> Bool {
        heap[i].time < heap[j].time || (heap[i].time == heap[j].time && heap[i].sequence < heap[j].sequence)
    }

    private mutating func siftUp(_ index: Int) {
        var child = index
        while child > 0 {
            let parent = (child - 1) / 2
            guard before(child, parent) else { return }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ index: Int) {
        var parent = index
        while true {
            let left = 2 * parent + 1, right = left + 1
            var first = parent
            if left < heap.count && before(left, first) { first = left }
            if right < heap.count && before(right, first) { first = right }
            if first == parent { return }
            heap.swapAt(parent, first)
            parent = first
        }
    }
}

extension EventQueue: Sendable where Event: Sendable {}
extension EventQueue.Entry: Sendable where Event: Sendable {}

/// Discrete-event simulation time: events are accounted, not slept, so thousands of
/// devices simulate in well under a second. `now` only moves forward, to each event popped.
public struct VirtualClock<Event> {
    public private(set) var now: Double
    private var queue = EventQueue<Event>()

    public init(start: Double = 0) { now = start }

    public var pendingCount: Int { queue.count }

    /// Schedules an event at an absolute time in seconds. A time in the past is
    /// clamped to `now`, so the clock never runs backwards.
    public mutating func schedule(at time: Double, _ event: Event) {
        queue.push(event, at: max(time, now))
    }

    /// Schedules an event `delay` seconds from now.
    public mutating func schedule(after delay: Double, _ event: Event) {
        schedule(at: now + max(delay, 0), event)
    }

    /// Pops the earliest event and advances `now` to its time.
    public mutating func next() -> (time: Double, event: Event)? {
        guard let entry = queue.pop() else { return nil }
        now = entry.time
        return (entry.time, entry.event)
    }

    /// Pops events in order until the queue is empty or the next one is after `deadline`.
    /// The handler may schedule more events. Returns how many were handled.
    @discardableResult
    public mutating func run(until deadline: Double = .infinity,
                             _ handle: (inout VirtualClock<Event>, Double, Event) throws -> Void) rethrows -> Int {
        var handled = 0
        while let t = queue.nextTime, t <= deadline, let (time, event) = next() {
            try handle(&self, time, event)
            handled += 1
        }
        return handled
    }
}

extension VirtualClock: Sendable where Event: Sendable {}

/// When each device's update reaches the aggregator, given per-device compute and uplink
/// times in seconds, all starting at `start`. Sorted by arrival (ties: input order).
public func updateArrivals(start: Double, devices: [NodeID], computeSeconds: [NodeID: Double],
                           uplinkSeconds: [NodeID: Double]) -> [(device: NodeID, arrival: Double)] {
    enum Step { case computed(NodeID), arrived(NodeID) }
    var clock = VirtualClock<Step>(start: start)
    for device in devices { clock.schedule(after: computeSeconds[device] ?? 0, .computed(device)) }
    var arrivals: [(device: NodeID, arrival: Double)] = []
    clock.run { clock, time, step in
        switch step {
        case .computed(let device): clock.schedule(after: uplinkSeconds[device] ?? 0, .arrived(device))
        case .arrived(let device): arrivals.append((device, time))
        }
    }
    return arrivals
}
