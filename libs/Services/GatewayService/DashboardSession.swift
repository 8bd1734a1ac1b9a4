import Bus
import Contracts
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import VigilCore
import VigilCrypto

/// The dashboard's session: `POST /ui/session` signs in through identity and puts the access token in an
/// `HttpOnly; SameSite=Strict` cookie (scripts never see a token, nothing goes to localStorage), with a
/// second, readable cookie holding a CSRF token that every change must echo in `X-CSRF-Token` (double
/// submit, compared in constant time). `DELETE /ui/session` clears both. API clients keep using
/// `Authorization` or `x-api-key`, which take precedence over the cookie.
enum DashboardSession {
    static let sessionCookie = "vigil_session"
    static let csrfCookie = "vigil_csrf"
    static let csrfHeader = HTTPField.Name("x-csrf-token")!

    /// A cookie's value from the request's `Cookie` headers.
    static func cookie(_ name: String, in request: Request) -> String? {
        for header in request.headers[values: .cookie] {
            for pair in header.split(separator: ";") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                if kv.count == 2, kv[0].trimmingCharacters(in: .whitespaces) == name {
                    let v = kv[1].trimmingCharacters(in: .whitespaces)
                    return v.isEmpty ? nil : v
                }
            }
        }
        return nil
    }

    static func checkCSRF(_ request: Request) throws {
        guard let expected = cookie(csrfCookie, in: request), let given = request.headers[csrfHeader],
            Sodium.constantTimeEqual(Array(expected.utf8), Array(given.utf8))
        else {
            throw ServiceError(status: 403, error: "csrf_failed", message: "a change with the session cookie needs the X-CSRF-Token header")
        }
    }

    static func cookies(token: String, csrf: String, maxAge: Int, secure: Bool) -> [String] {
        let flags = "Path=/; SameSite=Strict; Max-Age=\(maxAge)" + (secure ? "; Secure" : "")
        return ["\(sessionCookie)=\(token); HttpOnly; \(flags)", "\(csrfCookie)=\(csrf); \(flags)"]
    }

    static func register(on router: Router<GatewayContext>, bus: BusConnection, timeout: Duration, secure: Bool) {
        router.post("/ui/session") { request, context -> Response in
            let body = try await request.body.collect(upTo: 16_384)
            let callContext = CallContext(
                correlationId: CorrelationId.pick(request), clientAddress: context.client, userAgent: request.headers[.userAgent])
            let reply: Data
            do {
                reply = try await bus.requestJSON(Subjects.Identity.authLogin, body: Data(buffer: body), context: callContext, timeout: timeout)
            } catch let e as ServiceError {
                return ErrorEnvelope.response(e, correlationId: CorrelationId.pick(request))
            }
            guard var tokens = try JSONSerialization.jsonObject(with: reply) as? [String: Any], let access = tokens["access_token"] as? String else {
                return ErrorEnvelope.response(.internal(), correlationId: CorrelationId.pick(request))
            }
            let maxAge = tokens["expires_in"] as? Int ?? 900
            tokens["access_token"] = nil
            tokens["refresh_token"] = nil
            let csrf = Base64URL.encode(Sodium.randomBytes(24))
            tokens["csrf_token"] = csrf
            var response = jsonResponse(.ok, try JSONSerialization.data(withJSONObject: tokens, options: [.sortedKeys]), headers: [:])
            for c in cookies(token: access, csrf: csrf, maxAge: maxAge, secure: secure) {
                response.headers.append(HTTPField(name: .setCookie, value: c))
            }
            return response
        }
        router.delete("/ui/session") { request, _ -> Response in
            var response = Response(status: .noContent)
            for c in cookies(token: "", csrf: "", maxAge: 0, secure: secure) { response.headers.append(HTTPField(name: .setCookie, value: c)) }
            return response
        }
    }
}

/// The dashboard's files (built into the binary from `web/` by scripts/gen-contracts.py), served with a
/// strict Content-Security-Policy: scripts and styles only from this origin, no inline code, no framing.
enum DashboardAssets {
    static let csp =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        + "base-uri 'none'; form-action 'self'; object-src 'none'"

    static func response(_ name: String) -> Response {
        guard let asset = WebAssets.files[name] else {
            return ErrorEnvelope.response(.notFound("file"), correlationId: UUID().uuidString.lowercased())
        }
        let headers: HTTPFields = [
            .contentType: asset.type, .contentSecurityPolicy: csp, HTTPField.Name("x-content-type-options")!: "nosniff",
            HTTPField.Name("x-frame-options")!: "DENY", HTTPField.Name("referrer-policy")!: "no-referrer", .cacheControl: "no-cache",
        ]
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: asset.text)))
    }

    static func register(on router: Router<GatewayContext>) {
        router.get("/") { _, _ in response("index.html") }
        router.get("/ui/{file}") { _, context in response(context.parameters.get("file") ?? "") }
    }
}
