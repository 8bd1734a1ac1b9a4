import Foundation
import Net
import Synchronization

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// Errors from AWS APIs: the service's code (e.g. `AccessDenied`, `Throttling`) and message.
public struct AWSError: Error, CustomStringConvertible, Sendable {
    public let status: Int
    public let code: String
    public let message: String
    public var description: String { "\(code) (\(status)): \(message)" }
    public var isThrottling: Bool {
        ["Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException", "SlowDown"].contains(code) || status == 429
    }
    /// The endpoint (e.g. moto) does not support this action: collectors report the part as
    /// unavailable instead of failing the scan or counting it as a pass.
    public var isUnsupportedByEndpoint: Bool { status == 501 || code == "NotImplemented" || message.contains("not yet implemented") }
}

/// Counts API calls and retries across threads.
public final class CallCounter: Sendable {
    private let calls = Atomic<Int>(0)
    private let retries = Atomic<Int>(0)
    public init() {}
    func add() { calls.add(1, ordering: .relaxed) }
    /// Calls another provider made (web requests), for the scan's statistics.
    public func add(count n: Int) { calls.add(n, ordering: .relaxed) }
    func addRetry() { retries.add(1, ordering: .relaxed) }
    public var snapshot: (calls: Int, retries: Int) { (calls.load(ordering: .relaxed), retries.load(ordering: .relaxed)) }
}

/// A signed AWS API client for one account and endpoint override (moto, LocalStack, a partition).
/// Calls are `async`: AWS's own endpoints are reached over pooled keep-alive connections.
public struct AWSClient: Sendable {
    public private(set) var credentials: AWSCredentials
    /// Replaces every service endpoint when set (e.g. `http://127.0.0.1:5000`).
    public let endpointURL: String?
    private(set) var transport: AWSTransport
    /// Counts calls and retries (benchmarks and scan statistics); optional.
    public var counter: CallCounter?
    public var maxAttempts = 5

    public init(
        credentials: AWSCredentials, endpointURL: String?, guardrail: SSRFGuard, timeout: Double = 20,
        counter: CallCounter? = nil, proxy: ProxyConfig? = nil
    ) {
        self.credentials = credentials
        self.endpointURL = endpointURL
        self.counter = counter
        transport = AWSTransport(
            guardrail: guardrail, pooled: PooledHTTP(timeout: .milliseconds(Int(timeout * 1000)), proxy: proxy),
            pinned: OutboundHTTP(guardrail: guardrail, timeout: timeout))
    }

    /// The same client with another per-call time limit (CloudWatch's 500-query `GetMetricData` calls
    /// may take longer than a Describe call).
    public func with(timeout: Double) -> AWSClient {
        var c = self
        c.transport = AWSTransport(
            guardrail: transport.guardrail, pooled: PooledHTTP(timeout: .milliseconds(Int(timeout * 1000)), proxy: transport.pooled.proxy),
            pinned: OutboundHTTP(guardrail: transport.guardrail, timeout: timeout))
        return c
    }

    /// The same endpoint and options with other credentials (after AssumeRole).
    public func with(credentials: AWSCredentials) -> AWSClient {
        var c = self
        c.credentials = credentials
        return c
    }

    func endpoint(service: String, region: String) -> (scheme: String, host: String, port: Int?) {
        if let e = endpointURL, let u = URL(string: e), let host = u.host {
            return (u.scheme ?? "https", host, u.port)
        }
        let global = ["iam", "sts", "cloudfront", "route53", "organizations"]
        return ("https", global.contains(service) ? "\(service).amazonaws.com" : "\(service).\(region).amazonaws.com", nil)
    }

