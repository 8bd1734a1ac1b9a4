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

    public init(store: Store, jetStream: JetStream, batchSize: Int = 50, pollInterval: Duration = .seconds(1)) {
        self.store = store
        self.jetStream = jetStream
        self.batchSize = batchSize
        self.pollInterval = pollInterval
    }

    /// Publishes one batch of rows; returns how many rows were published. A row is one event, or
    /// (`batch`) many: lines of `subject id envelope-json`, each published as its own message.
    /// Messages are pipelined and the rows marked sent only once JetStream acknowledged all of them.
    @discardableResult
    public func publishBatch() async throws -> Int {
        let schema = store.schema
        let js = jetStream
        let batch = batchSize
        return try await store.transaction(.none) { tx in
            let rows = try await tx.query(
                "SELECT id, subject, payload, headers, batch FROM \(schema).outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
                [batch])
            guard !rows.isEmpty else { return 0 }
            var ids: [String] = []
            var messages: [JetStream.Outgoing] = []
            for r in rows {
                let id = try r.string("id")
                let headers = (try? r.json("headers", as: [String: String].self)) ?? [:]
                let payload = try r.string("payload")
                if try r.bool("batch") {
                    for line in payload.utf8.split(separator: 0x0A) {
                        let parts = line.split(separator: 0x20, maxSplits: 2)
                        guard parts.count == 3, let subject = String(parts[0]), let eventId = String(parts[1]) else {
                            store.logger.error("malformed outbox batch line skipped", metadata: ["row": "\(id)"])
                            continue
                        }
                        messages.append(JetStream.Outgoing(subject: subject, data: Data(parts[2]), msgId: eventId, headers: headers))
                    }
                } else {
                    messages.append(JetStream.Outgoing(subject: try r.string("subject"), data: Data(payload.utf8), msgId: id, headers: headers))
                }
                ids.append(id)
            }
            try await js.publishAll(messages)
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
