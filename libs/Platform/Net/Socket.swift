import COpenSSL
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Errors of outbound connections (delivery code records their text; no secrets in them).
public struct NetError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ d: String) { description = d }
}

/// A resolved address we are allowed to connect to.
public struct ResolvedAddress: Sendable, Equatable {
    public let ip: String
    public let family: Int32
}

/// A blocking TCP connection (optionally upgraded to TLS) with per-operation timeouts. Use it only
/// from Dispatch threads (see `Blocking`), never on Swift's cooperative pool.
public final class NetConnection {
    private var fd: Int32
    var ssl: OpaquePointer?
    var ctx: OpaquePointer?
    private var buffer = [UInt8]()
    /// When set, reads and writes past this instant fail: a peer that drips a byte at a time cannot hold the
    /// connection past it (the per-operation timeout alone would let it).
    public var deadline: ContinuousClock.Instant?
    /// The socket, for a TLS handshake set up elsewhere in this module.
    var descriptor: Int32 { fd }

    /// Connects to exactly `address` (already checked by the SSRF guard): no second DNS lookup.
    public init(address: ResolvedAddress, port: Int, timeout: Double) throws {
        var hints = addrinfo()
        hints.ai_family = address.family
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICHOST
        var res: UnsafeMutablePointer<addrinfo>? = nil
        guard getaddrinfo(address.ip, String(port), &hints, &res) == 0, let ai = res else {
            throw NetError("bad address \(address.ip)")
        }
        defer { freeaddrinfo(res) }
        fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype, ai.pointee.ai_protocol)
        guard fd >= 0 else { throw NetError("socket: \(String(cString: strerror(errno)))") }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        // connect() honours SO_SNDTIMEO on Linux, which bounds the connect time too.
        if connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) != 0 {
            let e = errno
            close(fd)
            throw NetError(e == EINPROGRESS || e == EAGAIN ? "connect timed out" : "connect: \(String(cString: strerror(e)))")
        }
    }

    deinit { shutdown() }

    public func shutdown() {
        if let ssl {
            SSL_shutdown(ssl)
            SSL_free(ssl)
            self.ssl = nil
        }
        if let ctx {
            SSL_CTX_free(ctx)
            self.ctx = nil
        }
        if fd >= 0 {
            close(fd)
            fd = -1
        }
    }

    /// Upgrades to TLS, verifying the certificate chain against the system store and `hostname`.
    public func startTLS(hostname: String, verify: Bool = true) throws {
        guard let c = SSL_CTX_new(TLS_client_method()) else { throw NetError("TLS context") }
        ctx = c
        if verify {
            SSL_CTX_set_default_verify_paths(c)
            SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nil)
        }
        guard let s = SSL_new(c) else { throw NetError("TLS session") }
        ssl = s
        SSL_set_fd(s, fd)
        _ = hostname.withCString { SSL_ctrl(s, SSL_CTRL_SET_TLSEXT_HOSTNAME, Int(TLSEXT_NAMETYPE_host_name), UnsafeMutableRawPointer(mutating: $0)) }
        if verify { SSL_set1_host(s, hostname) }
        guard SSL_connect(s) == 1 else {
            throw NetError("TLS handshake with \(hostname) failed")
        }
    }

    public func write(_ bytes: [UInt8]) throws {
        if let deadline, ContinuousClock.now > deadline { throw NetError("time limit reached") }
        var off = 0
        while off < bytes.count {
            let n: Int = bytes.withUnsafeBufferPointer { p in
                let base = p.baseAddress! + off
                if let ssl { return Int(SSL_write(ssl, base, Int32(bytes.count - off))) }
                return Glibc.send(fd, base, bytes.count - off, Int32(MSG_NOSIGNAL))
            }
            guard n > 0 else { throw NetError("write failed or timed out") }
            off += n
        }
    }

    public func write(_ s: String) throws { try write(Array(s.utf8)) }

    /// Reads what is available (at least one byte); empty at end of stream.
    func fill() throws -> Bool {
        if let deadline, ContinuousClock.now > deadline { throw NetError("time limit reached") }
        var chunk = [UInt8](repeating: 0, count: 16384)
        let n: Int = chunk.withUnsafeMutableBufferPointer { p in
            if let ssl { return Int(SSL_read(ssl, p.baseAddress, Int32(p.count))) }
            return Glibc.recv(fd, p.baseAddress, p.count, 0)
        }
        if n == 0 { return false }
        guard n > 0 else { throw NetError("read failed or timed out") }
        buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    /// One CRLF-terminated line (without the CRLF), at most `limit` bytes.
    public func readLine(limit: Int = 16384) throws -> String {
        while true {
            if let i = buffer.firstIndex(of: 10) {
                var line = Array(buffer[..<i])
                buffer.removeFirst(i + 1)
                if line.last == 13 { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            guard buffer.count < limit else { throw NetError("line too long") }
            guard try fill() else { throw NetError("connection closed") }
        }
    }

    /// Exactly `count` bytes, or fewer at end of stream.
    public func read(count: Int) throws -> [UInt8] {
        while buffer.count < count { guard try fill() else { break } }
        let n = min(count, buffer.count)
        let out = Array(buffer[..<n])
        buffer.removeFirst(n)
        return out
    }

    /// Everything until the peer closes, at most `limit` bytes.
    public func readToEnd(limit: Int) throws -> [UInt8] {
        while buffer.count < limit { guard try fill() else { break } }
        let out = Array(buffer.prefix(limit))
        buffer.removeAll()
        return out
    }
}