    /// Query protocol (EC2, IAM, STS, RDS, SNS, SQS, ELB…): form POST, XML reply.
    public func query(
        service: String, region: String, action: String, version: String,
        params: [(String, String)] = []
    ) async throws -> XMLNode {
        let (scheme, host, port) = endpoint(service: service, region: region)
        let form = ([("Action", action), ("Version", version)] + params)
            .map { "\(SigV4.encode($0.0))=\(SigV4.encode($0.1))" }.joined(separator: "&")
        var req = AWSRequest(
            method: "POST", scheme: scheme, host: host, port: port, path: "/",
            headers: ["Content-Type": "application/x-www-form-urlencoded; charset=utf-8"], body: Array(form.utf8))
        SigV4.sign(&req, credentials: credentials, region: service == "iam" || service == "sts" ? "us-east-1" : region, service: service)
        return try await retrying {
            let r = try await transport.send(
                method: "POST", url: "\(scheme)://\(req.hostHeader)/", hostHeader: req.hostHeader, headers: req.headers, body: req.body)
            guard let xml = try? XMLNode.parse(Data(r.body.utf8)) else {
                throw AWSError(
                    status: r.status, code: (200..<300).contains(r.status) ? "MalformedResponse" : "HTTP\(r.status)",
                    message: "response is not XML")
            }
            guard (200..<300).contains(r.status) else {
                throw AWSError(status: r.status, code: xml.first("Code")?.text ?? "HTTP\(r.status)", message: xml.first("Message")?.text ?? "")
            }
            return xml
        }
    }
}

/// A decoded JSON reply.
///
/// `@unchecked Sendable` is safe because the dictionary is built by JSONSerialization, never mutated
/// after, and holds only Foundation's immutable value types (strings, numbers, arrays, dictionaries).
public struct AWSJSON: @unchecked Sendable {
    public let object: [String: Any]
    public init(object: [String: Any]) { self.object = object }
    public subscript(_ key: String) -> Any? { object[key] }
}

extension AWSClient {
    /// JSON protocol (KMS, CloudTrail, Lambda's control plane via REST aside, Secrets Manager, …):
    /// POST with `X-Amz-Target: <prefix>.<action>`, JSON in and out.
    public func json(
        service: String, region: String, target: String, body: [String: Any] = [:],
        contentType: String = "application/x-amz-json-1.1"
    ) async throws -> AWSJSON {
        let (scheme, host, port) = endpoint(service: service, region: region)
        let payload = Array(try JSONSerialization.data(withJSONObject: body))
        var req = AWSRequest(
            method: "POST", scheme: scheme, host: host, port: port, path: "/",
            headers: ["Content-Type": contentType, "X-Amz-Target": target], body: payload)
        SigV4.sign(&req, credentials: credentials, region: region, service: service)
        return try await retrying {
            let r = try await transport.send(
                method: "POST", url: "\(scheme)://\(req.hostHeader)/", hostHeader: req.hostHeader, headers: req.headers, body: req.body)
            return try Self.decodeJSON(r)
        }
    }

    /// REST-XML protocol (S3): path-style addressing against an endpoint override, S3 signing rules.
    public func restXML(
        service: String, region: String, method: String, path: String, query: [(String, String)] = [],
        headers: [String: String] = [:], body: [UInt8] = []
    ) async throws -> (status: Int, xml: XMLNode?) {
        let r = try await rest(service: service, region: region, method: method, path: path, query: query, headers: headers, body: body)
        return (r.status, r.body.isEmpty ? nil : try? XMLNode.parse(Data(r.body.utf8)))
    }

    /// A REST call whose reply body is returned as text (S3 bucket policies are JSON inside a REST-XML API).
    public func rest(
        service: String, region: String, method: String, path: String, query: [(String, String)] = [],
        headers: [String: String] = [:], body: [UInt8] = []
    ) async throws -> (status: Int, body: String) {
        let (scheme, host, port) = endpoint(service: service, region: region)
        var req = AWSRequest(method: method, scheme: scheme, host: host, port: port, path: path, query: query, headers: headers, body: body)
        SigV4.sign(&req, credentials: credentials, region: region, service: service, s3: service == "s3")
        let q = req.encodedQuery
        let url = "\(scheme)://\(req.hostHeader)\(SigV4.wirePath(path))\(q.isEmpty ? "" : "?" + q)"
        return try await retrying {
            let r = try await transport.send(method: method, url: url, hostHeader: req.hostHeader, headers: req.headers, body: req.body)
            guard (200..<300).contains(r.status) else {
                let xml = r.body.isEmpty ? nil : try? XMLNode.parse(Data(r.body.utf8))
                throw AWSError(status: r.status, code: xml?.first("Code")?.text ?? "HTTP\(r.status)", message: xml?.first("Message")?.text ?? "")
            }
            return (r.status, r.body)
        }
    }

