import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Refuses outbound requests to addresses a user must not reach through us: private, loopback,
/// link-local (cloud metadata), carrier-grade NAT, multicast and reserved ranges. Every lookup
/// validates all addresses and the caller connects to a validated address, so DNS rebinding between
/// check and connect is impossible.
public struct SSRFGuard: Sendable {
    public var allowLoopback: Bool
    public var allowPrivate: Bool

    public init(allowLoopback: Bool = false, allowPrivate: Bool = false) {
        self.allowLoopback = allowLoopback
        self.allowPrivate = allowPrivate
    }

    /// A URL we may call: scheme, host, port, path and the addresses to use.
    public struct Target: Sendable {
        public let url: URL
        public let host: String
        public let port: Int
        public let isTLS: Bool
        public let pathAndQuery: String
        public let addresses: [ResolvedAddress]
    }

    /// Syntax-only checks (no DNS): for validating input quickly.
    public static func parse(_ s: String) throws -> (URL, String, Int, Bool) {
        guard s.count <= 2048, let url = URL(string: s), let scheme = url.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty
        else {
            throw NetError("URL must be an absolute http(s) URL")
        }
        guard url.user == nil, url.password == nil else { throw NetError("URL must not contain credentials") }
        let isTLS = scheme == "https"
        let port = url.port ?? (isTLS ? 443 : 80)
        guard (1...65535).contains(port) else { throw NetError("URL port is invalid") }
        return (url, host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port, isTLS)
    }

    /// Resolves and checks a URL. Blocking (DNS): call from a Dispatch thread.
    public func check(_ s: String) throws -> Target {
        let (url, host, port, isTLS) = try Self.parse(s)
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>? = nil
        guard getaddrinfo(host, nil, &hints, &res) == 0 else { throw NetError("host \(host) does not resolve") }
        defer { freeaddrinfo(res) }
        var out: [ResolvedAddress] = []
        var p = res
        while let ai = p {
            var buf = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(ai.pointee.ai_addr, ai.pointee.ai_addrlen, &buf, socklen_t(buf.count), nil, 0, NI_NUMERICHOST) == 0 {
                let ip = String(cString: buf)
                if let reason = refusal(ip) { throw NetError("\(host) resolves to a \(reason) address; refused") }
                let a = ResolvedAddress(ip: ip, family: ai.pointee.ai_family)
                if !out.contains(a) { out.append(a) }
            }
            p = ai.pointee.ai_next
        }
        guard !out.isEmpty else { throw NetError("host \(host) has no address") }
        // Keep the path and query exactly as encoded in the URL (URL.path would decode them).
        let comps = URLComponents(url: url, resolvingAgainstBaseURL: false)
        var path = comps?.percentEncodedPath ?? "/"
        if path.isEmpty { path = "/" }
        if let q = comps?.percentEncodedQuery { path += "?" + q }
        return Target(url: url, host: host, port: port, isTLS: isTLS, pathAndQuery: path, addresses: out)
    }

    /// Why an address is refused, or nil when it may be used.
    public func refusal(_ ip: String) -> String? {
        if ip.contains(":") { return refusalV6(ip) }
        let parts = ip.split(separator: ".").compactMap { UInt32($0) }
        guard parts.count == 4 else { return "malformed" }
        let v = parts[0] << 24 | parts[1] << 16 | parts[2] << 8 | parts[3]
        func within(_ base: UInt32, _ bits: UInt32) -> Bool { bits == 0 || (v >> (32 - bits)) == (base >> (32 - bits)) }
        if within(0x7F00_0000, 8) { return allowLoopback ? nil : "loopback" }
        if within(0xA9FE_0000, 16) { return "link-local or metadata" }
        if within(0x0A00_0000, 8) || within(0xAC10_0000, 12) || within(0xC0A8_0000, 16) {
            return allowPrivate ? nil : "private"
        }
        if within(0x0000_0000, 8) { return "unspecified" }
        if within(0x6440_0000, 10) { return "carrier-grade NAT" }
        if within(0xC000_0000, 24) || within(0xC612_0000, 15) || within(0xF000_0000, 4) { return "reserved" }
        if within(0xE000_0000, 4) { return "multicast" }
        return nil
    }

    func refusalV6(_ ip: String) -> String? {
        var addr = in6_addr()
        let clean = ip.split(separator: "%").first.map(String.init) ?? ip
        guard inet_pton(AF_INET6, clean, &addr) == 1 else { return "malformed" }
        let b = withUnsafeBytes(of: addr) { Array($0) }
        if b.allSatisfy({ $0 == 0 }) { return "unspecified" }
        if b[0..<15].allSatisfy({ $0 == 0 }) && b[15] == 1 { return allowLoopback ? nil : "loopback" }
        if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xff && b[11] == 0xff {
            return refusal("\(b[12]).\(b[13]).\(b[14]).\(b[15])")
        }
        if b[0] == 0xfe && (b[1] & 0xc0) == 0x80 { return "link-local" }
        if (b[0] & 0xfe) == 0xfc { return allowPrivate ? nil : "private" }
        if b[0] == 0xff { return "multicast" }
        return nil
    }
}
