import Foundation

/// An outbound HTTP proxy: requests are tunnelled through it with `CONNECT` (TLS is then end to end,
/// between Vigil and the destination). `host` is the address to connect to — an address the SSRF guard
/// checked when the proxy comes from a user's profile.
public struct ProxyConfig: Sendable, Hashable {
    public var host: String
    public var port: Int
    public var username: String?
    public var password: String?

    public init(host: String, port: Int, username: String? = nil, password: String? = nil) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
    }

    /// `http://[user:password@]host[:port][/]`; nil when the text is not such a URL. A proxy URL names
    /// the proxy only: a path, query or fragment is refused.
    public static func parse(_ text: String) -> ProxyConfig? {
        guard let u = URLComponents(string: text), u.scheme?.lowercased() == "http", let host = u.host, !host.isEmpty,
            u.path.isEmpty || u.path == "/", u.query == nil, u.fragment == nil
        else { return nil }
        let port = u.port ?? 80
        guard (1...65535).contains(port) else { return nil }
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        return ProxyConfig(host: bare, port: port, username: u.user, password: u.password)
    }
}

/// The proxy the operator set in the process environment (`HTTPS_PROXY`/`https_proxy` for `https`
/// URLs, `HTTP_PROXY`/`http_proxy` for `http` ones) and the hosts that bypass it (`NO_PROXY`/`no_proxy`:
/// a comma-separated list of host names, domain suffixes such as `.internal` or `internal`, IP
/// addresses, optionally with `:port`, or `*` for every host). It applies to the endpoints the platform
/// reaches on its own (AWS's API endpoints, Stripe, the captcha verifier); a connection that names a
/// proxy profile uses that profile instead.
public struct EnvironmentProxy: Sendable {
    public var https: ProxyConfig?
    public var http: ProxyConfig?
    public var noProxy: [String]

    public init(_ env: [String: String] = ProcessInfo.processInfo.environment) {
        func value(_ name: String) -> String? {
            (env[name] ?? env[name.lowercased()]).flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 }
        }
        https = value("HTTPS_PROXY").flatMap(ProxyConfig.parse)
        http = value("HTTP_PROXY").flatMap(ProxyConfig.parse)
        noProxy = (value("NO_PROXY") ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            .filter { !$0.isEmpty }
    }

    /// The one read at start-up.
    public static let current = EnvironmentProxy()

    /// The proxy a request to `url` goes through, or nil for a direct connection.
    public func proxy(for url: String) -> ProxyConfig? {
        guard let u = URLComponents(string: url), let scheme = u.scheme?.lowercased(), let host = u.host?.lowercased() else { return nil }
        guard let p = scheme == "https" ? https : (scheme == "http" ? http : nil) else { return nil }
        return bypasses(host: host, port: u.port ?? (scheme == "https" ? 443 : 80)) ? nil : p
    }

    /// curl's `NO_PROXY` rules: `*` matches everything; an entry matches the host itself and its
    /// subdomains (a leading dot is ignored); `host:port` only that port.
    public func bypasses(host: String, port: Int) -> Bool {
        let h = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        for entry in noProxy {
            if entry == "*" { return true }
            var name = Substring(entry)
            if let colon = name.lastIndex(of: ":"), !name.contains("["), name.filter({ $0 == ":" }).count == 1 {
                guard Int(name[name.index(after: colon)...]) == port else { continue }
                name = name[..<colon]
            }
            if name.hasPrefix("[") && name.hasSuffix("]") { name = name.dropFirst().dropLast() }
            while name.hasPrefix(".") { name = name.dropFirst() }
            if name.isEmpty { continue }
            if h == name || h.hasSuffix("." + name) { return true }
        }
        return false
    }
}
