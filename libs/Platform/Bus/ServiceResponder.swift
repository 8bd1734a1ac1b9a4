import Foundation
import Logging
import Synchronization
import VigilCore

/// A request handler: gets the raw body and context, returns the reply body or throws.
public typealias RawHandler = @Sendable (Data, CallContext) async throws -> Data

/// Decides whether a call to a subject may run at all (who is calling, with what role); throws the
/// error to reply with. One check for every endpoint of the service, before its handler.
public typealias Authorizer = @Sendable (_ subject: String, CallContext) throws -> Void

/// Per-endpoint counters for `$SRV.STATS`.
struct EndpointStats: Sendable {
    var requests = 0
    var errors = 0
    var processingNanos: Int64 = 0
    var lastError = ""
}

/// A bus service per the NATS services protocol (ADR-32): named endpoints served in queue group
/// `q` so replicas share load, plus `$SRV.PING|INFO|STATS` in all three subject forms.
public final class ServiceResponder: Sendable {
    public struct EndpointSpec: Sendable {
        public let name: String
        public let subject: String
        let handler: RawHandler
    }

    public let name: String
    public let id: String
    public let version: String
    public let description: String
    public static let queueGroup = "q"
    let bus: BusConnection
    let logger: Logger
    private let started = Date()
    private let specs = Mutex<[EndpointSpec]>([])
    private let stats = Mutex<[String: EndpointStats]>([:])
    private let subs = Mutex<[BusSubscription]>([])
    private let inFlight = Atomic<Int>(0)
    private let accepting = Atomic<Bool>(true)
    private let maxInFlight: Int
    private let authorize: Authorizer?

    public init(
        bus: BusConnection, name: String, version: String, description: String, logger: Logger,
        maxInFlight: Int = 512, authorize: Authorizer? = nil
    ) {
        self.authorize = authorize
        self.bus = bus
        self.name = name
        self.version = version
        self.description = description
        self.id = ID.make().replacingOccurrences(of: "-", with: "").prefix(22).uppercased()
        self.logger = logger
        self.maxInFlight = maxInFlight
    }

    /// Adds a raw endpoint. Call before `start()`.
    public func add(name: String, subject: String, handler: @escaping RawHandler) {
        specs.withLock { $0.append(EndpointSpec(name: name, subject: subject, handler: handler)) }
    }

    /// Adds a typed endpoint: the body is decoded (422 on bad input), the reply encoded.
    public func add<Req, Rep>(
        _ endpoint: Endpoint<Req, Rep>, name: String? = nil,
        handler: @escaping @Sendable (Req, CallContext) async throws -> Rep
    ) {
        add(
            name: name ?? endpoint.subject.split(separator: ".").dropFirst(2).joined(separator: "_"),
            subject: endpoint.subject
        ) { data, ctx in
            let req = try JSON.decodeRequest(Req.self, from: data)
            return try JSON.encode(try await handler(req, ctx))
        }
    }

    /// Subjects this service serves (for contract checks).
    public var subjects: [String] { specs.withLock { $0.map(\.subject) } }

    /// Subscribes every endpoint in the queue group and the `$SRV` subjects.
    public func start() throws {
        let endpoints = specs.withLock { $0 }
        var newSubs: [BusSubscription] = []
        for ep in endpoints {
            newSubs.append(
                try bus.subscribe(ep.subject, queue: Self.queueGroup) { [weak self] msg in
                    self?.dispatch(ep, msg)
                })
        }
        for verb in ["PING", "INFO", "STATS"] {
            for subject in ["$SRV.\(verb)", "$SRV.\(verb).\(name)", "$SRV.\(verb).\(name).\(id)"] {
                newSubs.append(try bus.subscribe(subject) { [weak self] msg in self?.answerDiscovery(verb, msg) })
            }
        }
        subs.withLock { $0 = newSubs }
    }

