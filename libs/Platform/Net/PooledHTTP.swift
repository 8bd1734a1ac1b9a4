import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// Outbound HTTP over AsyncHTTPClient: keep-alive connections pooled per host and reused across calls,
/// no thread per call. For endpoints the platform builds or the operator configures (AWS API endpoints,
/// Stripe, the captcha verifier) and for addresses the SSRF guard already checked (see `AWSTransport`).
/// User-supplied URLs that must be connected to exactly as checked (webhooks, Slack, web targets) use
/// `OutboundHTTP`, which connects to the resolved address itself.
public struct PooledHTTP: Sendable {
    /// One client per proxy (nil: direct) per process: its pool is what makes connections live across
    /// calls. Redirects are not followed (an API's 301 is an answer), bodies are not decompressed. They are
    /// never shut down: they live as long as the process (a handful: direct and each proxy profile in use).
    static let clients = Mutex<[ProxyConfig?: HTTPClient]>([:])

    static func client(_ proxy: ProxyConfig?) -> HTTPClient {
        clients.withLock { cache in
            if let c = cache[proxy] { return c }
            var pool = HTTPClient.Configuration.ConnectionPool()
            pool.idleTimeout = .seconds(55)
            pool.concurrentHTTP1ConnectionsPerHostSoftLimit = 32
            var config = HTTPClient.Configuration(
                redirectConfiguration: .disallow, timeout: .init(connect: .seconds(10), read: .seconds(60)), connectionPool: pool,
                decompression: .disabled)
            if let p = proxy {
                // A proxy that refuses (407, a closed port) refuses every time: fail the call at once instead of
                // retrying the tunnel until the deadline (the callers retry what is worth retrying).
                config.connectionPool.retryConnectionEstablishment = false
                let auth = p.username.map { HTTPClient.Authorization.basic(username: $0, password: p.password ?? "") }
                config.proxy = .server(host: p.host, port: p.port, authorization: auth)
            }
            let c = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
            cache[proxy] = c
            return c
        }
    }

    /// The whole call (connect, send, receive) must end within this.
    public let timeout: Duration

    /// The proxy every call goes through; nil: the environment's (`HTTPS_PROXY`, `NO_PROXY`), if any.
    public let proxy: ProxyConfig?

    public init(timeout: Duration = .seconds(20), proxy: ProxyConfig? = nil) {
        self.timeout = timeout
        self.proxy = proxy
    }

    /// Sends a request; the response body is read up to `maxBody` bytes (the rest is discarded).
    public func send(
        method: String, url: String, headers: [String: String], body: [UInt8], maxBody: Int
    ) async throws
        -> OutboundHTTP.Response
    {
        var request = HTTPClientRequest(url: url)
        request.method = HTTPMethod(rawValue: method)
        for (k, v) in headers { request.headers.replaceOrAdd(name: k, value: v) }
        request.headers.replaceOrAdd(name: "User-Agent", value: "Vigil/1")
        if !body.isEmpty || method != "GET" { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response: HTTPClientResponse
        do {
            let (seconds, attoseconds) = timeout.components
            let client = Self.client(proxy ?? EnvironmentProxy.current.proxy(for: url))
            response = try await client.execute(request, timeout: .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000))
        } catch {
            throw NetError("\(method) \(Self.redacted(url)): \(Self.describe(error))")
        }
        var collected = ByteBuffer()
        for try await var chunk in response.body {
            if collected.readableBytes < maxBody {
                let take = min(chunk.readableBytes, maxBody - collected.readableBytes)
                if var slice = chunk.readSlice(length: take) { collected.writeBuffer(&slice) }
            }
        }
        var out: [String: String] = [:]
        for h in response.headers { out[h.name.lowercased()] = h.value }
        return OutboundHTTP.Response(status: Int(response.status.code), headers: out, body: String(buffer: collected))
    }

    /// AsyncHTTPClient's errors in words (the proxy's answers above all); never a credential.
    static func describe(_ error: any Error) -> String {
        switch error as? HTTPClientError {
        case .some(.proxyAuthenticationRequired): return "the proxy refused the credentials (407 Proxy Authentication Required)"
        case .some(.invalidProxyResponse): return "the proxy refused to open a tunnel to the destination"
        case .some(.deadlineExceeded): return "no answer in time (deadline exceeded)"
        case .some(.connectTimeout): return "the connection timed out"
        default: return "\(error)"
        }
    }

    /// The URL without its query (which may carry signatures or tokens), for error messages.
    static func redacted(_ url: String) -> String { String(url.split(separator: "?", maxSplits: 1).first ?? "") }
}
