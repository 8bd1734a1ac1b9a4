import Foundation
import HTTPTypes
import Hummingbird
import MCP
import NIOCore
import VigilAPIClient

/// MCP streamable HTTP at `/mcp` (POST for messages, GET for the server's stream, DELETE to end a session).
/// A session is opened by an `initialize` request carrying the caller's Vigil key (`Authorization: Bearer`
/// or `x-api-key`); it gets its own MCP server acting with that key, so the key's role applies to every tool.
/// Every later request of the session must carry the same key: another key (or none) is answered 404, as
/// for an unknown session, so a session id alone is worth nothing. Idle sessions end after 30 minutes.
struct MCPHTTPServer {
    let address: String
    let vigilURL: String

    func run() async throws {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]), (0...65535).contains(port) else {
            throw CLIError(message: "--http wants HOST:PORT, such as 127.0.0.1:8765")
        }
        let host = String(address[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        try await API(url: vigilURL, token: "").shutdown()  // the URL is checked once, here, rather than at the first session
        let allowed = ProcessInfo.processInfo.environment["VIGIL_MCP_ALLOWED_HOSTS"].map {
            $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        let sessions = MCPSessions(vigilURL: vigilURL, allowedHosts: allowed)
        let router = Router()
        for method in [HTTPRequest.Method.post, .get, .delete] {
            router.on("/mcp", method: method) { request, _ in try await sessions.handle(request) }
        }
        router.get("/health") { _, _ in "ok" }
        let app = Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "vigil-mcp"),
            onServerRunning: { channel in
                FileHandle.standardError.write(
                    Data("vigil-mcp: serving MCP at http://\(address)/mcp (\(channel.localAddress?.description ?? ""))\n".utf8))
            })
        try await app.runService()
    }
}

actor MCPSessions {
    struct Session {
        let server: Server
        let transport: StatefulHTTPServerTransport
        let api: API
        var lastUsed: Date
    }

    let vigilURL: String
    let allowedHosts: [String]?
    var sessions: [String: Session] = [:]
    static let maxSessions = 256
    static let idle: TimeInterval = 30 * 60
    static let maxBody = 1 << 20

    init(vigilURL: String, allowedHosts: [String]?) {
        self.vigilURL = vigilURL
        self.allowedHosts = allowedHosts
    }

    /// The caller's key, from `Authorization: Bearer` or `x-api-key`.
    static func key(_ request: Request) -> String? {
        if let auth = request.headers[.authorization], auth.lowercased().hasPrefix("bearer ") {
            let token = auth.dropFirst("bearer ".count).trimmingCharacters(in: .whitespaces)
            return token.isEmpty ? nil : token
        }
        if let name = HTTPField.Name("x-api-key"), let key = request.headers[name], !key.isEmpty { return key }
        return nil
    }

    static func jsonError(_ status: HTTPResponse.Status, _ message: String, extra: HTTPFields = [:]) -> Response {
        let body = try? JSONSerialization.data(withJSONObject: ["jsonrpc": "2.0", "error": ["code": -32600, "message": message], "id": NSNull()])
        var headers = extra
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body ?? Data())))
    }

    func handle(_ incoming: Request) async throws -> Response {
        var request = incoming
        guard let key = Self.key(request) else {
            return Self.jsonError(.unauthorized, "a Vigil API key is required (Authorization: Bearer KEY)", extra: [.wwwAuthenticate: "Bearer"])
        }
        let body: ByteBuffer
        do { body = try await request.collectBody(upTo: Self.maxBody) } catch {
            return Self.jsonError(.contentTooLarge, "the request body is over 1 MiB")
        }
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        if let authority = request.head.authority { headers["host"] = authority }
        let mcpRequest = MCP.HTTPRequest(method: request.method.rawValue, headers: headers, body: Data(buffer: body), path: request.uri.path)
        evictIdle()

        let session: Session
        if let id = mcpRequest.header(HTTPHeaderName.sessionID) {
            // An unknown session and a known one opened with another key look the same.
            guard var known = sessions[id], known.api.token == key else {
                return Self.jsonError(.notFound, "Not Found: invalid or expired session ID")
            }
            known.lastUsed = Date()
            sessions[id] = known
            session = known
        } else {
            guard request.method == .post else { return Self.jsonError(.badRequest, "Bad Request: Mcp-Session-Id header is required") }
            guard sessions.count < Self.maxSessions else {
                return Self.jsonError(.serviceUnavailable, "too many open MCP sessions; try again later", extra: [.retryAfter: "60"])
            }
            let id = UUID().uuidString.lowercased()
            let api = try API(url: vigilURL, token: key)
            let validators: [any HTTPRequestValidator] = [
                allowedHosts.map { hosts in
                    OriginValidator(allowedHosts: hosts, allowedOrigins: hosts.flatMap { ["http://\($0)", "https://\($0)"] })
                } ?? OriginValidator.localhost(),
                AcceptHeaderValidator(mode: .sseRequired), ContentTypeValidator(), ProtocolVersionValidator(), SessionValidator(),
            ]
            let transport = StatefulHTTPServerTransport(
                sessionIDGenerator: FixedSessionID(id: id), validationPipeline: StandardValidationPipeline(validators: validators))
            let server = await makeServer(api: api)
            do { try await server.start(transport: transport) } catch {
                await api.shutdown()
                throw error
            }
            session = Session(server: server, transport: transport, api: api, lastUsed: Date())
            let response = await transport.handleRequest(mcpRequest)
            guard response.headers.keys.contains(where: { $0.lowercased() == HTTPHeaderName.sessionID.lowercased() }) else {
                // Not an initialize request (or refused): no session was opened.
                await Self.close(session)
                return Self.response(response)
            }
            sessions[id] = session
            return Self.response(response)
        }
        let response = await session.transport.handleRequest(mcpRequest)
        if request.method == .delete, response.statusCode == 200, let id = mcpRequest.header(HTTPHeaderName.sessionID) {
            sessions[id] = nil
            await Self.close(session)
        }
        return Self.response(response)
    }

    func evictIdle() {
        let cutoff = Date().addingTimeInterval(-Self.idle)
        for (id, s) in sessions where s.lastUsed < cutoff {
            sessions[id] = nil
            Task { await Self.close(s) }
        }
    }

    static func close(_ s: Session) async {
        await s.server.stop()
        await s.api.shutdown()
    }

    static func response(_ r: MCP.HTTPResponse) -> Response {
        var headers = HTTPFields()
        for (name, value) in r.headers { if let n = HTTPField.Name(name) { headers[n] = value } }
        let status = HTTPResponse.Status(code: r.statusCode)
        if case .stream(let stream, _) = r {
            return Response(
                status: status, headers: headers,
                body: ResponseBody { writer in
                    for try await chunk in stream { try await writer.write(ByteBuffer(bytes: chunk)) }
                    try await writer.finish(nil)
                })
        }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: r.bodyData ?? Data())))
    }
}

/// The session id we chose before the transport was made, so the session can be filed under it.
struct FixedSessionID: SessionIDGenerator {
    let id: String
    func generateSessionID() -> String { id }
}
