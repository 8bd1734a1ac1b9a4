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
        var req = HTTPClientRequest(url: base + path)
        req.method = method
        req.headers.add(name: "user-agent", value: "vigil-cli/1")
        if auth {
            let (k, v) = authHeader
            req.headers.add(name: k, value: v)
        }
        if let body {
            req.headers.add(name: "content-type", value: "application/json")
            req.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        }
        let res: HTTPClientResponse
        do { res = try await http.execute(req, timeout: .seconds(60)) } catch {
            throw CLIError(message: "cannot reach \(base): \(error)")
        }
        let buf = try await res.body.collect(upTo: 64 << 20)
        return (Int(res.status.code), Data(buf.readableBytesView), res.headers)
    }

    /// A JSON call; a non-2xx answer becomes the API's error envelope as a `CLIError`.
    @discardableResult
    public func call(_ method: HTTPMethod, _ path: String, body: Any? = nil, auth: Bool = true) async throws -> [String: Any] {
        let (status, data, headers) = try await raw(method, path, body: body, auth: auth)
        try Self.check(status, data, headers)
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    }

    /// A page's raw bytes (for streaming without decoding every item); non-2xx answers throw as `call` does.
    public func rawPage(_ path: String) async throws -> Data {
        let (status, data, headers) = try await raw(.GET, path)
        try Self.check(status, data, headers)
        return data
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

/// The items of a list page and its next cursor, found in the page's bytes without decoding the items: a
/// CLI streaming 100,000 findings copies each one through as the API wrote it.
public enum PageSplitter {
    /// Byte ranges of the top-level `items` array's elements, and `next_cursor` (nil when null or absent).
    public static func split(_ data: Data) throws -> (items: [Range<Int>], nextCursor: String?) {
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let b = raw.bindMemory(to: UInt8.self)
            var i = 0
            var items: [Range<Int>] = []
            var cursor: String? = nil
            func skipSpace() { while i < b.count && (b[i] == 32 || b[i] == 10 || b[i] == 13 || b[i] == 9) { i += 1 } }
            /// Skips one JSON value starting at `i` (strings with escapes, nested arrays and objects).
            func skipValue() throws {
                skipSpace()
                guard i < b.count else { throw CLIError(message: "the API's page is not JSON") }
                if b[i] == 34 {
                    i += 1
                    while i < b.count && b[i] != 34 { i += b[i] == 92 ? 2 : 1 }
                    i += 1
                    return
                }
                if b[i] == 123 || b[i] == 91 {
                    var depth = 0
                    repeat {
                        let c = b[i]
                        if c == 34 {
                            i += 1
                            while i < b.count && b[i] != 34 { i += b[i] == 92 ? 2 : 1 }
                        } else if c == 123 || c == 91 {
                            depth += 1
                        } else if c == 125 || c == 93 {
                            depth -= 1
                        }
                        i += 1
                    } while depth > 0 && i < b.count
                    return
                }
                while i < b.count && !(b[i] == 44 || b[i] == 125 || b[i] == 93) { i += 1 }
            }
            func string() throws -> String {
                let start = i + 1
                try skipValue()
                let raw = Data(b[start..<(i - 1)])
                guard raw.contains(92) else { return String(decoding: raw, as: UTF8.self) }
                let quoted = Data("[\"".utf8) + raw + Data("\"]".utf8)
                return ((try? JSONSerialization.jsonObject(with: quoted)) as? [String])?.first ?? ""
            }
            skipSpace()
            guard i < b.count, b[i] == 123 else { throw CLIError(message: "the API's page is not a JSON object") }
            i += 1
            while true {
                skipSpace()
                guard i < b.count, b[i] != 125 else { break }
                if b[i] == 44 {
                    i += 1
                    continue
                }
                let key = try string()
                skipSpace()
                guard i < b.count, b[i] == 58 else { throw CLIError(message: "the API's page is not JSON") }
                i += 1
                skipSpace()
                if key == "items", i < b.count, b[i] == 91 {
                    i += 1
                    while true {
                        skipSpace()
                        guard i < b.count, b[i] != 93 else { break }
                        if b[i] == 44 {
                            i += 1
                            continue
                        }
                        let start = i
                        try skipValue()
                        items.append(start..<i)
                    }
                    i += 1
                } else if key == "next_cursor", i < b.count, b[i] == 34 {
                    cursor = try string()
                } else {
                    try skipValue()
                }
            }
            return (items, cursor)
        }
    }

    /// `next_cursor` read from the page's tail, where the API writes it (after the items), so the next
    /// page can be asked for before this one is split: `.some(nil)` for `null`, nil when it is not there
    /// in that form (then `split` finds it).
    public static func trailingCursor(_ data: Data) -> String?? {
        let key = Array(#""next_cursor":"#.utf8)
        return data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> String?? in
            let b = raw.bindMemory(to: UInt8.self)
            var at = b.count - key.count
            let floor = max(0, b.count - 4096)
            while at >= floor, !(b[at] == 34 && b[at..<(at + key.count)].elementsEqual(key)) { at -= 1 }
            guard at >= floor else { return nil }
            var i = at + key.count
            while i < b.count, b[i] == 32 { i += 1 }
            if i + 4 <= b.count, b[i..<(i + 4)].elementsEqual("null".utf8) { return .some(nil) }
            guard i < b.count, b[i] == 34 else { return nil }
            let start = i + 1
            var end = start
            while end < b.count, b[end] != 34 {
                if b[end] == 92 { return nil }  // escapes: leave it to split
                end += 1
            }
            guard end < b.count else { return nil }
            return .some(String(decoding: b[start..<end], as: UTF8.self))
        }
    }
}
