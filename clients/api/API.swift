import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

#if canImport(Glibc)
    import Glibc
#endif

/// An error as the CLI prints it: the API's message, its code and correlation id, never a stack trace.
public struct CLIError: Error, CustomStringConvertible {
    public var message: String
    public var code: String? = nil
    public var correlationId: String? = nil
    public var exitCode: Int32 = 1

    public init(message: String, code: String? = nil, correlationId: String? = nil, exitCode: Int32 = 1) {
        self.message = message
        self.code = code
        self.correlationId = correlationId
        self.exitCode = exitCode
    }

    public var description: String {
        var s = "error: \(message)"
        if let code { s += " [\(code)]" }
        if let correlationId { s += " (correlation id \(correlationId))" }
        return s
    }
}

/// Where the CLI keeps the login: `$XDG_CONFIG_HOME/vigil/config.json` (else `~/.config/vigil`), mode
/// 600 in a 700 directory. `VIGIL_URL` and `VIGIL_TOKEN` (a bearer token or an API key) override it.
public struct CLIConfig: Codable {
    public var url: String
    public var token: String

    public init(url: String, token: String) {
        self.url = url
        self.token = token
    }

    public static var directory: String {
        let env = ProcessInfo.processInfo.environment
        let base = env["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (NSHomeDirectory() + "/.config")
        return base + "/vigil"
    }
    public static var path: String { directory + "/config.json" }

    public static func load() throws -> CLIConfig {
        let env = ProcessInfo.processInfo.environment
        var stored: CLIConfig? = nil
        if FileManager.default.fileExists(atPath: path) {
            stored = try? JSONDecoder().decode(CLIConfig.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        }
        let url = env["VIGIL_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? stored?.url
        let token = env["VIGIL_TOKEN"].flatMap { $0.isEmpty ? nil : $0 } ?? stored?.token
        guard let url, let token else {
            throw CLIError(message: "not logged in: run `vigil login --url URL --api-key KEY` (or set VIGIL_URL and VIGIL_TOKEN)")
        }
        return CLIConfig(url: url, token: token)
    }

    public func save() throws {
        try FileManager.default.createDirectory(atPath: Self.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: Self.directory)
        let tmp = Self.path + ".tmp"
        let data = try JSONEncoder().encode(self)
        guard FileManager.default.createFile(atPath: tmp, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw CLIError(message: "cannot write \(tmp)")
        }
        guard rename(tmp, Self.path) == 0 else { throw CLIError(message: "cannot write \(Self.path)") }
    }
}

/// The REST API of Vigil as JSON values, for the CLI and the MCP server (both clients of REST only).
public final class API: Sendable {
    public let base: String
    public let token: String
    let http: HTTPClient

    public init(url: String, token: String) throws {
        guard let u = URL(string: url), let scheme = u.scheme?.lowercased(), ["http", "https"].contains(scheme), u.host != nil else {
            throw CLIError(message: "the URL must be absolute, such as https://vigil.example.com")
        }
        base = (url.hasSuffix("/") ? String(url.dropLast()) : url) + "/api/v1"
        self.token = token
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: .seconds(10), read: .seconds(60))
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    public convenience init() throws {
        let c = try CLIConfig.load()
        try self.init(url: c.url, token: c.token)
    }

    public func shutdown() async { try? await http.shutdown() }

    /// API keys go in `x-api-key`, anything else is a bearer token.
    var authHeader: (String, String) { token.hasPrefix("vgl_") ? ("x-api-key", token) : ("Authorization", "Bearer \(token)") }

    public func raw(
        _ method: HTTPMethod, _ path: String, body: Any? = nil, auth: Bool = true
    ) async throws -> (status: Int, data: Data, headers: HTTPHeaders) {
        var req = request(path, auth: auth)
        req.method = method
        if let body {
            req.headers.add(name: "content-type", value: "application/json")
            req.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        }
        let res = try await execute(req)
        let buf = try await res.body.collect(upTo: 64 << 20)
        return (Int(res.status.code), Data(buf.readableBytesView), res.headers)
    }

    /// A request to `path` under the API's base, with the CLI's user agent and (unless `auth` is false) its credential.
    func request(_ path: String, auth: Bool = true) -> HTTPClientRequest {
        var req = HTTPClientRequest(url: base + path)
        req.headers.add(name: "user-agent", value: "vigil-cli/1")
        if auth {
            let (k, v) = authHeader
            req.headers.add(name: k, value: v)
        }
        return req
    }

    /// Sends `req`; the response's head within 60 s (its body is read by the caller).
    func execute(_ req: HTTPClientRequest) async throws -> HTTPClientResponse {
        do { return try await http.execute(req, timeout: .seconds(60)) } catch {
            throw CLIError(message: "cannot reach \(base): \(error)")
        }
    }

    /// A JSON call; a non-2xx answer becomes the API's error envelope as a `CLIError`.
    @discardableResult
    public func call(_ method: HTTPMethod, _ path: String, body: Any? = nil, auth: Bool = true) async throws -> [String: Any] {
        let (status, data, headers) = try await raw(method, path, body: body, auth: auth)
        try Self.check(status, data, headers)
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    }

    /// A streamed answer (`GET /findings/export`) handed to `chunk` as it arrives; a non-2xx answer throws as
    /// `call` does, and one cut short (the gateway stops a failing export without its final chunk) throws too.
    public func stream(_ path: String, _ chunk: (Data) throws -> Void) async throws {
        let res = try await execute(request(path))
        guard (200..<300).contains(Int(res.status.code)) else {
            let buf = try await res.body.collect(upTo: 1 << 20)
            return try Self.check(Int(res.status.code), Data(buf.readableBytesView), res.headers)
        }
        do {
            for try await buf in res.body { try chunk(Data(buf.readableBytesView)) }
        } catch let e as CLIError {
            throw e
        } catch {
            throw CLIError(message: "the answer was cut short: \(error)")
        }
    }

    /// A non-2xx answer as the API's error envelope (`CLIError`: message, issues, code, correlation id).
    static func check(_ status: Int, _ data: Data, _ headers: HTTPHeaders) throws {
        guard !(200..<300).contains(status) else { return }
        let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        do {
            var message = json["message"] as? String ?? "HTTP \(status)"
            if let issues = json["issues"] as? [[String: Any]], !issues.isEmpty {
                message += ": " + issues.map { "\($0["path"] as? String ?? ""): \($0["message"] as? String ?? "")" }.joined(separator: "; ")
            }
            throw CLIError(
                message: message, code: json["error"] as? String,
                correlationId: json["correlation_id"] as? String ?? headers.first(name: "x-correlation-id"), exitCode: status == 401 ? 2 : 1)
        }
    }

    /// Every item of a paginated list (bounded).
    public func all(_ path: String, limit: Int = 200, max: Int = 10_000) async throws -> [[String: Any]] {
        var out: [[String: Any]] = []
        var cursor: String? = nil
        repeat {
            let sep = path.contains("?") ? "&" : "?"
            let page = try await call(.GET, path + "\(sep)limit=\(limit)" + (cursor.map { "&cursor=\(Self.escape($0))" } ?? ""))
            out += page["items"] as? [[String: Any]] ?? []
            cursor = page["next_cursor"] as? String
        } while cursor != nil && out.count < max
        return out
    }

    /// A connection by id or by name.
    public func connectionId(_ given: String) async throws -> String {
        if UUID(uuidString: given) != nil { return given.lowercased() }
        let matches = try await all("/connections/").filter { ($0["name"] as? String) == given }
        guard let first = matches.first, let id = first["id"] as? String else { throw CLIError(message: "no connection named \(given)") }
        if matches.count > 1 { throw CLIError(message: "\(matches.count) connections are named \(given); use the id") }
        return id
    }

    public static func escape(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: "-._~"))) ?? s
    }
}
