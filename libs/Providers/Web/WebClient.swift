import Foundation
import Net
import VigilCore

/// One HTTP exchange of a web scan, as checks read it. Header names are lower case; a header sent
/// several times (`set-cookie`) keeps every value.
public struct WebResponse: Sendable {
    public var url: String
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// The body was cut at the size limit.
    public var truncated: Bool

    public func header(_ name: String) -> String? { headers.first { $0.name == name }?.value }
    public func all(_ name: String) -> [String] { headers.filter { $0.name == name }.map(\.value) }
    public var text: String { String(decoding: body, as: UTF8.self) }
    public var location: String? { (300..<400).contains(status) ? header("location") : nil }
}

/// The web scan's HTTP client: every request (and every redirect hop) is checked by the SSRF guard and
/// sent to the address it checked; responses are bounded (header count and size, body size), and the
/// scan's deadline and request budget end it whatever the peer does. TLS is not verified here — the TLS
/// checks report the chain — but the extra CA bundle is the same either way. Blocking: run it on a
/// Dispatch thread (`Blocking`).
public final class WebClient: @unchecked Sendable {
    // @unchecked: `sent` is only touched under `lock`; everything else is immutable.
    public let guardrail: SSRFGuard
    public let deadline: ContinuousClock.Instant
    public let budget: Int
    public let maxBody: Int
    public let timeout: Double
    public let extraHeaders: [String: String]
    private let lock = NSLock()
    private var sent = 0

    public static let userAgent = "Vigil-WebScan/1 (+passive security check; https://github.com/vigil)"

    public init(
        guardrail: SSRFGuard, deadline: ContinuousClock.Instant, budget: Int = 150, maxBody: Int = 2 << 20, timeout: Double = 5,
        extraHeaders: [String: String] = [:]
    ) {
        self.guardrail = guardrail
        self.deadline = deadline
        self.budget = budget
        self.maxBody = maxBody
        self.timeout = timeout
        self.extraHeaders = extraHeaders
    }

    public var requestsSent: Int { lock.withLock { sent } }

    func take() throws {
        try lock.withLock {
            guard sent < budget else { throw NetError("request budget of \(budget) used up") }
            sent += 1
        }
        guard ContinuousClock.now < deadline else { throw NetError("scan time limit reached") }
    }

    /// One request, no redirect followed.
    public func send(_ method: String = "GET", _ url: String, headers: [String: String] = [:], maxBody: Int? = nil) throws -> WebResponse {
        try take()
        let target = try guardrail.check(url)
        guard let address = target.addresses.first else { throw NetError("no address for \(target.host)") }
        let conn = try NetConnection(address: address, port: target.port, timeout: timeout)
        defer { conn.shutdown() }
        conn.deadline = deadline
        if target.isTLS { _ = try conn.inspectTLS(TLSOffer(hostname: target.host)) }
        let hostHeader = (target.port == (target.isTLS ? 443 : 80)) ? target.host : "\(target.host):\(target.port)"
        var head = "\(method) \(target.pathAndQuery.isEmpty ? "/" : target.pathAndQuery) HTTP/1.1\r\nHost: \(hostHeader)\r\n"
        head += "User-Agent: \(Self.userAgent)\r\nAccept: */*\r\nAccept-Encoding: identity\r\nConnection: close\r\n"
        for (k, v) in extraHeaders.merging(headers, uniquingKeysWith: { $1 })
        where !["host", "content-length", "connection", "transfer-encoding"].contains(k.lowercased()) && !(k + v).contains(where: \.isNewline) {
            head += "\(k): \(v)\r\n"
        }
        try conn.write(head + "\r\n")
        return try read(conn, url: url, method: method, limit: maxBody ?? self.maxBody)
    }

    /// Follows redirects (at most `limit`), each hop checked again; returns every response in order.
    public func follow(_ url: String, headers: [String: String] = [:], limit: Int = 5) throws -> [WebResponse] {
        var out: [WebResponse] = []
        var next = url
        var seen: Set<String> = []
        for _ in 0...limit {
            let r = try send("GET", next, headers: headers)
            out.append(r)
            guard let loc = r.location, let resolved = URL(string: loc, relativeTo: URL(string: next))?.absoluteString else { return out }
            guard seen.insert(resolved).inserted else { return out }
            next = resolved
        }
        return out
    }

    func read(_ conn: NetConnection, url: String, method: String, limit: Int) throws -> WebResponse {
        let statusLine = try conn.readLine(limit: 8192)
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else { throw NetError("malformed HTTP response") }
        var headers: [(String, String)] = []
        var headerBytes = 0
        while true {
            let line = try conn.readLine(limit: 16384)
            if line.isEmpty { break }
            headerBytes += line.utf8.count
            guard headers.count < 200, headerBytes < 65536 else { throw NetError("response headers too large") }
            if let c = line.firstIndex(of: ":") {
                headers.append((line[..<c].lowercased(), line[line.index(after: c)...].trimmingCharacters(in: .whitespaces)))
            }
        }
        var r = WebResponse(url: url, status: status, headers: headers.map { (name: $0.0, value: $0.1) }, body: [], truncated: false)
        if method == "HEAD" || status == 204 || status == 304 || (100..<200).contains(status) { return r }
        if let len = r.header("content-length").flatMap(Int.init) {
            r.body = try conn.read(count: min(len, limit))
            r.truncated = len > limit
        } else if r.header("transfer-encoding")?.lowercased().contains("chunked") == true {
            while r.body.count < limit {
                guard let size = Int(try conn.readLine(limit: 1024).split(separator: ";").first ?? "", radix: 16), size > 0 else { break }
                r.body += try conn.read(count: min(size, limit - r.body.count + 1))
                if r.body.count > limit { break }
                _ = try conn.readLine(limit: 1024)
            }
            r.truncated = r.body.count > limit
            if r.truncated { r.body = Array(r.body.prefix(limit)) }
        } else {
            r.body = try conn.readToEnd(limit: limit + 1)
            r.truncated = r.body.count > limit
            if r.truncated { r.body = Array(r.body.prefix(limit)) }
        }
        return r
    }
}