    /// Stops taking work, then waits (bounded) for in-flight handlers to finish.
    public func stop(timeout: Duration = .seconds(10)) async {
        accepting.store(false, ordering: .relaxed)
        let all = subs.withLock { s -> [BusSubscription] in
            let a = s
            s = []
            return a
        }
        all.forEach { $0.unsubscribe() }
        let deadline = ContinuousClock.now + timeout
        while inFlight.load(ordering: .relaxed) > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    private func dispatch(_ ep: EndpointSpec, _ msg: BusMessage) {
        guard let reply = msg.reply else { return }
        let ctx = CallContext(headers: msg)
        guard accepting.load(ordering: .relaxed) else {
            bus.respond(to: reply, result: .failure(.unavailable("service is shutting down")), correlationId: ctx.correlationId)
            return
        }
        if inFlight.add(1, ordering: .relaxed).newValue > maxInFlight {
            inFlight.subtract(1, ordering: .relaxed)
            bus.respond(to: reply, result: .failure(.unavailable("service is overloaded")), correlationId: ctx.correlationId)
            return
        }
        Task {
            let start = ContinuousClock.now
            let result: Result<Data, ServiceError>
            do {
                try authorize?(ep.subject, ctx)
                result = .success(try await ep.handler(msg.data, ctx))
            } catch let e as ServiceError {
                result = .failure(e)
            } catch let e as DecodingError {
                result = .failure(ServiceError.from(decoding: e))
            } catch let e as BusError {
                result = .failure(e.serviceError)
            } catch let e as any ClientMeaningfulError where e.serviceError != nil {
                logger.warning(
                    "request failed in a dependency",
                    metadata: [
                        "subject": "\(ep.subject)", "answer": "\(e.serviceError!.status) \(e.serviceError!.error)",
                        "correlation_id": "\(ctx.correlationId)",
                    ])
                result = .failure(e.serviceError!)
            } catch {
                logger.error(
                    "handler failed",
                    metadata: [
                        "subject": "\(ep.subject)", "error": "\(error)",
                        "correlation_id": "\(ctx.correlationId)",
                    ])
                result = .failure(.internal())
            }
            bus.respond(to: reply, result: result, correlationId: ctx.correlationId)
            let elapsed = (ContinuousClock.now - start).nanoseconds
            stats.withLock { all in
                var s = all[ep.name, default: EndpointStats()]
                s.requests += 1
                s.processingNanos += elapsed
                if case .failure(let e) = result, e.status >= 500 {
                    s.errors += 1
                    s.lastError = "\(e.status):\(e.message)"
                }
                all[ep.name] = s
            }
            inFlight.subtract(1, ordering: .relaxed)
        }
    }

    private func answerDiscovery(_ verb: String, _ msg: BusMessage) {
        guard let reply = msg.reply else { return }
        var body: [String: Any] = ["name": name, "id": id, "version": version, "metadata": [String: String]()]
        let endpoints = specs.withLock { $0 }
        switch verb {
        case "PING":
            body["type"] = "io.nats.micro.v1.ping_response"
        case "INFO":
            body["type"] = "io.nats.micro.v1.info_response"
            body["description"] = description
            body["endpoints"] = endpoints.map {
                ["name": $0.name, "subject": $0.subject, "queue_group": Self.queueGroup, "metadata": [String: String]()] as [String: Any]
            }
        default:
            body["type"] = "io.nats.micro.v1.stats_response"
            body["started"] = Timestamp.format(started)
            let snapshot = stats.withLock { $0 }
            body["endpoints"] = endpoints.map { ep -> [String: Any] in
                let s = snapshot[ep.name] ?? EndpointStats()
                return [
                    "name": ep.name, "subject": ep.subject, "queue_group": Self.queueGroup,
                    "num_requests": s.requests, "num_errors": s.errors, "last_error": s.lastError,
                    "processing_time": s.processingNanos,
                    "average_processing_time": s.requests > 0 ? s.processingNanos / Int64(s.requests) : 0,
                ]
            }
        }
        let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data()
        try? bus.publish(reply, data: data)
    }
}
