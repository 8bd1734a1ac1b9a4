import Bus
import Contracts
import Foundation
import ServiceRuntime
import Store
import Synchronization
import VigilCore

struct OpsQueue: Codable, Sendable {
    var stream: String
    var consumer: String
    var filterSubject: String?
    /// Messages of the stream not yet delivered to the consumer.
    var pending: Int
    /// Delivered and not yet acknowledged.
    var ackPending: Int
    var redelivered: Int
    /// Stream sequence acknowledged contiguously, and how far the stream's last message is beyond it.
    var ackFloor: Int
    var ackFloorLag: Int
}
struct OpsQueues: Codable, Sendable {
    var streams: [OpsStream]
    var consumers: [OpsQueue]
}
struct OpsStream: Codable, Sendable {
    var name: String
    var messages: Int
    var bytes: Int
    var lastSequence: Int
    var consumers: Int
    var replicas: Int
}
struct OpsReplica: Codable, Sendable {
    struct Endpoint: Codable, Sendable {
        var name: String
        var requests: Int
        var errors: Int
        var averageMs: Double
        var lastError: String?
    }
    var service: String
    var id: String
    var version: String
    var started: String?
    var uptimeSeconds: Double?
    var requests: Int
    var errors: Int
    var endpoints: [Endpoint]
}
struct OpsServices: Codable, Sendable {
    var replicas: [OpsReplica]
    var services: [String: Int]
}
struct OpsCheck: Codable, Sendable {
    var name: String
    var ok: Bool
    var ms: Double
    var detail: String?
}
struct OpsFailure: Codable, Sendable {
    /// `dead-<sequence>` (a dead letter), `delivery-<id>` (a webhook delivery), `outbox-<service>-<id>` (an outbox row).
    var id: String
    /// dead_letter, webhook_delivery or outbox
    var kind: String
    var service: String?
    var subject: String?
    var stream: String?
    var consumer: String?
    var reason: String?
    var deliveries: Int?
    var tenantId: String?
    var at: String?
    var detail: String?
    /// Whether `POST /ops/failures/{id}/retry` can act on it (outbox rows the relay retries by itself).
    var retryable: Bool
}
struct OpsFailures: Codable, Sendable {
    var items: [OpsFailure]
    var counts: [String: Int]
    /// Parts that did not answer (a service down): what is listed may be incomplete.
    var unavailable: [String]
}
struct OpsFailurePath: Codable, Sendable { var failureId: String }
struct OpsRetry: Codable, Sendable {
    var id: String
    var retried: Bool
    var detail: String
}
struct OpsSmoke: Codable, Sendable {
    var ok: Bool
    var checks: [OpsCheck]
}

/// Operations routes (reference 001's agent-runtime view) for the operators of a deployment: JetStream
/// streams and consumers with pending, redelivered and ack-floor lag (`GET /ops/queues`), every replica of every
/// service from `$SRV.STATS` (`GET /ops/services`), and a synthetic end-to-end check (`POST /ops/smoke`). Only
/// owners and admins of the platform workspace (`VIGIL_PLATFORM_WORKSPACE`, a slug) may call them.
struct OpsHandlers: Sendable {
    let bus: BusConnection
    let jetStream: JetStream
    let platformWorkspace: String?
    static let services = ["gateway", "identity", "scan-orchestrator", "findings", "remediation", "billing", "notifier"]

    func register(on r: ServiceResponder) {
        r.add(Endpoint<Empty, OpsQueues>(Subjects.Scans.opsQueues), handler: queues)
        r.add(Endpoint<Empty, OpsServices>(Subjects.Scans.opsServices), handler: replicas)
        r.add(Endpoint<Empty, OpsSmoke>(Subjects.Scans.opsSmoke), handler: smoke)
        r.add(Endpoint<Empty, OpsFailures>(Subjects.Scans.opsFailures), handler: failures)
        r.add(Endpoint<OpsFailurePath, OpsRetry>(Subjects.Scans.opsFailureRetry), handler: retry)
    }

    func authorize(_ p: Principal) throws {
        guard let platform = platformWorkspace, p.tenantSlug == platform, p.role.rank >= Role.admin.rank else {
            throw ServiceError(
                status: 403, error: "forbidden", message: "operations routes are for owners and admins of the platform workspace")
        }
    }

