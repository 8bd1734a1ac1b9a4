import Foundation
import Net
#if canImport(FoundationXML)
import FoundationXML
#endif

/// Errors from AWS APIs: the service's code (e.g. `AccessDenied`, `Throttling`) and message.
public struct AWSError: Error, CustomStringConvertible, Sendable {
    public let status: Int
    public let code: String
    public let message: String
    public var description: String { "\(code) (\(status)): \(message)" }
    public var isThrottling: Bool { ["Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException", "SlowDown"].contains(code) || status == 429 }
    /// The endpoint (e.g. moto) does not support this action: collectors report the part as
    /// unavailable instead of failing the scan or counting it as a pass.
    public var isUnsupportedByEndpoint: Bool { status == 501 || code == "NotImplemented" || message.contains("not yet implemented") }
}

/// A signed AWS API client for one account and endpoint override (moto, LocalStack, a partition).
/// Blocking calls run on Dispatch threads via `Blocking` in callers.
public struct AWSClient: Sendable {
    public let credentials: AWSCredentials
    /// Replaces every service endpoint when set (e.g. `http://127.0.0.1:5000`).
    public let endpointURL: String?
    let http: OutboundHTTP

    public init(credentials: AWSCredentials, endpointURL: String?, guardrail: SSRFGuard, timeout: Double = 20) {
        self.credentials = credentials
        self.endpointURL = endpointURL
        http = OutboundHTTP(guardrail: guardrail, timeout: timeout)
    }

    func endpoint(service: String, region: String) -> (scheme: String, host: String, port: Int?) {
        if let e = endpointURL, let u = URL(string: e), let host = u.host {
            return (u.scheme ?? "https", host, u.port)
        }
        let global = ["iam", "sts", "cloudfront", "route53", "organizations"]
        return ("https", global.contains(service) ? "\(service).amazonaws.com" : "\(service).\(region).amazonaws.com", nil)
    }

    /// Query protocol (EC2, IAM, STS, RDS, SNS, SQS, ELB…): form POST, XML reply.
    public func query(service: String, region: String, action: String, version: String,
                      params: [(String, String)] = []) throws -> XMLNode {
        let (scheme, host, port) = endpoint(service: service, region: region)
        let form = ([("Action", action), ("Version", version)] + params)
            .map { "\(SigV4.encode($0.0))=\(SigV4.encode($0.1))" }.joined(separator: "&")
        var req = AWSRequest(method: "POST", scheme: scheme, host: host, port: port, path: "/",
                             headers: ["Content-Type": "application/x-www-form-urlencoded; charset=utf-8"], body: Array(form.utf8))
        SigV4.sign(&req, credentials: credentials, region: service == "iam" || service == "sts" ? "us-east-1" : region, service: service)
        let r = try http.send(method: "POST", url: "\(scheme)://\(req.hostHeader)/", headers: req.headers, body: req.body,
                              maxBody: 64 << 20)
        let xml = try XMLNode.parse(Data(r.body.utf8))
        guard (200..<300).contains(r.status) else {
            throw AWSError(status: r.status, code: xml.first("Code")?.text ?? "HTTP\(r.status)", message: xml.first("Message")?.text ?? "")
        }
        return xml
    }
}

/// A decoded JSON reply (JSONSerialization values are immutable once parsed).
public struct AWSJSON: @unchecked Sendable {
    public let object: [String: Any]
    public subscript(_ key: String) -> Any? { object[key] }
}

extension AWSClient {
    /// JSON protocol (KMS, CloudTrail, Lambda's control plane via REST aside, Secrets Manager, …):
    /// POST with `X-Amz-Target: <prefix>.<action>`, JSON in and out.
    public func json(service: String, region: String, target: String, body: [String: Any] = [:],
                     contentType: String = "application/x-amz-json-1.1") throws -> AWSJSON {
        let (scheme, host, port) = endpoint(service: service, region: region)
        let payload = Array(try JSONSerialization.data(withJSONObject: body))
        var req = AWSRequest(method: "POST", scheme: scheme, host: host, port: port, path: "/",
                             headers: ["Content-Type": contentType, "X-Amz-Target": target], body: payload)
        SigV4.sign(&req, credentials: credentials, region: region, service: service)
        let r = try http.send(method: "POST", url: "\(scheme)://\(req.hostHeader)/", headers: req.headers, body: req.body, maxBody: 64 << 20)
        let obj = (try? JSONSerialization.jsonObject(with: Data(r.body.utf8))) as? [String: Any] ?? [:]
        guard (200..<300).contains(r.status) else {
            let type = (obj["__type"] as? String ?? "HTTP\(r.status)").split(separator: "#").last.map(String.init) ?? "Error"
            throw AWSError(status: r.status, code: type, message: (obj["message"] ?? obj["Message"]) as? String ?? "")
        }
        return AWSJSON(object: obj)
    }

    /// REST-XML protocol (S3): path-style addressing against an endpoint override, S3 signing rules.
    public func restXML(service: String, region: String, method: String, path: String, query: [(String, String)] = [],
                        headers: [String: String] = [:], body: [UInt8] = []) throws -> (status: Int, xml: XMLNode?) {
        let (scheme, host, port) = endpoint(service: service, region: region)
        var req = AWSRequest(method: method, scheme: scheme, host: host, port: port, path: path, query: query, headers: headers, body: body)
        SigV4.sign(&req, credentials: credentials, region: region, service: service, s3: service == "s3")
        let q = req.encodedQuery
        let url = "\(scheme)://\(req.hostHeader)\(SigV4.wirePath(path))\(q.isEmpty ? "" : "?" + q)"
        let r = try http.send(method: method, url: url, headers: req.headers, body: req.body, maxBody: 64 << 20)
        let xml = r.body.isEmpty ? nil : try? XMLNode.parse(Data(r.body.utf8))
        guard (200..<300).contains(r.status) else {
            throw AWSError(status: r.status, code: xml?.first("Code")?.text ?? "HTTP\(r.status)", message: xml?.first("Message")?.text ?? "")
        }
        return (r.status, xml)
    }
}

/// A parsed XML element: name, text, children. Enough for AWS responses.
public final class XMLNode: @unchecked Sendable {
    public let name: String
    public var text: String = ""
    public var children: [XMLNode] = []

    init(name: String) { self.name = name }

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

    public static func parse(_ data: Data) throws -> XMLNode {
        final class Builder: NSObject, XMLParserDelegate {
            let root = XMLNode(name: "#document")
            var stack: [XMLNode] = []
            override init() { super.init(); stack = [root] }
            func parser(_ p: XMLParser, didStartElement e: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
                let n = XMLNode(name: e)
                stack.last?.children.append(n)
                stack.append(n)
            }
            func parser(_ p: XMLParser, foundCharacters s: String) { stack.last?.text += s }
            func parser(_ p: XMLParser, didEndElement e: String, namespaceURI: String?, qualifiedName: String?) {
                if let n = stack.popLast() { n.text = n.text.trimmingCharacters(in: .whitespacesAndNewlines) }
            }
        }
        let b = Builder()
        let p = XMLParser(data: data)
        p.delegate = b
        guard p.parse() else { throw AWSError(status: 0, code: "MalformedResponse", message: "response is not XML") }
        return b.root
    }
}
