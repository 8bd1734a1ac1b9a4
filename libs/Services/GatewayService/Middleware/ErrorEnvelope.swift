import Bus
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import VigilCore

/// The one place errors become HTTP: `{"error", "message", "correlation_id", "issues"?, "quota"?}` with
/// the error's status, as DESIGN.md §4 describes.
enum ErrorEnvelope {
    /// The envelope's JSON body.
    static func body(_ e: ServiceError, correlationId: String) -> Data {
        var obj: [String: Any] = ["error": e.error, "message": e.message, "correlation_id": correlationId]
        if let issues = e.issues { obj["issues"] = issues.map { ["path": $0.path, "message": $0.message] } }
        if let q = e.quota {
            obj["quota"] =
                ["name": q.name, "limit": q.limit, "used": q.used, "resets_at": q.resetsAt.map { $0 as Any } ?? NSNull()] as [String: Any]
        }
        return (try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
    }

    /// The envelope as a response, with `x-correlation-id` and any headers that must accompany it.
    static func response(_ e: ServiceError, correlationId: String, headers: HTTPFields = [:]) -> Response {
        var h = headers
        h[.correlationId] = correlationId
        // A dependency is down: the client may retry shortly.
        if e.status == 503 && h[.retryAfter] == nil { h[.retryAfter] = "2" }
        return jsonResponse(HTTPResponse.Status(code: e.status), body(e, correlationId: correlationId), headers: h)
    }

    /// What an error thrown by a middleware or the bus means to the client.
    static func serviceError(_ error: any Error) -> ServiceError? {
        switch error {
        case let e as ServiceError: e
        case let e as BusError: e.serviceError
        case let e as HeaderedError: serviceError(e.underlying)
        default: nil
        }
    }
}

/// An error that must reach the client with headers set by the middleware it passed through (rate-limit
/// headers on every response, `Retry-After` on a 429).
struct HeaderedError: Error {
    var underlying: any Error
    var headers: HTTPFields
}

/// A JSON response (204 has no body and no content type).
func jsonResponse(_ status: HTTPResponse.Status, _ body: Data, headers: HTTPFields) -> Response {
    var h = headers
    if status == .noContent { return Response(status: status, headers: h) }
    h[.contentType] = "application/json"
    return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: body)))
}
