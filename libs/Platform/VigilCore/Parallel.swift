import Foundation
import Synchronization

/// CPU-bound work over a large array split across the machine's cores, results in the array's order:
/// a findings page (500 rows rendered to JSON) takes its latency down by the core count
/// while the cores are free. Small arrays run inline; the calling thread takes part in the work.
public enum Parallel {
    /// Below this many elements the work runs inline (splitting costs more than it saves).
    public static let minimum = 128
    static let cores = max(1, min(4, ProcessInfo.processInfo.activeProcessorCount))

    /// `f` over `v`, in order; the first error any part met is thrown.
    public static func map<T: Sendable, R: Sendable>(_ v: [T], _ f: @Sendable (T) throws -> R) throws -> [R] {
        guard v.count >= minimum, cores > 1 else { return try v.map(f) }
        let parts = chunks(v.count)
        let results = Mutex<[Int: Result<[R], any Error>]>([:])
        DispatchQueue.concurrentPerform(iterations: parts.count) { c in
            let r = Result { try v[parts[c]].map(f) }
            results.withLock { $0[c] = r }
        }
        return try results.withLock { all in try (0..<parts.count).flatMap { try all[$0]!.get() } }
    }

    /// `count` split into one contiguous, non-empty range per core.
    static func chunks(_ count: Int) -> [Range<Int>] {
        let n = min(cores, count)
        let size = (count + n - 1) / n
        return stride(from: 0, to: count, by: size).map { $0..<min(count, $0 + size) }
    }
}