    /// REST-JSON protocol (Lambda, API Gateway…): a path and query, JSON reply.
    public func restJSON(
        service: String, region: String, method: String = "GET", path: String, query: [(String, String)] = [],
        body: [String: Any]? = nil
    ) async throws -> AWSJSON {
        let (scheme, host, port) = endpoint(service: service, region: region)
        let payload = try body.map { Array(try JSONSerialization.data(withJSONObject: $0)) } ?? []
        var req = AWSRequest(
            method: method, scheme: scheme, host: host, port: port, path: path, query: query,
            headers: body == nil ? [:] : ["Content-Type": "application/json"], body: payload)
        SigV4.sign(&req, credentials: credentials, region: region, service: service)
        let q = req.encodedQuery
        let url = "\(scheme)://\(req.hostHeader)\(SigV4.wirePath(path))\(q.isEmpty ? "" : "?" + q)"
        return try await retrying {
            let r = try await transport.send(method: method, url: url, hostHeader: req.hostHeader, headers: req.headers, body: req.body)
            return try Self.decodeJSON(r)
        }
    }

    static func decodeJSON(_ r: OutboundHTTP.Response) throws -> AWSJSON {
        let obj = (try? JSONSerialization.jsonObject(with: Data(r.body.utf8))) as? [String: Any] ?? [:]
        guard (200..<300).contains(r.status) else {
            let raw = (obj["__type"] ?? obj["Type"] ?? obj["code"]) as? String ?? "HTTP\(r.status)"
            let type = raw.split(separator: "#").last.map(String.init) ?? "Error"
            throw AWSError(status: r.status, code: type, message: (obj["message"] ?? obj["Message"]) as? String ?? "")
        }
        return AWSJSON(object: obj)
    }

    /// Runs one API call, counting it, and retries throttling and transient server errors with
    /// jittered exponential backoff (100 ms, 200 ms, 400 ms … capped at 3.2 s; `maxAttempts` tries).
    func retrying<T>(_ body: () async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            attempt += 1
            counter?.add()
            do { return try await body() } catch let e as AWSError
                where attempt < maxAttempts && (e.isThrottling || [500, 502, 503, 504].contains(e.status))
            {
                let base = min(3.2, 0.1 * pow(2, Double(attempt - 1)))
                try await Task.sleep(for: .milliseconds(Int(base * Double.random(in: 0.5...1.0) * 1000)))
                counter?.addRetry()
            }
        }
    }
}

/// A parsed XML element: name, text, children. Enough for AWS responses.
public final class XMLNode: Sendable {
    public let name: String
    public let text: String
    public let children: [XMLNode]

    init(name: String, text: String, children: [XMLNode]) {
        self.name = name
        self.text = text
        self.children = children
    }

    /// First descendant (depth-first) with this name.
    public func first(_ name: String) -> XMLNode? {
        for c in children {
            if c.name == name { return c }
            if let d = c.first(name) { return d }
        }
        return nil
    }

    /// All descendants with this name.
    public func all(_ name: String) -> [XMLNode] {
        children.flatMap { ($0.name == name ? [$0] : []) + $0.all(name) }
    }

    public subscript(_ name: String) -> String? { children.first { $0.name == name }?.text }

    /// The direct child with this name.
    public func child(_ name: String) -> XMLNode? { children.first { $0.name == name } }

    /// The elements of a list wrapper (`<groupSet><item/>…` or `<Users><member/>…`): the nearest
    /// element with this name, searched breadth-first so a direct child wins over a nested one.
    public func list(_ name: String) -> [XMLNode] { nearest(name)?.children ?? [] }

    /// The nearest descendant with this name (breadth-first).
    public func nearest(_ name: String) -> XMLNode? {
        var level = children
        while !level.isEmpty {
            if let hit = level.first(where: { $0.name == name }) { return hit }
            level = level.flatMap(\.children)
        }
        return nil
    }

