import Foundation
import Testing
import VigilCore
@testable import NotifierService

@Suite struct PresenceCacheTests {
    final class Reads: @unchecked Sendable { var n = 0; var answer = false }

    @Test func oldEventsUseTheLastLookAndNewOnesLookAgain() async throws {
        let cache = PresenceCache(margin: 2)
        let reads = Reads()
        let read: () async throws -> Bool = { reads.n += 1; return reads.answer }
        let old = Timestamp.format(Date().addingTimeInterval(-60))
        #expect(try await cache.present(tenant: "t", occurredAt: old, read: read) == false)
        #expect(try await cache.present(tenant: "t", occurredAt: old, read: read) == false)
        #expect(reads.n == 1, "an event older than the last look is answered from it")
        // An endpoint appears; an event that happened now (after the last look) must see it.
        reads.answer = true
        #expect(try await cache.present(tenant: "t", occurredAt: Timestamp.format(Date()), read: read) == true)
        #expect(reads.n == 2)
        #expect(try await cache.present(tenant: "t", occurredAt: nil, read: read) == true)
        #expect(reads.n == 3, "no timestamp: always look")
        #expect(try await cache.present(tenant: "other", occurredAt: old, read: read) == true && reads.n == 4)
    }
}
