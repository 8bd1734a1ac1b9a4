import Hummingbird
import Logging
import VigilCore

/// Outermost concern of every route: picks the correlation id (the client's `x-correlation-id` when it is
/// well formed, else a new one), puts it on the response, and turns anything thrown inside into the error
/// envelope. Unexpected errors are logged and answered 500 without their text.
struct EnvelopeMiddleware: RouterMiddleware {
    typealias Context = GatewayContext
    let logger: Logger

    func handle(
        _ request: Request, context: GatewayContext,
        next: (Request, GatewayContext) async throws -> Response
    ) async throws -> Response {
        var context = context
        let cid = CorrelationId.pick(request)
        context.correlationId = cid
        do {
            var response = try await next(request, context)
            response.headers[.correlationId] = cid
            return response
        } catch {
            let headers = (error as? HeaderedError)?.headers ?? [:]
            guard let e = ErrorEnvelope.serviceError(error) else {
                logger.error("gateway failure", metadata: ["error": "\(error)", "correlation_id": "\(cid)"])
                return ErrorEnvelope.response(.internal(), correlationId: cid, headers: headers)
            }
            return ErrorEnvelope.response(e, correlationId: cid, headers: headers)
        }
    }
}

/// The request's correlation id: the client's when it is 1–128 safe characters, else a new one.
enum CorrelationId {
    static func pick(_ request: Request) -> String {
        if let c = request.headers[.correlationId], (1...128).contains(c.count),
            c.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.:".contains($0)) })
        {
            return c
        }
        return ID.make()
    }
}
