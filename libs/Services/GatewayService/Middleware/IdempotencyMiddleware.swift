import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import VigilCore
import VigilCrypto

/// `Idempotency-Key` on mutating routes: the first answer (success or a 4xx) is stored for 24 h and
/// replayed with `Idempotent-Replayed: true`; the same key with another body, or while the first request
/// is in flight, is a 409. A 5xx or a bus failure frees the key so the client can retry.
struct IdempotencyMiddleware: RouterMiddleware {
    typealias Context = GatewayContext
    let route: Route
    let store: IdempotencyStore

    func handle(
        _ request: Request, context: GatewayContext,
        next: (Request, GatewayContext) async throws -> Response
    ) async throws -> Response {
        guard route.isMutating, let key = request.headers[.idempotencyKey] else { return try await next(request, context) }
        guard (1...255).contains(key.count) else { throw ServiceError.validation("header.idempotency-key", "must be 1 to 255 characters") }
        let principal = context.principal?.principal
        let scope = principal.map { "\($0.tenantId):\($0.userId ?? $0.apiKeyId ?? "")" } ?? "anon:" + context.client
        let slot = IdempotencyStore.slot(scope: scope, method: route.method.rawValue, path: request.uri.path, key: key)
        let fingerprint = SecretToken.hash(request.uri.path + "\n" + String(decoding: context.rawBody, as: UTF8.self))
        switch try await store.begin(slot: slot, fingerprint: fingerprint) {
        case .replay(let status, let body):
            return jsonResponse(HTTPResponse.Status(code: status), body, headers: [.idempotentReplayed: "true"])
        case .proceed:
            let response: Response
            do {
                response = try await next(request, context)
            } catch {
                guard let e = ErrorEnvelope.serviceError(error), e.status < 500 else {
                    try? await store.abandon(slot: slot)
                    throw error
                }
                let body = ErrorEnvelope.body(e, correlationId: context.correlationId)
                try await store.finish(slot: slot, fingerprint: fingerprint, status: e.status, body: body)
                return jsonResponse(HTTPResponse.Status(code: e.status), body, headers: [:])
            }
            let (body, replayable) = try await response.collectedBody()
            try await store.finish(slot: slot, fingerprint: fingerprint, status: response.status.code, body: body)
            return replayable
        }
    }
}

extension Response {
    /// The body's bytes, and the same response with a body that can still be written (the forwarder's
    /// answers are small JSON documents already in memory).
    func collectedBody() async throws -> (Data, Response) {
        final class Sink { var buffer = ByteBuffer() }
        struct Collector: ResponseBodyWriter {
            let sink: Sink
            mutating func write(_ buffer: ByteBuffer) async throws {
                var buffer = buffer
                sink.buffer.writeBuffer(&buffer)
            }
            consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
        }
        let sink = Sink()
        try await body.write(Collector(sink: sink))
        var copy = self
        copy.body = .init(byteBuffer: sink.buffer)
        return (Data(buffer: sink.buffer), copy)
    }
}
