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
    let platformWorkspace: String?
    static let services = ["gateway", "identity", "scan-orchestrator", "findings", "remediation", "billing", "notifier"]

    func register(on r: ServiceResponder) {
        r.add(Endpoint<Empty, OpsQueues>(Subjects.Scans.opsQueues), handler: queues)
        r.add(Endpoint<Empty, OpsServices>(Subjects.Scans.opsServices), handler: replicas)
        r.add(Endpoint<Empty, OpsSmoke>(Subjects.Scans.opsSmoke), handler: smoke)
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
        for name in [Streams.events, Streams.jobs] {
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

    static func ms(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        let ms = Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
        return (ms * 10).rounded() / 10
    }
}
