import Foundation

/// SMTP submission settings.
public struct SMTPSettings: Sendable {
    public var host: String
    public var port: Int
    /// `starttls` (upgrade when offered; required when credentials are set), `tls` (implicit), `none`.
    public var security: String
    public var username: String?
    public var password: String?
    public var from: String
    public var verifyTLS: Bool
    public var timeout: Double

    public init(
        host: String, port: Int, security: String = "starttls", username: String? = nil, password: String? = nil,
        from: String, verifyTLS: Bool = true, timeout: Double = 15
    ) {
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self.password = password
        self.from = from
        self.verifyTLS = verifyTLS
        self.timeout = timeout
    }
}

/// One email: plain text and HTML alternatives.
public struct EmailMessage: Sendable {
    public var to: String
    public var subject: String
    public var text: String
    public var html: String
    public var messageId: String
    public var headers: [String: String]

    public init(to: String, subject: String, text: String, html: String, messageId: String, headers: [String: String] = [:]) {
        self.to = to
        self.subject = subject
        self.text = text
        self.html = html
        self.messageId = messageId
        self.headers = headers
    }
}

/// A small SMTP client (RFC 5321) with STARTTLS and AUTH PLAIN. Blocking: run on a Dispatch thread.
/// SMTP servers are operator-configured, so no SSRF guard applies here.
public struct SMTPClient: Sendable {
    public let settings: SMTPSettings
    public init(settings: SMTPSettings) { self.settings = settings }

    /// Errors with the server's reply code, so callers can tell permanent (5xx) from transient.
    public struct ReplyError: Error, CustomStringConvertible, Sendable {
        public let code: Int
        public let text: String
        public var isPermanent: Bool { code >= 500 }
        public var description: String { "SMTP \(code) \(text)" }
    }

    public func send(_ m: EmailMessage) throws {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>? = nil
        guard getaddrinfo(settings.host, nil, &hints, &res) == 0, let ai = res else { throw NetError("SMTP host does not resolve") }
        var buf = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        getnameinfo(ai.pointee.ai_addr, ai.pointee.ai_addrlen, &buf, socklen_t(buf.count), nil, 0, NI_NUMERICHOST)
        let address = ResolvedAddress(ip: String(cString: buf), family: ai.pointee.ai_family)
        freeaddrinfo(res)

        let conn = try NetConnection(address: address, port: settings.port, timeout: settings.timeout)
        defer { conn.shutdown() }
        if settings.security == "tls" { try conn.startTLS(hostname: settings.host, verify: settings.verifyTLS) }
        _ = try expect(conn, 220)
        var caps = try ehlo(conn)
        if settings.security == "starttls" {
            if caps.contains("STARTTLS") {
                try conn.write("STARTTLS\r\n")
                _ = try expect(conn, 220)
                try conn.startTLS(hostname: settings.host, verify: settings.verifyTLS)
                caps = try ehlo(conn)
            } else if settings.username != nil {
                throw NetError("SMTP server does not offer STARTTLS; refusing to send credentials in clear text")
            }
        }
        if let user = settings.username, let pass = settings.password {
            let token = Data(([0] + Array(user.utf8) + [0] + Array(pass.utf8))).base64EncodedString()
            try conn.write("AUTH PLAIN \(token)\r\n")
            _ = try expect(conn, 235)
        }
        try conn.write("MAIL FROM:<\(Self.address(settings.from))>\r\n")
        _ = try expect(conn, 250)
        try conn.write("RCPT TO:<\(Self.address(m.to))>\r\n")
        _ = try expect(conn, 250, 251)
        try conn.write("DATA\r\n")
        _ = try expect(conn, 354)
        try conn.write(Array(render(m).utf8))
        try conn.write(".\r\n")
        _ = try expect(conn, 250)
        try? conn.write("QUIT\r\n")
    }

    /// The address inside `Name <addr>` or the whole string; refuses CR/LF and angle brackets.
    static func address(_ s: String) throws -> String {
        var a = s
        if let l = s.lastIndex(of: "<"), let r = s.lastIndex(of: ">"), l < r { a = String(s[s.index(after: l)..<r]) }
        guard !a.contains(where: { "\r\n<> ".contains($0) }), a.contains("@") else { throw NetError("invalid email address") }
        return a
    }

    func ehlo(_ conn: NetConnection) throws -> Set<String> {
        try conn.write("EHLO vigil.local\r\n")
        let lines = try expect(conn, 250)
        return Set(lines.dropFirst().map { String($0.split(separator: " ").first ?? "").uppercased() })
    }

    /// Reads a (multi-line) reply and checks its code.
    @discardableResult
    func expect(_ conn: NetConnection, _ codes: Int...) throws -> [String] {
        var lines: [String] = []
        while true {
            let line = try conn.readLine()
            guard line.count >= 3, let code = Int(line.prefix(3)) else { throw NetError("malformed SMTP reply") }
            lines.append(String(line.dropFirst(4)))
            if line.count == 3 || line[line.index(line.startIndex, offsetBy: 3)] == " " {
                guard codes.contains(code) else { throw ReplyError(code: code, text: lines.joined(separator: " ")) }
                return lines
            }
        }
    }

    /// RFC 5322 message with a multipart/alternative body, dot-stuffed for DATA.
    func render(_ m: EmailMessage) throws -> String {
        func clean(_ s: String) -> String { s.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ") }
        func encodedWord(_ s: String) -> String {
            s.allSatisfy { $0.isASCII } ? clean(s) : "=?UTF-8?B?\(Data(clean(s).utf8).base64EncodedString())?="
        }
        let boundary = "vigil-" + UUID().uuidString
        var h = [
            "From: \(clean(settings.from))",
            "To: \(clean(try Self.address(m.to)))",
            "Subject: \(encodedWord(m.subject))",
            "Date: \(Self.rfc5322Date(Date()))",
            "Message-ID: <\(clean(m.messageId))@vigil>",
            "MIME-Version: 1.0",
            "Content-Type: multipart/alternative; boundary=\"\(boundary)\"",
        ]
        for (k, v) in m.headers.sorted(by: { $0.key < $1.key }) { h.append("\(clean(k)): \(clean(v))") }
        func part(_ type: String, _ body: String) -> String {
            "--\(boundary)\r\nContent-Type: \(type); charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                + Data(body.utf8).base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed]) + "\r\n"
        }
        let msg = h.joined(separator: "\r\n") + "\r\n\r\n" + part("text/plain", m.text) + part("text/html", m.html) + "--\(boundary)--\r\n"
        // Dot-stuffing (base64 lines never start with a dot, headers could in theory).
        return msg.split(separator: "\r\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix(".") ? "." + $0 : String($0) }.joined(separator: "\r\n")
    }

    static func rfc5322Date(_ d: Date) -> String {
        var t = time_t(d.timeIntervalSince1970)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        var buf = [CChar](repeating: 0, count: 64)
        strftime(&buf, buf.count, "%a, %d %b %Y %H:%M:%S +0000", &tmv)
        return String(cString: buf)
    }
}
