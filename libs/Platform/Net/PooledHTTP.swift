import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Outbound HTTP over AsyncHTTPClient: keep-alive connections pooled per host and reused across calls,
/// no thread per call. For endpoints the platform builds or the operator configures (AWS API endpoints,
/// Stripe, the captcha verifier) and for addresses the SSRF guard already checked (see `AWSTransport`).
/// User-supplied URLs that must be connected to exactly as checked (webhooks, Slack, web targets) use
/// `OutboundHTTP`, which connects to the resolved address itself.
public struct PooledHTTP: Sendable {
    /// One client per process: its pool is what makes connections live across calls. Redirects are not
    /// followed (an API's 301 is an answer), bodies are not decompressed. It is never shut down: it lives
    /// as long as the process.
    static let client: HTTPClient = {
        var pool = HTTPClient.Configuration.ConnectionPool()
        pool.idleTimeout = .seconds(55)
        pool.concurrentHTTP1ConnectionsPerHostSoftLimit = 32
        let config = HTTPClient.Configuration(
            redirectConfiguration: .disallow, timeout: .init(connect: .seconds(10), read: .seconds(60)), connectionPool: pool,
            decompression: .disabled)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }()

    /// The whole call (connect, send, receive) must end within this.
    public let timeout: Duration

    public init(timeout: Duration = .seconds(20)) { self.timeout = timeout }

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
            response = try await Self.client.execute(request, timeout: .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000))
        } catch {
            throw NetError("\(method) \(Self.redacted(url)): \(error)")
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

    /// The URL without its query (which may carry signatures or tokens), for error messages.
    static func redacted(_ url: String) -> String { String(url.split(separator: "?", maxSplits: 1).first ?? "") }
}