    func json(_ subject: String, _ body: [String: Any] = [:]) async throws -> [String: Any] {
        let data = try JSONSerialization.data(withJSONObject: body)
        let reply = try await bus.request(subject, data: data, timeout: .seconds(3))
        guard let o = try JSONSerialization.jsonObject(with: reply.data) as? [String: Any] else {
            throw ServiceError.unavailable("JetStream answered something unexpected")
        }
        if let e = o["error"] as? [String: Any] { throw ServiceError.unavailable("JetStream: \(e["description"] ?? "error")") }
        return o
    }

    static func int(_ v: Any?) -> Int { (v as? NSNumber)?.intValue ?? 0 }

    @Sendable func queues(_ q: Empty, _ p: Principal, _ ctx: CallContext) async throws -> OpsQueues {
        try authorize(p)
        var streams: [OpsStream] = []
        var consumers: [OpsQueue] = []
        for name in [Streams.events, Streams.jobs, Streams.dead] {
            let info = try await json("$JS.API.STREAM.INFO.\(name)")
            let state = info["state"] as? [String: Any] ?? [:]
            let last = Self.int(state["last_seq"])
            streams.append(
                OpsStream(
                    name: name, messages: Self.int(state["messages"]), bytes: Self.int(state["bytes"]), lastSequence: last,
                    consumers: Self.int(state["consumer_count"]), replicas: Self.int((info["config"] as? [String: Any])?["num_replicas"])))
            var offset = 0
            for _ in 0..<20 {
                let page = try await json("$JS.API.CONSUMER.LIST.\(name)", ["offset": offset])
                let list = page["consumers"] as? [[String: Any]] ?? []
                for c in list {
                    let floor = Self.int((c["ack_floor"] as? [String: Any])?["stream_seq"])
                    let config = c["config"] as? [String: Any] ?? [:]
                    consumers.append(
                        OpsQueue(
                            stream: name, consumer: c["name"] as? String ?? "?", filterSubject: config["filter_subject"] as? String,
                            pending: Self.int(c["num_pending"]), ackPending: Self.int(c["num_ack_pending"]),
                            redelivered: Self.int(c["num_redelivered"]), ackFloor: floor, ackFloorLag: max(0, last - floor)))
                }
                offset += list.count
                if list.isEmpty || offset >= Self.int(page["total"]) { break }
            }
        }
        return OpsQueues(streams: streams, consumers: consumers.sorted { ($0.stream, $0.consumer) < ($1.stream, $1.consumer) })
    }

    /// Every reply to a request within `wait` (the services protocol answers once per replica).
    func gather(_ subject: String, wait: Duration) async throws -> [Data] {
        let inbox = "_INBOX.ops.\(ID.make())"
        let got = Mutex<[Data]>([])
        let sub = try bus.subscribe(inbox) { m in got.withLock { $0.append(m.data) } }
        defer { sub.unsubscribe() }
        try bus.publish(subject, data: Data(), reply: inbox)
        try await Task.sleep(for: wait)
        return got.withLock { $0 }
    }

    @Sendable func replicas(_ q: Empty, _ p: Principal, _ ctx: CallContext) async throws -> OpsServices {
        try authorize(p)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var out: [OpsReplica] = []
        for data in try await gather("$SRV.STATS", wait: .milliseconds(500)) {
            guard let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { continue }
            let endpoints = (o["endpoints"] as? [[String: Any]] ?? []).map { e -> OpsReplica.Endpoint in
                let n = Self.int(e["num_requests"])
                let avgNanos = (e["average_processing_time"] as? NSNumber)?.doubleValue ?? 0
                return OpsReplica.Endpoint(
                    name: e["name"] as? String ?? "?", requests: n, errors: Self.int(e["num_errors"]), averageMs: (avgNanos / 1e4).rounded() / 100,
                    lastError: (e["last_error"] as? String).flatMap { $0.isEmpty ? nil : $0 })
            }
            let started = o["started"] as? String
            let uptime = started.flatMap { formatter.date(from: $0) ?? ISO8601DateFormatter().date(from: $0) }.map { Date().timeIntervalSince($0) }
            out.append(
                OpsReplica(
                    service: o["name"] as? String ?? "?", id: o["id"] as? String ?? "?", version: o["version"] as? String ?? "?", started: started,
                    uptimeSeconds: uptime.map { ($0 * 10).rounded() / 10 }, requests: endpoints.reduce(0) { $0 + $1.requests },
                    errors: endpoints.reduce(0) { $0 + $1.errors }, endpoints: endpoints.filter { $0.requests > 0 || $0.errors > 0 }))
        }
        out.sort { ($0.service, $0.id) < ($1.service, $1.id) }
        return OpsServices(replicas: out, services: Dictionary(grouping: out, by: \.service).mapValues(\.count))
    }

