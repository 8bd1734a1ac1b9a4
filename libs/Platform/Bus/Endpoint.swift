import Foundation
import VigilCore

/// What travels with every request in headers: tenant, principal, correlation, idempotency, trace.
public struct CallContext: Sendable, Equatable {
    public var tenantId: String?
    /// JSON of the authenticated principal, set only by the gateway.
    public var principal: String?
    public var correlationId: String
    public var idempotencyKey: String?
    public var traceparent: String?
    public var clientAddress: String?
    public var userAgent: String?

    public init(
        tenantId: String? = nil, principal: String? = nil, correlationId: String = ID.make(),
        idempotencyKey: String? = nil, traceparent: String? = nil, clientAddress: String? = nil,
        userAgent: String? = nil
    ) {
        self.tenantId = tenantId
        self.principal = principal
        self.correlationId = correlationId
        self.idempotencyKey = idempotencyKey
        self.traceparent = traceparent
        self.clientAddress = clientAddress
        self.userAgent = userAgent
    }

    public init(headers h: BusMessage) {
        self.init(
            tenantId: h.header(BusHeader.tenantId), principal: h.header(BusHeader.principal),
            correlationId: h.header(BusHeader.correlationId) ?? ID.make(),
            idempotencyKey: h.header(BusHeader.idempotencyKey), traceparent: h.header(BusHeader.traceparent),
            clientAddress: h.header(BusHeader.clientAddress), userAgent: h.header(BusHeader.userAgent))
    }

    public var headers: [String: String] {
        var h = [BusHeader.correlationId: correlationId]
        if let tenantId { h[BusHeader.tenantId] = tenantId }
        if let principal { h[BusHeader.principal] = principal }
        if let idempotencyKey { h[BusHeader.idempotencyKey] = idempotencyKey }
        if let traceparent { h[BusHeader.traceparent] = traceparent }
        if let clientAddress { h[BusHeader.clientAddress] = clientAddress }
        if let userAgent { h[BusHeader.userAgent] = userAgent }
        return h
    }
}

extension CallContext {
    /// Headers that events caused by this request carry (for the audit trail): correlation id,
    /// client address and user agent. Never the principal or credentials.
    public var eventHeaders: [String: String] {
        var h = [BusHeader.correlationId: correlationId]
        if let clientAddress { h[BusHeader.clientAddress] = clientAddress }
        if let userAgent { h[BusHeader.userAgent] = String(userAgent.prefix(256)) }
        return h
    }
}

extension BusConnection {
    /// Sends raw JSON to a subject and returns the reply body, throwing `ServiceError` for
    /// services-protocol errors and `BusError` for transport failures.
    public func requestJSON(
        _ subject: String, body: Data, context: CallContext,
        timeout: Duration? = nil, resendAt: [Duration] = []
    ) async throws -> Data {
        let reply = try await request(subject, data: body, headers: context.headers, timeout: timeout, resendAt: resendAt)
        if let code = reply.header(BusHeader.serviceErrorCode) {
            var err =
                (try? JSON.decode(ServiceError.self, from: reply.data))
                ?? ServiceError(status: 500, error: "internal_error", message: reply.header(BusHeader.serviceError) ?? "error")
            err.status = Int(code) ?? 500
            throw err
        }
        return reply.data
    }

    /// Typed request over an endpoint.
    public func request<Req, Rep>(
        _ endpoint: Endpoint<Req, Rep>, _ request: Req, context: CallContext,
        timeout: Duration? = nil, resendAt: [Duration] = []
    ) async throws -> Rep {
        let data = try await requestJSON(
            endpoint.subject, body: JSON.encode(request), context: context, timeout: timeout, resendAt: resendAt)
        return try JSON.decode(Rep.self, from: data)
    }

    /// Sends a reply (or a services-protocol error) to `reply`.
    public func respond(to reply: String, result: Result<Data, ServiceError>, correlationId: String?) {
        var headers: [String: String] = [:]
        if let correlationId { headers[BusHeader.correlationId] = correlationId }
        let body: Data
        switch result {
        case .success(let d): body = d
        case .failure(let e):
            headers[BusHeader.serviceError] = e.message.isEmpty ? e.error : e.message
            headers[BusHeader.serviceErrorCode] = String(e.status)
            body = (try? JSON.encode(e)) ?? Data()
        }
        do {
            try publish(reply, data: body, headers: headers)
        } catch {
            // Most likely larger than the server's max_payload: answer at once rather than leave the
            // requester waiting out its timeout.
            guard case .success = result else { return }
            let e = ServiceError.internal()
            headers[BusHeader.serviceError] = "the answer (\(body.count) bytes) could not be sent: \(error)"
            headers[BusHeader.serviceErrorCode] = String(e.status)
            try? publish(reply, data: (try? JSON.encode(e)) ?? Data(), headers: headers)
        }
    }
}
