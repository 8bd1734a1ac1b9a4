import Foundation
import Synchronization
import VigilCore

/// Whether a workspace has any webhook endpoint (or channel) at all, cached for events that happened
/// well before the answer was read. An endpoint created before an event committed before that event
/// did, so a read taken after the event (plus a margin for clocks) already sees it; newer events always
/// read again. Only "nothing to do" short-circuits: when something exists, the exact query runs.
/// This keeps bulk backlogs (a million `finding.opened` events for a workspace without endpoints) from
/// costing a database round trip each.
final class PresenceCache: Sendable {
    private struct Entry { var readAt: Date; var present: Bool }
    private let entries = Mutex<[String: Entry]>([:])
    let margin: TimeInterval

    init(margin: TimeInterval = 2) { self.margin = margin }

    func present(tenant: String, occurredAt: String?, read: () async throws -> Bool) async throws -> Bool {
        if let occurred = occurredAt.flatMap(Timestamp.parse), let e = entries.withLock({ $0[tenant] }),
           occurred < e.readAt.addingTimeInterval(-margin) {
            return e.present
        }
        let readAt = Date()
        let present = try await read()
        entries.withLock { all in
            if all.count > 100_000 { all.removeAll() }
            if (all[tenant]?.readAt ?? .distantPast) < readAt { all[tenant] = Entry(readAt: readAt, present: present) }
        }
        return present
    }
}
