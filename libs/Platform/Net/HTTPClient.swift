import Foundation

/// A minimal HTTP/1.1 client for outbound webhooks: one request per connection, to an address the
/// SSRF guard validated, with a bounded response. Blocking: run it on a Dispatch thread.
public struct OutboundHTTP: Sendable {
    public let guardrail: SSRFGuard
    public let timeout: Double
    public let verifyTLS: Bool

    public init(guardrail: SSRFGuard, timeout: Double = 10, verifyTLS: Bool = true) {
        self.guardrail = guardrail
        self.timeout = timeout
        self.verifyTLS = verifyTLS
    }

    public struct Response: Sendable {
        public let status: Int
        public let headers: [String: String]
        /// The first bytes of the body (excerpt for the delivery log).
        public let body: String

        public init(status: Int, headers: [String: String], body: String) {
            self.status = status
            self.headers = headers
            self.body = body
        }
    }

    public func post(_ url: String, headers: [String: String], body: [UInt8]) throws -> Response {
        try send(method: "POST", url: url, headers: headers, body: body, maxBody: 2048)
    }

    /// Any method; the body of the response is read up to `maxBody` bytes.
    public func send(method: String, url: String, headers: [String: String], body: [UInt8], maxBody: Int) throws -> Response {
        let target = try guardrail.check(url)
        var lastError: any Error = NetError("no address")
        for address in target.addresses {
            do {
                let conn = try NetConnection(address: address, port: target.port, timeout: timeout)
                defer { conn.shutdown() }
                if target.isTLS { try conn.startTLS(hostname: target.host, verify: verifyTLS) }
                let hostHeader = (target.port == (target.isTLS ? 443 : 80)) ? target.host : "\(target.host):\(target.port)"
                var head = "\(method) \(target.pathAndQuery) HTTP/1.1\r\nHost: \(hostHeader)\r\nUser-Agent: Vigil/1\r\n"
                head += "Content-Length: \(body.count)\r\nConnection: close\r\n"
                for (k, v) in headers
                where k.lowercased() != "host" && !k.contains("\r") && !k.contains("\n") && !v.contains("\r") && !v.contains("\n") {
                    head += "\(k): \(v)\r\n"
                }
                try conn.write(Array((head + "\r\n").utf8) + body)
                return try readResponse(conn, limit: maxBody)
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    func readResponse(_ conn: NetConnection, limit: Int) throws -> Response {
        let statusLine = try conn.readLine()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw NetError("malformed HTTP response")
        }
        var headers: [String: String] = [:]
        while true {
            let line = try conn.readLine()
            if line.isEmpty { break }
            if let c = line.firstIndex(of: ":") {
                headers[line[..<c].lowercased()] = line[line.index(after: c)...].trimmingCharacters(in: .whitespaces)
            }
            if headers.count > 100 { throw NetError("too many response headers") }
        }
        var body: [UInt8] = []
        if let len = headers["content-length"].flatMap(Int.init) {
            body = try conn.read(count: min(len, limit))
        } else if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            while body.count < limit {
                guard let size = Int(try conn.readLine().split(separator: ";").first ?? "", radix: 16), size > 0 else { break }
                body += try conn.read(count: size)
                _ = try conn.readLine()
            }
        } else {
            body = try conn.readToEnd(limit: limit)
        }
        return Response(status: status, headers: headers, body: String(decoding: body.prefix(limit), as: UTF8.self))
    }
}
