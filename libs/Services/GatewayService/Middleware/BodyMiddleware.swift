import Foundation
import Hummingbird
import NIOCore
import VigilCore

/// Reads the body (at most `maxBytes`: 413 beyond) and builds the bus request: the JSON object of the
/// body merged with the path parameters and the route's typed query parameters. Bad JSON is a 400, a body
/// that is not an object and an ill-typed query parameter are 422s. Signed payloads (Stripe webhooks,
/// connector calls) go on as their exact bytes with the headers that sign them, the method and the path.
struct BodyMiddleware: RouterMiddleware {
    typealias Context = GatewayContext
    /// Headers that sign raw-body requests (Stripe's webhooks, connectors' calls) and go on with them.
    static let signingHeaders: Set<String> = [
        "stripe-signature", "content-type", "x-vigil-connector", "x-vigil-timestamp", "x-vigil-nonce", "x-vigil-signature",
    ]
    let route: Route
    let maxBytes: Int

    func handle(
        _ request: Request, context: GatewayContext,
        next: (Request, GatewayContext) async throws -> Response
    ) async throws -> Response {
        var context = context
        if route.takesBody {
            let buffer: ByteBuffer
            do {
                buffer = try await request.body.collect(upTo: maxBytes)
            } catch {
                throw ServiceError(status: 413, error: "payload_too_large", message: "request body exceeds \(maxBytes) bytes")
            }
            context.rawBody = Data(buffer: buffer)
        }
        context.payload = try payload(request, context)
        return try await next(request, context)
    }

    func payload(_ request: Request, _ context: GatewayContext) throws -> Data {
        let raw = context.rawBody
        if route.rawBody {
            var headers: [String: String] = [:]
            for field in request.headers where Self.signingHeaders.contains(field.name.canonicalName) {
                headers[field.name.canonicalName] = field.value
            }
            var params: [String: String] = [:]
            for name in route.pathParameters { params[name] = context.parameters.get(name) ?? "" }
            return try JSONSerialization.data(
                withJSONObject: [
                    "raw_base64": raw.base64EncodedString(), "headers": headers, "method": request.method.rawValue, "path": request.uri.path,
                    "params": params,
                ])
        }
        guard route.takesBody, !raw.isEmpty, !raw.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) else {
            // No body: the parameters are the object, written directly (JSONSerialization's boxing and
            // casts were 3 % of the gateway's time per read).
            var out: [UInt8] = []
            FastJSON.list(try parameters(request, context), open: 0x7B, close: 0x7D, into: &out) { p, out in
                FastJSON.quote(p.name, into: &out)
                out.append(0x3A)
                switch p.value {
                case .string(let v): FastJSON.quote(v, into: &out)
                case .int(let i): out.append(contentsOf: String(i).utf8)
                case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
                }
            }
            return Data(out)
        }
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: raw, options: [.fragmentsAllowed])
        } catch {
            throw ServiceError.badRequest("request body is not valid JSON", code: "invalid_json")
        }
        guard var object = parsed as? [String: Any] else { throw ServiceError.validation("body", "must be a JSON object") }
        for p in try parameters(request, context) {
            switch p.value {
            case .string(let v): object[p.name] = v
            case .int(let i): object[p.name] = i
            case .bool(let b): object[p.name] = b
            }
        }
        return try JSONSerialization.data(withJSONObject: object)
    }

    enum Parameter {
        case string(String), int(Int), bool(Bool)
    }

    /// The route's typed query parameters, then its path parameters (a path parameter wins over a query
    /// parameter of the same name: it is the one left in the object).
    func parameters(_ request: Request, _ context: GatewayContext) throws -> [(name: String, value: Parameter)] {
        var out: [(name: String, value: Parameter)] = []
        for (name, type) in route.query {
            guard let value = request.uri.queryParameters.get(name) else { continue }
            switch type {
            case .string: out.append((name, .string(value)))
            case .int:
                guard let i = Int(value) else { throw ServiceError.validation("query.\(name)", "must be an integer") }
                out.append((name, .int(i)))
            case .bool:
                guard let b = ["true": true, "false": false, "1": true, "0": false][value.lowercased()] else {
                    throw ServiceError.validation("query.\(name)", "must be true or false")
                }
                out.append((name, .bool(b)))
            }
            if route.pathParameters.contains(name) { out.removeLast() }
        }
        for name in route.pathParameters { out.append((name, .string(context.parameters.get(name) ?? ""))) }
        return out
    }
}
