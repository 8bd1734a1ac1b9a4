import Foundation
import Synchronization

/// The workspace rows `GET /auth/me` answers with, kept a few seconds per replica: the authenticated read
/// every client makes costs a bus hop, not a database round trip as well. A change (rename, settings) is
/// broadcast after commit and drops the copy on every replica; a copy is kept only if its read started after
/// the last drop it heard of, so a read racing a change never re-caches the old row. A lost broadcast
/// leaves a copy stale for `ttl` at most.
final class WorkspaceCache: Sendable {
    private struct State {
        var entries: [String: (view: WorkspaceView, readAt: Date)] = [:]
        var dropped: [String: Date] = [:]
    }
    private let state = Mutex(State())
    let ttl: TimeInterval
    let capacity: Int

    init(ttl: TimeInterval = 5, capacity: Int = 50_000) {
        self.ttl = ttl
        self.capacity = capacity
    }

    func get(_ id: String, now: Date = Date()) -> WorkspaceView? {
        state.withLock { s in
            guard let e = s.entries[id], now.timeIntervalSince(e.readAt) < ttl else { return nil }
            return e.view
        }
    }

    /// Keeps `view`, read by a statement that started at `readAt`, unless a change was heard of since.
    func put(_ view: WorkspaceView, readAt: Date) {
        state.withLock { s in
            if let d = s.dropped[view.id], d >= readAt { return }
            if s.entries.count >= capacity { s.entries.removeAll(keepingCapacity: true) }
            s.entries[view.id] = (view, readAt)
        }
    }

    func drop(_ id: String, now: Date = Date()) {
        state.withLock { s in
            s.entries[id] = nil
            if s.dropped.count >= capacity { s.dropped = s.dropped.filter { now.timeIntervalSince($0.value) < ttl } }
            s.dropped[id] = now
        }
    }
}

let workspaceCache = WorkspaceCache()
