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
                "SELECT id, subject, payload, headers, batch FROM \(schema).outbox "
                    + "WHERE published_at IS NULL ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
                [batch])
            guard !rows.isEmpty else { return 0 }
            var ids: [String] = []
            var perRow: [[JetStream.Outgoing]] = []
            for r in rows {
                let id = try r.string("id")
                let headers = (try? r.json("headers", as: [String: String].self)) ?? [:]
                let payload = try r.string("payload")
                if try r.bool("batch") {
                    let (lines, malformed) = Self.batchMessages(payload, headers: headers)
                    if malformed > 0 {
                        store.logger.error("malformed outbox batch lines skipped", metadata: ["row": "\(id)", "lines": "\(malformed)"])
                    }
                    perRow.append(lines)
                } else {
                    perRow.append([JetStream.Outgoing(subject: try r.string("subject"), data: Data(payload.utf8), msgId: id, headers: headers)])
                }
                ids.append(id)
            }
            do {
                try await js.publishAll(perRow.flatMap { $0 })
            } catch  where rows.count > 1 {
                // One row JetStream refuses (a subject no stream takes) must not hold back the rows after it:
                // row by row, the refused ones stay unpublished (listed by /ops/failures) and the rest go.
                var sent: [String] = []
                var refused: [(String, any Error)] = []
                for (id, messages) in zip(ids, perRow) {
                    do {
                        try await js.publishAll(messages)
                        sent.append(id)
                    } catch {
                        refused.append((id, error))
                    }
                }
                guard !sent.isEmpty else { throw error }  // JetStream took none: unavailable, not a bad row
                for (id, e) in refused {
                    store.logger.error("outbox row refused by JetStream; the rows after it went on", metadata: ["row": "\(id)", "error": "\(e)"])
                }
                ids = sent
            }
            // Jobs go once they are in JetStream (they may carry what their worker needs, such as an email's reset
            // link); events stay a day for inspection.
            try await tx.execute("DELETE FROM \(schema).outbox WHERE id = ANY($1::uuid[]) AND subject LIKE 'vigil.jobs.%'", [ids])
            try await tx.execute("UPDATE \(schema).outbox SET published_at = now() WHERE id = ANY($1::uuid[])", [ids])
            return ids.count
        }
    }

    /// The messages of a batch row: lines of `subject id envelope-json`. A byte scan (memchr), not
    /// `split`: a batch of a thousand events is a few hundred kilobytes, and the generic splitting
    /// was a seventh of the findings service's CPU during a large ingest. Returns how many non-empty
    /// lines were malformed (skipped).
    static func batchMessages(_ payload: String, headers: [String: String]) -> (messages: [JetStream.Outgoing], malformed: Int) {
        var bytes = payload  // withUTF8 needs a mutable copy (it may make the storage contiguous)
        return bytes.withUTF8 { buf -> ([JetStream.Outgoing], Int) in
            guard let base = buf.baseAddress else { return ([], 0) }
            var out: [JetStream.Outgoing] = []
            var malformed = 0
            let end = base + buf.count
            var line = base
            func next(_ byte: UInt8, from p: UnsafePointer<UInt8>, to e: UnsafePointer<UInt8>) -> UnsafePointer<UInt8> {
                guard p < e, let hit = memchr(p, Int32(byte), e - p) else { return e }
                return UnsafePointer(hit.assumingMemoryBound(to: UInt8.self))
            }
            func text(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>) -> String {
                String(decoding: UnsafeBufferPointer(start: a, count: b - a), as: UTF8.self)
            }
            while line < end {
                let eol = next(0x0A, from: line, to: end)
                let s1 = next(0x20, from: line, to: eol)
                let s2 = s1 < eol ? next(0x20, from: s1 + 1, to: eol) : eol
                if s1 > line, s2 > s1 + 1, s2 + 1 < eol {
                    out.append(
                        JetStream.Outgoing(
                            subject: text(line, s1), data: Data(bytes: s2 + 1, count: eol - (s2 + 1)),
                            msgId: text(s1 + 1, s2), headers: headers))
                } else if eol > line {
                    malformed += 1
                }
                if eol == end { break }
                line = eol + 1
            }
            return (out, malformed)
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
