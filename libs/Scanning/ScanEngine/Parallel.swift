import Foundation

/// Bounded fan-out with structured concurrency: collectors call an API per resource, and a part must not
/// open more requests at once than the account's throttling and the connection pool allow.
public enum Concurrently {
    /// Maps `items` with at most `width` calls in flight; results keep input order. The first error
    /// cancels the calls still running and is rethrown.
    public static func map<T: Sendable, R: Sendable>(
        _ items: [T], width: Int = 8, _ body: @escaping @Sendable (T) async throws -> R
    ) async throws -> [R] {
        if items.isEmpty { return [] }
        if items.count == 1 { return [try await body(items[0])] }
        return try await withThrowingTaskGroup(of: (Int, R).self) { group in
            var results = [R?](repeating: nil, count: items.count)
            var next = 0
            for _ in 0..<min(max(1, width), items.count) {
                let i = next
                group.addTask { (i, try await body(items[i])) }
                next += 1
            }
            while let (i, r) = try await group.next() {
                results[i] = r
                if next < items.count {
                    let j = next
                    group.addTask { (j, try await body(items[j])) }
                    next += 1
                }
            }
            return results.map { $0! }
        }
    }
}
