import Synchronization

/// A wake-up signal for a loop: `poke()` from anywhere; `wait(timeout:)` returns at the next poke
/// (or at once if one came since the last wait) or after the timeout. Pokes are never lost.
public final class WakeSignal: Sendable {
    private let state = Mutex<(pending: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    public init() {}

    public func poke() {
        let w = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if let w = s.waiter {
                s.waiter = nil
                return w
            }
            s.pending = true
            return nil
        }
        w?.resume()
    }

    /// Returns at the next poke or after `timeout`, whichever is first.
    public func wait(timeout: Duration) async {
        let timer = Task { [weak self] in
            // Only a timer that ran out pokes; a cancelled one must not (it would spin the relay).
            guard (try? await Task.sleep(for: timeout)) != nil else { return }
            self?.poke()
        }
        defer { timer.cancel() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if s.pending {
                        s.pending = false
                        return true
                    }
                    s.waiter = c
                    return false
                }
                if resumeNow { c.resume() }
            }
        } onCancel: { [weak self] in
            self?.poke()
        }
    }
}