    /// Follows a path of direct children (`instanceState/name`).
    public func path(_ p: String) -> XMLNode? {
        var cur: XMLNode? = self
        for part in p.split(separator: "/") { cur = cur?.child(String(part)) }
        return cur
    }

    public static func parse(_ data: Data) throws -> XMLNode {
        /// Elements under construction; each becomes an immutable node when it closes.
        final class Builder: NSObject, XMLParserDelegate {
            struct Open {
                var name: String
                var text = ""
                var children: [XMLNode] = []
            }
            var stack = [Open(name: "#document")]
            func parser(
                _ p: XMLParser, didStartElement e: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]
            ) {
                stack.append(Open(name: e))
            }
            func parser(_ p: XMLParser, foundCharacters s: String) { stack[stack.count - 1].text += s }
            func parser(_ p: XMLParser, didEndElement e: String, namespaceURI: String?, qualifiedName: String?) {
                guard stack.count > 1, let open = stack.popLast() else { return }
                let node = XMLNode(name: open.name, text: open.text.trimmingCharacters(in: .whitespacesAndNewlines), children: open.children)
                stack[stack.count - 1].children.append(node)
            }
            var root: XMLNode { XMLNode(name: stack[0].name, text: stack[0].text, children: stack[0].children) }
        }
        let b = Builder()
        let p = XMLParser(data: data)
        p.delegate = b
        guard p.parse() else { throw AWSError(status: 0, code: "MalformedResponse", message: "response is not XML") }
        return b.root
    }
}

extension AWSClient {
    /// Query protocol with pagination: sends `inToken` from each page's `outToken` element until it is
    /// absent (EC2 NextToken, IAM/RDS Marker, ELBv2 NextMarker…). Bounded at `maxPages`.
    public func queryPages(
        service: String, region: String, action: String, version: String, params: [(String, String)] = [],
        inToken: String = "NextToken", outToken: String = "NextToken", maxPages: Int = 500
    ) async throws -> [XMLNode] {
        var pages: [XMLNode] = []
        var token: String? = nil
        repeat {
            let page = try await query(
                service: service, region: region, action: action, version: version,
                params: params + (token.map { [(inToken, $0)] } ?? []))
            pages.append(page)
            let next = page.first(outToken)?.text ?? ""
            // IAM marks the last page with IsTruncated=false and may still echo a marker.
            token = next.isEmpty || page.first("IsTruncated")?.text == "false" ? nil : next
        } while token != nil && pages.count < maxPages
        return pages
    }

    /// JSON protocol with pagination (`NextToken`, KMS `NextMarker`/`Marker`…).
    public func jsonPages(
        service: String, region: String, target: String, body: [String: Any] = [:],
        inToken: String = "NextToken", outToken: String = "NextToken", maxPages: Int = 500, contentType: String = "application/x-amz-json-1.1"
    ) async throws -> [AWSJSON] {
        var pages: [AWSJSON] = []
        var token: String? = nil
        repeat {
            var b = body
            if let token { b[inToken] = token }
            let page = try await json(service: service, region: region, target: target, body: b, contentType: contentType)
            pages.append(page)
            let next = page[outToken] as? String ?? ""
            token = next.isEmpty || (page["Truncated"] as? Bool) == false ? nil : next
        } while token != nil && pages.count < maxPages
        return pages
    }

    /// STS AssumeRole: temporary credentials for `roleArn`.
    public func assumeRole(
        roleArn: String, externalId: String?, sessionName: String = "vigil-scan", region: String = "us-east-1"
    ) async throws -> AWSCredentials {
        var params = [("RoleArn", roleArn), ("RoleSessionName", sessionName), ("DurationSeconds", "3600")]
        if let externalId { params.append(("ExternalId", externalId)) }
        let xml = try await query(service: "sts", region: region, action: "AssumeRole", version: "2011-06-15", params: params)
        guard let key = xml.first("AccessKeyId")?.text, let secret = xml.first("SecretAccessKey")?.text else {
            throw AWSError(status: 0, code: "MalformedResponse", message: "AssumeRole returned no credentials")
        }
        return AWSCredentials(accessKeyId: key, secretAccessKey: secret, sessionToken: xml.first("SessionToken")?.text)
    }
}
