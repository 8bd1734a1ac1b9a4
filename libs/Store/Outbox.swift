import Bus
import Foundation
import Logging
import Synchronization

/// Publishes committed outbox rows to JetStream with `Nats-Msg-Id` = event id, then marks them sent.
///
/// Crash-safety: rows are claimed with `FOR UPDATE SKIP LOCKED` inside a transaction; if the process
/// dies after publishing but before the commit, the rows are published again and JetStream's
/// duplicate window drops the repeats, so subscribers see each event once.
public final class OutboxRelay: Sendable {
    let store: Store
    let jetStream: JetStream
    let batchSize: Int
    let pollInterval: Duration

    public init(store: Store, jetStream: JetStream, batchSize: Int = 200, pollInterval: Duration = .seconds(1)) {
        self.store = store
        self.jetStream = jetStream
        self.batchSize = batchSize
        self.pollInterval = pollInterval
    }

    /// Publishes one batch; returns how many rows were published.
    @discardableResult
    public func publishBatch() async throws -> Int {
        let schema = store.schema
        let js = jetStream
        let batch = batchSize
        return try await store.transaction(.none) { tx in
            let rows = try await tx.query(
                "SELECT id, subject, payload, headers FROM \(schema).outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
                [batch])
            guard !rows.isEmpty else { return 0 }
            var ids: [String] = []
            for r in rows {
                let id = try r.string("id")
                let headers = (try? r.json("headers", as: [String: String].self)) ?? [:]
                try await js.publish(try r.string("subject"), data: Data(try r.string("payload").utf8), msgId: id, headers: headers)
                ids.append(id)
            }
            try await tx.execute("UPDATE \(schema).outbox SET published_at = now() WHERE id = ANY($1::uuid[])", [ids])
            return ids.count
        }
    }

    /// Runs until cancelled: publishes whenever poked, and polls as a fallback after crashes.
    public func run() async {
        var lastCleanup = ContinuousClock.now
        while !Task.isCancelled {
            do {
                while try await publishBatch() == batchSize, !Task.isCancelled {}
                if ContinuousClock.now - lastCleanup > .seconds(3600) {
                    try await store.query(.none, "DELETE FROM \(store.schema).outbox WHERE published_at < now() - interval '1 day'")
                    lastCleanup = ContinuousClock.now
                }
            } catch {
                store.logger.warning("outbox relay failed; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
            await store.outboxSignal.wait(timeout: pollInterval)
        }
    }
}
