import Foundation
import Net
import ScanEngine
import VigilCore

/// What a web connection names: the URL, extra CAs to trust, headers sent with every request (an
/// authorisation header for a staging site), extra paths to read, and the port plain HTTP is checked on.
public struct WebTarget: Codable, Sendable {
    public var url: String
    public var caPem: String?
    public var headers: [String: String]?
    public var scanPaths: [String]?
    public var httpPort: Int?

    public init(url: String, caPem: String? = nil, headers: [String: String]? = nil, scanPaths: [String]? = nil, httpPort: Int? = nil) {
        self.url = url
        self.caPem = caPem
        self.headers = headers
        self.scanPaths = scanPaths
        self.httpPort = httpPort
    }
}

/// Bounds of one passive scan.
public struct WebLimits: Sendable {
    public var seconds: Double = 30
    public var requests: Int = 150
    public var maxBody: Int = 2 << 20
    public var pages: Int = 15
    public var scripts: Int = 25
    public init(seconds: Double = 30, requests: Int = 150) {
        self.seconds = seconds
        self.requests = requests
    }
}

/// A passive scan of one web target: transport, TLS (own handshakes), headers, cookies, CORS, exposed
/// files (proved by their content, never by a 200 alone), mixed content and secrets in the pages,
/// scripts and source maps it loads. The facts become resources of the `web` provider; the rules in
/// `contracts/rules/web/` judge them.
public enum WebScan {
    public static let provider = "web"

    public struct Outcome: Sendable {
        public var resources: [Resource]
        public var requests: Int
    }

    /// Runs the scan (blocking: call it on a Dispatch thread).
    /// `active`: also send crafted requests (TRACE, open-redirect parameters, a reflected marker) — only
    /// for domains the workspace verified.
    public static func run(_ target: WebTarget, guardrail: SSRFGuard, limits: WebLimits = WebLimits(), active: Bool = false) throws -> Outcome {
        let (url, host, port, isTLS) = try SSRFGuard.parse(target.url)
        let origin = "\(isTLS ? "https" : "http")://\(host.contains(":") ? "[\(host)]" : host)\((port == (isTLS ? 443 : 80)) ? "" : ":\(port)")"
        let client = WebClient(
            guardrail: guardrail, deadline: .now + .milliseconds(Int(limits.seconds * 1000)), budget: limits.requests, maxBody: limits.maxBody,
            extraHeaders: target.headers ?? [:])
        // The first answer decides whether there is a site at all: an unreachable target fails the scan.
        let chain = try client.follow(url.absoluteString)
        guard let final = chain.last else { throw NetError("no response") }
        var site = WebChecks.site(origin: origin, host: host, chain: chain, final: final, isTLS: isTLS)
        var resources: [Resource] = []
        var skipped: [JSONValue] = []
        // A check that cannot finish (time or request budget used, a peer that misbehaves) leaves its facts
        // out and says so on the site; the scan goes on with the rest.
        func attempt<T>(_ what: String, _ body: () throws -> T) -> T? {
            do { return try body() } catch {
                skipped.append(.string("\(what): \(error)"))
                return nil
            }
        }
        if isTLS,
            let tls = attempt(
                "tls", { try TLSChecks.endpoint(host: host, port: port, guardrail: guardrail, extraCAs: target.caPem, deadline: client.deadline) })
        {
            resources.append(tls)
        }
        for (what, check) in [
            ("plain http", { try WebChecks.plainHTTP(host: host, port: target.httpPort ?? 80, isTLS: isTLS, client: client) }),
            ("cors", { try WebChecks.cors(origin: origin, client: client) }),
            ("policy files", { try WebChecks.policyFiles(origin: origin, client: client) }),
        ] as [(String, () throws -> [String: JSONValue])] {
            if let facts = attempt(what, check) { site.attributes.merge(facts) { $1 } }
        }
        if active, let facts = attempt("active probes", { try ActiveChecks.run(origin: origin, client: client) }) {
            site.attributes.merge(facts) { $1 }
        }
        resources += WebChecks.cookies(chain, origin: origin, host: host, isTLS: isTLS)
        if let found = attempt(
            "content",
            { try Content.crawl(origin: origin, host: host, first: final, client: client, limits: limits, extraPaths: target.scanPaths ?? []) })
        {
            resources += found.resources
            site.attributes["mixed_content"] = .array(found.mixedContent.map(JSONValue.string))
            if let exposures = attempt("exposure", { try Exposure.probe(origin: origin, host: host, client: client, content: found) }) {
                resources += exposures
            }
        }
        site.attributes["checks_skipped"] = .array(skipped)
        site.attributes["requests_sent"] = .number(Double(client.requestsSent))
        return Outcome(resources: [site] + resources, requests: client.requestsSent)
    }

    /// A resource of this provider.
    static func resource(_ type: String, id: String, name: String, host: String, _ attributes: [String: JSONValue]) -> Resource {
        Resource(provider: provider, account: host, region: "global", service: "web", type: "web.\(type)", id: id, name: name, attributes: attributes)
    }
}
