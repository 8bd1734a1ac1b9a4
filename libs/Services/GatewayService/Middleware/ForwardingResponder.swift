import Bus
import Contracts
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import VigilCore

/// The end of every route's chain: one bus request to the route's subject with the built payload and the
/// call context (workspace, principal, correlation id, idempotency key, trace, client), and the reply as
/// the response: JSON with the route's status, or the raw file for downloads.
struct ForwardingResponder: Sendable {
    let route: Route
    let bus: BusConnection
    let timeout: Duration

    func respond(_ request: Request, context: GatewayContext) async throws -> Response {
        let busContext = CallContext(
            tenantId: context.principal?.principal.tenantId, principal: context.principal?.header,
            correlationId: context.correlationId, idempotencyKey: request.headers[.idempotencyKey],
            traceparent: request.headers[.traceparent], clientAddress: context.client, userAgent: request.headers[.userAgent])
        let reply: Data
        do {
            reply = try await bus.requestJSON(route.subject, body: context.payload, context: busContext, timeout: timeout)
        } catch let e as BusError where e.isTimeout && request.method == .get {
            // A read whose replica died with it (killed, crashed): the queue group hands the same read to a live
            // replica. Only reads: a write may have been done before the reply was lost.
            reply = try await bus.requestJSON(route.subject, body: context.payload, context: busContext, timeout: timeout)
        }
        if route.download { return try fileResponse(reply) }
        return jsonResponse(route.status, route.status == .noContent ? Data() : reply, headers: [:])
    }

    /// A file produced by a service (reports): raw bytes with their type and a download file name.
    func fileResponse(_ body: Data) throws -> Response {
        guard let file = try? JSON.decode(FileReply.self, from: body), let bytes = Data(base64Encoded: file.contentBase64) else {
            throw ServiceError.internal()
        }
        let safe = file.filename.filter { $0.isLetter || $0.isNumber || "-_.".contains($0) }
        let headers: HTTPFields = [.contentType: file.contentType, .contentDisposition: "attachment; filename=\"\(safe)\""]
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
