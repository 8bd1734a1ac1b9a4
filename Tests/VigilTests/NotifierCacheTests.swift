import Foundation
import Synchronization
import Testing

@testable import NotifierService

@Suite struct PresenceCacheTests {
    /// How often the presence read ran, and what it answers.
    final class Reads: Sendable {
        private let state = Mutex((n: 0, answer: false))
        var n: Int { state.withLock { $0.n } }
        var answer: Bool {
            get { state.withLock { $0.answer } }
            set { state.withLock { $0.answer = newValue } }
        }
        func bump() -> Bool {
            state.withLock {
                $0.n += 1
                return $0.answer
            }
        }
    }

    /// An event published long after it occurred (a relay that was down) is received after an
    /// endpoint was created, though it occurred before the last look: it must look again.
    @Test func anOldEventReceivedAfterTheLastLookLooksAgain() async throws {
        let cache = PresenceCache()
        let reads = Reads()
        let read: @Sendable () async throws -> Bool = { reads.bump() }
        #expect(try await cache.present(tenant: "t", receivedAt: Date(), read: read) == false)
        #expect(reads.n == 1)
        reads.answer = true  // an endpoint is created, then the delayed event is published and received
        #expect(try await cache.present(tenant: "t", receivedAt: Date(), read: read) == true)
        #expect(reads.n == 2)
    }

    @Test func eventsReceivedBeforeAReadShareItAndLaterOnesLookAgain() async throws {
        let cache = PresenceCache()
        let reads = Reads()
        let slowRead: @Sendable () async throws -> Bool = {
            try await Task.sleep(for: .milliseconds(50))
            return reads.bump()
        }
        // 32 events of one fetched batch (received together, all just now): one read between them.
        let received = Date()
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<32 {
                group.addTask { try await cache.present(tenant: "t", receivedAt: received, read: slowRead) }
            }
            for try await present in group { #expect(present == false) }
        }
        #expect(reads.n == 1)
        // Received before that read started: answered from it.
        #expect(try await cache.present(tenant: "t", receivedAt: received, read: slowRead) == false)
        #expect(reads.n == 1)
        // An endpoint appears; an event received after the last read must look again and see it.
        reads.answer = true
        let later = Date()
        #expect(try await cache.present(tenant: "t", receivedAt: later, read: slowRead) == true)
        #expect(reads.n == 2)
        // A failed read is not remembered: the next event looks again.
        struct Down: Error {}
        let failing: @Sendable () async throws -> Bool = { throw Down() }
        let after = Date()
        await #expect(throws: Down.self) { try await cache.present(tenant: "u", receivedAt: after, read: failing) }
        #expect(try await cache.present(tenant: "u", receivedAt: after, read: slowRead) == true)
        #expect(reads.n == 3)
    }
}
