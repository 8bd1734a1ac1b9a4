import Foundation

/// Runs blocking C calls (cnats JetStream, libpq, argon2id) on Dispatch threads, never on
/// Swift's cooperative pool, and resumes the caller when done.
public enum Blocking {
    static let queue = DispatchQueue(label: "vigil.blocking", attributes: .concurrent)

    public static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { cont in queue.async { cont.resume(returning: body()) } }
    }

    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { cont in
            queue.async { cont.resume(with: Result { try body() }) }
        }
    }

    /// Runs on a given serial queue (one per libpq connection or pull consumer).
    public static func run<T: Sendable>(on q: DispatchQueue, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { cont in
            q.async { cont.resume(with: Result { try body() }) }
        }
    }
}

extension Result where Failure == any Error {
    /// The outcome of an async throwing call as a value.
    public init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
