import Foundation
import Synchronization

/// Whether a workspace has any webhook endpoint (or channel) at all, answered from an earlier read
/// only when that read started after this process received the event. Whatever was committed before
/// the event was published had been committed before this process received it (one clock, no
/// skew), so such a read sees it. An event's own `occurred_at` proves nothing: a relay that was down,
/// or a publisher's retry, publishes an event long after it occurred, and a read made in between
/// may miss an endpoint created in between.
/// Reads are single-flight per workspace: the handlers of one fetched batch share one read, so a
/// live stream of `finding.opened` costs a read per batch, not per event. Only "nothing to do" is
/// ever short-circuited by callers: when something exists, the exact query runs.
final class PresenceCache: Sendable {
    private struct Entry {
        var readAt: Date
        var present: Bool
    }
    private struct Pending {
        var startedAt: Date
        var task: Task<Bool, any Error>
    }
    private struct State {
        var entries: [String: Entry] = [:]
        var pending: [String: Pending] = [:]
    }
    private let state = Mutex(State())

    init() {}

    func present(tenant: String, receivedAt: Date, read: @escaping @Sendable () async throws -> Bool) async throws -> Bool {
        enum Next {
            case answer(Bool)
            case wait(Task<Bool, any Error>)
        }
        let next: Next = state.withLock { s in
            if let e = s.entries[tenant], e.readAt > receivedAt { return .answer(e.present) }
            if let p = s.pending[tenant], p.startedAt > receivedAt { return .wait(p.task) }
            let startedAt = Date()
            // The read records its answer before anyone awaiting it resumes.
            let task = Task<Bool, any Error> { [weak self] in
                do {
                    let present = try await read()
                    self?.finished(tenant: tenant, startedAt: startedAt, present: present)
                    return present
                } catch {
                    self?.finished(tenant: tenant, startedAt: startedAt, present: nil)
                    throw error
                }
            }
            s.pending[tenant] = Pending(startedAt: startedAt, task: task)
            return .wait(task)
        }
        switch next {
        case .answer(let present): return present
        case .wait(let task): return try await task.value
        }
    }

    /// Records a finished read (as of when it started) and clears it from the in-flight set.
    private func finished(tenant: String, startedAt: Date, present: Bool?) {
        state.withLock { s in
            if s.pending[tenant]?.startedAt == startedAt { s.pending[tenant] = nil }
            guard let present else { return }
            if s.entries.count > 100_000 { s.entries.removeAll() }
            if (s.entries[tenant]?.readAt ?? .distantPast) < startedAt { s.entries[tenant] = Entry(readAt: startedAt, present: present) }
        }
    }
}
