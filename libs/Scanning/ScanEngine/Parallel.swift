import Foundation
import VigilCore

/// Bounded parallelism on dedicated threads: collectors block on network I/O, so they must not
/// occupy the cooperative pool or depend on how many threads Dispatch is willing to start.
public enum Parallel {
    /// Maps `items` with at most `width` threads; results keep input order. The first error is rethrown
    /// after all started work finished.
    public static func map<T, R>(_ items: [T], width: Int = 8, _ body: @escaping (T) throws -> R) throws -> [R] {
        if items.isEmpty { return [] }
        if items.count == 1 { return [try body(items[0])] }
        let work = ParallelWork(items, body)
        let n = min(width, items.count)
        for _ in 0..<n {
            let t = Thread { work.loop() }
            t.stackSize = 1 << 20
            t.start()
        }
        for _ in 0..<n { work.done.wait() }
        return try work.results.map { try $0!.get() }
    }

    /// Runs blocking work on a fresh thread and awaits it.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { cont in
            let t = Thread { cont.resume(with: Result { try body() }) }
            t.stackSize = 1 << 20
            t.start()
        }
    }
}

/// The shared state of one `Parallel.map`: the next item to take and the results so far.
///
/// `@unchecked Sendable` is safe because `next` and `results` are read and written only under `lock`,
/// `items` and `body` are never mutated, and `map` reads `results` only after every thread signalled `done`.
final class ParallelWork<T, R>: @unchecked Sendable {
    let lock = NSLock()
    let items: [T]
    let body: (T) throws -> R
    var results: [Result<R, any Error>?]
    var next = 0
    let done = DispatchSemaphore(value: 0)
    init(_ items: [T], _ body: @escaping (T) throws -> R) {
        self.items = items
        self.body = body
        results = Array(repeating: nil, count: items.count)
    }
    func loop() {
        while true {
            lock.lock()
            let i = next
            next += 1
            lock.unlock()
            if i >= items.count { break }
            let r = Result { try body(items[i]) }
            lock.lock()
            results[i] = r
            lock.unlock()
        }
        done.signal()
    }
}
