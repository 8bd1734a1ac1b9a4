import Synchronization

/// Values looked up over the bus or in the database, kept for `ttl` per replica, for the reads every request
/// makes (principals, plan limits, workspace rows). Two rules keep them right:
/// - **Refresh ahead.** Past half of its time an entry is still used, and the one caller told `refresh` asks
///   for a fresh value in the background: a busy key never waits (nor do the requests in flight when it
///   would have expired all ask at once). An entry is never used past its time.
/// - **No stale answer after an invalidation.** Take `asked` before asking and pass it to `put`: an answer
///   asked for before any invalidation that came meanwhile is not kept (it may hold what was just changed).
public final class RefreshingCache<Value: Sendable>: Sendable {
    private struct Entry {
        var value: Value
        var stored: ContinuousClock.Instant
        var expires: ContinuousClock.Instant
        var refreshing = false
    }
    private struct State {
        var entries: [String: Entry] = [:]
        var generation = 0
    }
    private let state = Mutex(State())
    /// How long an entry is used; zero keeps nothing.
    public let ttl: Duration
    public let capacity: Int

    public init(ttl: Duration, capacity: Int = 100_000) {
        self.ttl = ttl
        self.capacity = capacity
    }

    /// A cached value; `refresh` is true for the one caller that should ask for a fresh one.
    public struct Hit: Sendable {
        public let value: Value
        public let refresh: Bool
    }

    public func get(_ key: String, now: ContinuousClock.Instant = .now) -> Hit? {
        state.withLock { s in
            guard var e = s.entries[key] else { return nil }
            guard now < e.expires else {
                s.entries[key] = nil
                return nil
            }
            let refresh = !e.refreshing && now - e.stored >= (e.expires - e.stored) / 2
            if refresh {
                e.refreshing = true
                s.entries[key] = e
            }
            return Hit(value: e.value, refresh: refresh)
        }
    }

    /// To pass to `put` for a value asked for from now on.
    public var asked: Int { state.withLock { $0.generation } }

    /// Keeps `value` for `life` (default `ttl`) unless an invalidation came since `asked`.
    public func put(_ key: String, _ value: Value, asked: Int, life: Duration? = nil, now: ContinuousClock.Instant = .now) {
        guard ttl > .zero else { return }
        state.withLock { s in
            guard s.generation == asked else { return }
            if s.entries.count >= capacity { s.entries = s.entries.filter { $0.value.expires > now } }
            if s.entries.count >= capacity { s.entries.removeAll(keepingCapacity: true) }
            s.entries[key] = Entry(value: value, stored: now, expires: now + (life ?? ttl))
        }
    }

    /// A refresh that failed: the entry keeps its value and may be refreshed again.
    public func refreshFailed(_ key: String) { state.withLock { $0.entries[key]?.refreshing = false } }

    /// Drops `key`; answers asked for before are not kept.
    public func invalidate(_ key: String) {
        state.withLock { s in
            s.generation += 1
            s.entries[key] = nil
        }
    }

    /// Drops every entry `matches`; answers asked for before are not kept.
    public func invalidate(where matches: (String, Value) -> Bool) {
        state.withLock { s in
            s.generation += 1
            s.entries = s.entries.filter { !matches($0.key, $0.value.value) }
        }
    }
}
