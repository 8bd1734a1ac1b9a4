import Foundation
import Synchronization

/// CPU-bound work over a large array split across the machine's cores, results in the array's order:
/// a findings page (500 rows mapped and written as JSON) takes its latency down by the core count
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

    /// `[e, …]` as `FastJSON.array` writes it, each part written at once.
    public static func writeArray<T: JSONWritable & Sendable>(_ v: [T], into out: inout [UInt8]) {
        guard v.count >= minimum, cores > 1 else { return FastJSON.array(v, into: &out) }
        let parts = chunks(v.count)
        let written = Mutex<[Int: [UInt8]]>([:])
        DispatchQueue.concurrentPerform(iterations: parts.count) { c in
            var s = [UInt8]()
            s.reserveCapacity(parts[c].count * 1024)
            for i in parts[c] {
                if i > parts[c].lowerBound { s.append(0x2C) }
                v[i].writeJSON(into: &s)
            }
            written.withLock { $0[c] = s }
        }
        out.append(0x5B)
        written.withLock { all in
            for c in 0..<parts.count {
                if c > 0 { out.append(0x2C) }
                out.append(contentsOf: all[c]!)
            }
        }
        out.append(0x5D)
    }

    /// `count` split into one contiguous, non-empty range per core.
    static func chunks(_ count: Int) -> [Range<Int>] {
        let n = min(cores, count)
        let size = (count + n - 1) / n
        return stride(from: 0, to: count, by: size).map { $0..<min(count, $0 + size) }
    }
}
