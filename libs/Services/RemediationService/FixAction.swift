import AWS
import Foundation
import ScanEngine
import VigilCore
import VigilCrypto

/// One AWS API call exactly as a fix will make it: shown in the plan before approval, then executed
/// as recorded. `capture` names reply elements (XML element or JSON key) whose values later steps need,
/// such as the id of a snapshot taken before a deletion; `okErrors` are error codes meaning "already done".
struct APICall: Codable, Sendable, Equatable {
    var service: String
    var operation: String
    var region: String
    /// `query` (form POST, XML reply), `json` (X-Amz-Target), `rest` (S3, Lambda: method + path).
    var kind: String
    var version: String?
    var params: [[String]]?
    var target: String?
    var method: String?
    var path: String?
    var query: [[String]]?
    var headers: [String: String]?
    var body: String?
    var capture: [String: String]?
    var okErrors: [String]?

    static func query(
        _ service: String, _ region: String, _ action: String, version: String, _ params: [(String, String)] = [],
        capture: [String: String]? = nil, okErrors: [String]? = nil
    ) -> APICall {
        APICall(
            service: service, operation: action, region: region, kind: "query", version: version, params: params.map { [$0.0, $0.1] },
            capture: capture, okErrors: okErrors)
    }

    static func json(_ service: String, _ region: String, target: String, _ body: [String: Any]) -> APICall {
        let text = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return APICall(
            service: service, operation: String(target.split(separator: ".").last ?? ""), region: region, kind: "json",
            target: target, body: text)
    }

    static func rest(
        _ service: String, _ region: String, _ operation: String, _ method: String, _ path: String,
        query: [(String, String)] = [], body: String? = nil, contentType: String? = nil, okErrors: [String]? = nil
    ) -> APICall {
        var headers: [String: String] = [:]
        if let body, service == "s3" {
            // S3 requires an integrity checksum on configuration PUTs.
            headers["x-amz-sdk-checksum-algorithm"] = "SHA256"
            headers["x-amz-checksum-sha256"] = Data(Sodium.sha256(Array(body.utf8))).base64EncodedString()
        }
        if let contentType { headers["Content-Type"] = contentType }
        return APICall(
            service: service, operation: operation, region: region, kind: "rest", method: method, path: path,
            query: query.map { [$0.0, $0.1] }, headers: headers.isEmpty ? nil : headers, body: body, okErrors: okErrors)
    }

    /// Performs the call; returns the captured values.
    func perform(_ client: AWSClient) async throws -> [String: String] {
        do {
            switch kind {
            case "query":
                let xml = try await client.query(
                    service: service, region: region, action: operation, version: version ?? "",
                    params: (params ?? []).map { ($0[0], $0[1]) })
                var out: [String: String] = [:]
                for (name, element) in capture ?? [:] { if let v = xml.first(element)?.text { out[name] = v } }
                return out
            case "json":
                let obj = (try? JSONSerialization.jsonObject(with: Data((body ?? "{}").utf8))) as? [String: Any] ?? [:]
                let reply = try await client.json(service: service, region: region, target: target ?? "", body: obj)
                var out: [String: String] = [:]
                for (name, key) in capture ?? [:] { if let v = reply[key] { out[name] = "\(v)" } }
                return out
            default:
                _ = try await client.rest(
                    service: service, region: region, method: method ?? "GET", path: path ?? "/",
                    query: (query ?? []).map { ($0[0], $0[1]) }, headers: headers ?? [:], body: Array((body ?? "").utf8))
                return [:]
            }
        } catch let e as AWSError where (okErrors ?? []).contains(e.code) {
            return [:]
        }
    }
}

/// A parameter a fix action accepts in `POST /remediations/request` (`parameters`).
struct ActionParameter: Codable, Sendable {
    var name: String
    var type: String
    var description: String
    var required: Bool = false
    var allowed: [String]?
}

/// What a fix is pointed at: the finding's resource and the region its API calls go to.
struct FixTarget: Sendable {
    var resourceId: String
    var resourceName: String
    var resourceType: String
    var region: String
    var account: String
    var ruleId: String
    var actionId: String
    var parameters: [String: JSONValue]

    /// The last path element of an ARN (`…:volume/vol-1` → `vol-1`), or the name.
    var nativeId: String {
        if let slash = resourceId.lastIndex(of: "/"), resourceId.hasPrefix("arn:") { return String(resourceId[resourceId.index(after: slash)...]) }
        return resourceName
    }

    func arn(_ service: String, _ rest: String) -> String { "arn:aws:\(service):\(region):\(account):\(rest)" }
}

/// A fix: reads the state it will change (`inspect`), plans the exact calls from it (empty when there
/// is nothing to change), and plans the calls that restore the recorded state (`rollback`). Apply and
/// rollback are those plans executed call by call, with progress recorded between calls.
struct FixAction: Sendable {
    let name: String
    let title: String
    let service: String
    let resourceType: String
    let permissions: [String]
    let rollbackPermissions: [String]
    var parameters: [ActionParameter] = []
    /// What rollback cannot restore exactly, said before approval.
    var rollbackNote: String? = nil
    let inspect: @Sendable (AWSClient, FixTarget) async throws -> JSONValue
    let plan: @Sendable (FixTarget, JSONValue) throws -> [APICall]
    let rollback: @Sendable (FixTarget, JSONValue, [String: String]) throws -> [APICall]
    /// After a rollback that recreates the resource (new id), its resource id.
    var recreatedResource: (@Sendable (FixTarget, [String: String]) -> String?)? = nil
}

/// A fix action's public description (`GET /remediations/actions`, and inside each plan).
struct ActionInfo: Codable, Sendable {
    var name: String
    var title: String
    var service: String
    var resourceType: String
    var permissions: [String]
    var rollbackPermissions: [String]
    var parameters: [ActionParameter]
    var rollbackNote: String?
    var rules: [String]

    init(_ a: FixAction) {
        name = a.name
        title = a.title
        service = a.service
        resourceType = a.resourceType
        permissions = a.permissions
        rollbackPermissions = a.rollbackPermissions
        parameters = a.parameters
        rollbackNote = a.rollbackNote
        rules = BuiltinRules.all.filter { $0.fixAction == a.name }.map(\.id).sorted()
    }
}

/// The plan a request produces: who/what/how, shown before anything changes.
struct FixPlan: Codable, Sendable {
    var action: ActionInfo
    var resourceId: String
    var region: String
    var currentState: JSONValue
    var calls: [APICall]
    var rollbackCalls: [APICall]
}

enum PolicyDocuments {
    /// The document without its public statements, or nil when no statement is left.
    static func withoutPublicStatements(_ text: String) -> (String?, removed: Int) {
        guard var doc = PolicyFacts.parse(text) else { return (text, 0) }
        let all = PolicyFacts.statements(doc)
        let kept = all.filter { !PolicyFacts.isPublic(statement: $0) }
        guard !kept.isEmpty else { return (nil, all.count) }
        doc["Statement"] = kept
        let data = (try? JSONSerialization.data(withJSONObject: doc, options: [.sortedKeys])) ?? Data()
        return (String(decoding: data, as: UTF8.self), all.count - kept.count)
    }

    static func publicStatements(_ text: String?) -> [[String: Any]] {
        guard let doc = PolicyFacts.parse(text) else { return [] }
        return PolicyFacts.statements(doc).filter { PolicyFacts.isPublic(statement: $0) }
    }
}
