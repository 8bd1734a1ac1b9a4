import Foundation
import Synchronization

/// Per-credential rate limits with two fixed windows: a short burst window and a longer steady one.
/// A request must fit both. Limits are per gateway replica.
final class RateLimiter: Sendable {
    struct Window: Sendable {
        var limit: Int
        var seconds: Double
    }

    struct Decision: Sendable {
        var allowed: Bool
        /// The window closest to exhaustion (reported in headers).
        var limit: Int
        var remaining: Int
        var resetSeconds: Int
        var policy: String
    }

    private struct Counter {
        var start: Double
        var count: Int
    }
    private struct State {
        var burst: Counter
        var steady: Counter
    }

    let burst: Window
    let steady: Window
    private let states = Mutex<[String: State]>([:])

    init(burst: Window, steady: Window) {
        self.burst = burst
        self.steady = steady
    }

    func check(_ key: String, now: Double = Date().timeIntervalSince1970) -> Decision {
        states.withLock { all in
            if all.count > 50_000 {
                all = all.filter { now - $0.value.steady.start < steady.seconds }
            }
            var s = all[key] ?? State(burst: .init(start: now, count: 0), steady: .init(start: now, count: 0))
            if now - s.burst.start >= burst.seconds { s.burst = .init(start: now, count: 0) }
            if now - s.steady.start >= steady.seconds { s.steady = .init(start: now, count: 0) }
            let allowed = s.burst.count < burst.limit && s.steady.count < steady.limit
            if allowed {
                s.burst.count += 1
                s.steady.count += 1
            }
            all[key] = s
            let burstLeft = burst.limit - s.burst.count
            let steadyLeft = steady.limit - s.steady.count
            let burstReset = max(1, Int((s.burst.start + burst.seconds - now).rounded(.up)))
            let steadyReset = max(1, Int((s.steady.start + steady.seconds - now).rounded(.up)))
            let policy = "\(burst.limit);w=\(Int(burst.seconds)), \(steady.limit);w=\(Int(steady.seconds))"
            // Report whichever window blocks (or is nearer exhaustion).
            let burstBinding = !allowed ? s.burst.count >= burst.limit : burstLeft * steady.limit < steadyLeft * burst.limit
            if burstBinding {
                return Decision(allowed: allowed, limit: burst.limit, remaining: max(0, burstLeft), resetSeconds: burstReset, policy: policy)
            }
            return Decision(allowed: allowed, limit: steady.limit, remaining: max(0, steadyLeft), resetSeconds: steadyReset, policy: policy)
        }
    }
}