    /// A synthetic end-to-end check: every service answers on the bus, every database answers, JetStream's
    /// streams answer; each with its time.
    @Sendable func smoke(_ q: Empty, _ p: Principal, _ ctx: CallContext) async throws -> OpsSmoke {
        try authorize(p)
        var checks: [OpsCheck] = []
        for s in Self.services {
            let start = ContinuousClock.now
            let alive = (try? await bus.request("$SRV.PING.\(s)", data: Data(), timeout: .seconds(2))) != nil
            checks.append(OpsCheck(name: "service \(s)", ok: alive, ms: Self.ms(since: start), detail: alive ? nil : "no replica answered"))
            guard alive, s != "gateway" else { continue }
            let dbStart = ContinuousClock.now
            let reply = try? await bus.request(Health.subject(s), data: Data(), timeout: .seconds(2))
            let pg = reply.flatMap { try? JSONSerialization.jsonObject(with: $0.data) as? [String: Any] }?["postgres"] as? String ?? "no answer"
            checks.append(OpsCheck(name: "database of \(s)", ok: pg == "up" || pg == "none", ms: Self.ms(since: dbStart), detail: pg))
        }
        for stream in [Streams.events, Streams.jobs] {
            let start = ContinuousClock.now
            let ok = (try? await json("$JS.API.STREAM.INFO.\(stream)")) != nil
            checks.append(OpsCheck(name: "stream \(stream)", ok: ok, ms: Self.ms(since: start), detail: nil))
        }
        return OpsSmoke(ok: checks.allSatisfy(\.ok), checks: checks)
    }

    // MARK: failures

    /// Dead letters (newest 100 of `VIGIL_DEAD`), webhook deliveries that failed for good (newest 100), and
    /// outbox rows of any service that did not publish within 30 seconds.
    @Sendable func failures(_ q: Empty, _ p: Principal, _ ctx: CallContext) async throws -> OpsFailures {
        try authorize(p)
        var items: [OpsFailure] = []
        var unavailable: [String] = []
        do {
            items += try await deadLetters(limit: 100).map(\.failure)
        } catch {
            unavailable.append("stream \(Streams.dead)")
        }
        if let o = try? await bus.request(OpsSubjects.webhookFailures, data: Data(), timeout: .seconds(3)).data,
            let list = (try? JSONSerialization.jsonObject(with: o) as? [String: Any])?["items"] as? [[String: Any]]
        {
            items += list.map { d in
                OpsFailure(
                    id: "delivery-\(d["id"] as? String ?? "")", kind: "webhook_delivery", service: "notifier", subject: d["event_type"] as? String,
                    stream: nil, consumer: nil, reason: (d["last_status"] as? Int).map { "HTTP \($0)" } ?? "undeliverable",
                    deliveries: d["attempts"] as? Int, tenantId: d["tenant_id"] as? String, at: d["created_at"] as? String,
                    detail: d["last_error"] as? String, retryable: true)
            }
        } else {
            unavailable.append("notifier")
        }
        for s in Self.services where s != "gateway" {
            guard let reply = try? await bus.request(Health.subject(s), data: Data(#"{"outbox":true}"#.utf8), timeout: .seconds(2)).data,
                let o = try? JSONSerialization.jsonObject(with: reply) as? [String: Any]
            else {
                unavailable.append(s)
                continue
            }
            for row in o["outbox"] as? [[String: Any]] ?? [] {
                items.append(
                    OpsFailure(
                        id: "outbox-\(s)-\(row["id"] as? String ?? "")", kind: "outbox", service: s, subject: row["subject"] as? String,
                        stream: nil, consumer: nil, reason: "not published for 30 s or more", deliveries: nil, tenantId: nil,
                        at: row["created_at"] as? String, detail: nil, retryable: false))
            }
        }
        return OpsFailures(items: items, counts: Dictionary(grouping: items, by: \.kind).mapValues(\.count), unavailable: unavailable)
    }

    struct Dead {
        var sequence: Int
        var headers: [String: String]
        var data: Data
        var time: String?

        var failure: OpsFailure {
            OpsFailure(
                id: "dead-\(sequence)", kind: "dead_letter", service: nil, subject: headers[DeadLetter.subject], stream: headers[DeadLetter.stream],
                consumer: headers[DeadLetter.consumer], reason: headers[DeadLetter.reason],
                deliveries: headers[DeadLetter.deliveries].flatMap { Int($0) },
                tenantId: headers[BusHeader.tenantId] ?? JSONHead.read(data, keys: ["tenant_id"], nested: "data", nestedKeys: [])?.top[0], at: time,
                detail: nil,
                retryable: true)
        }
    }

    /// The newest dead letters, newest first (at most `limit`, reading at most 4 × `limit` sequences).
    func deadLetters(limit: Int) async throws -> [Dead] {
        let info = try await json("$JS.API.STREAM.INFO.\(Streams.dead)")
        let state = info["state"] as? [String: Any] ?? [:]
        let (first, last) = (Self.int(state["first_seq"]), Self.int(state["last_seq"]))
        guard Self.int(state["messages"]) > 0 else { return [] }
        var out: [Dead] = []
        var seq = last
        while seq >= max(first, 1), out.count < limit, last - seq < limit * 4 {
            if let d = try await deadLetter(seq) { out.append(d) }
            seq -= 1
        }
        return out
    }

    /// One dead letter by its sequence in `VIGIL_DEAD`; nil when there is none (retried, or expired).
    func deadLetter(_ seq: Int) async throws -> Dead? {
        let reply = try await bus.request(
            "$JS.API.STREAM.MSG.GET.\(Streams.dead)", data: try JSONSerialization.data(withJSONObject: ["seq": seq]), timeout: .seconds(3))
        guard let o = try JSONSerialization.jsonObject(with: reply.data) as? [String: Any], let m = o["message"] as? [String: Any] else {
            return nil
        }
        let data = (m["data"] as? String).flatMap { Data(base64Encoded: $0) } ?? Data()
        var headers: [String: String] = [:]
        if let h = (m["hdrs"] as? String).flatMap({ Data(base64Encoded: $0) }) {
            for line in String(decoding: h, as: UTF8.self).split(separator: "\r\n").dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers[String(line[..<colon])] = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
            }
        }
        return Dead(sequence: seq, headers: headers, data: data, time: m["time"] as? String)
    }

    /// Retries one failure: a dead letter is published again on its original subject (a job is taken by its
    /// workers again; an event reaches every consumer of the events stream, each idempotent by event id)
    /// and removed from `VIGIL_DEAD`; a failed webhook delivery is queued again from scratch.
    @Sendable func retry(_ q: OpsFailurePath, _ p: Principal, _ ctx: CallContext) async throws -> OpsRetry {
        try authorize(p)
        let id = q.failureId
        if id.hasPrefix("dead-"), let seq = Int(id.dropFirst(5)), seq > 0 {
            guard let d = try await deadLetter(seq), let subject = d.headers[DeadLetter.subject] else { throw ServiceError.notFound("failure") }
            var headers = d.headers.filter { !$0.key.hasPrefix("Vigil-Dead-") && $0.key != BusHeader.msgId }
            headers[BusHeader.correlationId] = ctx.correlationId
            try await jetStream.publish(subject, data: d.data, msgId: "retry.\(Streams.dead).\(seq)", headers: headers)
            _ = try await json("$JS.API.STREAM.MSG.DELETE.\(Streams.dead)", ["seq": seq])
            return OpsRetry(id: id, retried: true, detail: "published again on \(subject)")
        }
        if id.hasPrefix("delivery-"), ID.isValid(String(id.dropFirst(9))) {
            let reply = try await bus.request(
                OpsSubjects.webhookRetry, data: try JSONSerialization.data(withJSONObject: ["delivery_id": String(id.dropFirst(9))]),
                timeout: .seconds(3))
            guard (try? JSONSerialization.jsonObject(with: reply.data) as? [String: Any])?["retried"] as? Bool == true else {
                throw ServiceError.notFound("failure")
            }
            return OpsRetry(id: id, retried: true, detail: "webhook delivery queued again")
        }
        if id.hasPrefix("outbox-") {
            throw ServiceError(
                status: 409, error: "conflict", message: "outbox rows are retried by their service's relay until JetStream takes them")
        }
        throw ServiceError.validation("path.failure_id", "must be dead-<sequence>, delivery-<id> or outbox-<service>-<id>")
    }

    static func ms(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        let ms = Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
        return (ms * 10).rounded() / 10
    }
}
