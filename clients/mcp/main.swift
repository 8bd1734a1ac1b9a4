import Foundation
import MCP
import VigilAPIClient

/// `vigil-mcp`: a Model Context Protocol server on stdio for AI assistants. Every tool is a call to the
/// REST API with the credential of `vigil login` (or `VIGIL_URL` / `VIGIL_TOKEN`), so an assistant sees
/// and does exactly what that key's role allows. Tools that change something (start a scan, triage a
/// finding) say so in their annotations.
enum Tools {
    static func schema(_ properties: [String: (type: String, description: String)], required: [String] = []) -> Value {
        var props: [String: Value] = [:]
        for (name, p) in properties { props[name] = .object(["type": .string(p.type), "description": .string(p.description)]) }
        return .object(["type": "object", "properties": .object(props), "required": .array(required.map { .string($0) })])
    }

    static let all: [Tool] = [
        Tool(
            name: "list_connections", description: "The workspace's connected AWS accounts, web targets and Linux hosts.", inputSchema: schema([:]),
            annotations: .init(readOnlyHint: true)),
        Tool(
            name: "list_findings",
            description: "Findings with filters. Severity: a minimum (critical, high, medium, low, info). Status defaults to open.",
            inputSchema: schema([
                "min_severity": ("string", "lowest severity to include"), "status": ("string", "open, resolved, suppressed, accepted_risk"),
                "connection": ("string", "connection name or id"), "check_id": ("string", "rule id, e.g. web.headers.hsts_missing"),
                "limit": ("integer", "at most this many (default 50, max 200)"),
            ]), annotations: .init(readOnlyHint: true)),
        Tool(
            name: "get_finding", description: "One finding with evidence, remediation steps and compliance controls.",
            inputSchema: schema(["finding_id": ("string", "the finding's id")], required: ["finding_id"]), annotations: .init(readOnlyHint: true)),
        Tool(
            name: "remediation_guide", description: "Step-by-step fix for a finding: console steps, CLI commands and Terraform.",
            inputSchema: schema(["finding_id": ("string", "the finding's id")], required: ["finding_id"]), annotations: .init(readOnlyHint: true)),
        Tool(
            name: "start_scan", description: "Queue a scan of a connection; poll scan_status until findings_ingested is true.",
            inputSchema: schema(["connection": ("string", "connection name or id")], required: ["connection"]),
            annotations: .init(readOnlyHint: false, destructiveHint: false)),
        Tool(
            name: "scan_status", description: "A scan's status, progress, counts by severity and whether its findings are final.",
            inputSchema: schema(["scan_id": ("string", "the scan's id")], required: ["scan_id"]), annotations: .init(readOnlyHint: true)),
        Tool(
            name: "compliance_score", description: "Compliance scores per framework (CIS, PCI DSS, SOC 2, ISO 27001, NIST 800-53).",
            inputSchema: schema([:]), annotations: .init(readOnlyHint: true)),
        Tool(
            name: "triage_finding", description: "Suppress, accept the risk of, or reopen a finding, with a reason (audited).",
            inputSchema: schema(
                ["finding_id": ("string", "the finding's id"), "action": ("string", "suppress, accept_risk or reopen"), "reason": ("string", "why")],
                required: ["finding_id", "action", "reason"]), annotations: .init(readOnlyHint: false, destructiveHint: false)),
    ]

    static func json(_ v: Any) -> String {
        String(
            decoding: (try? JSONSerialization.data(withJSONObject: v, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])) ?? Data(),
            as: UTF8.self)
    }

    static func arg(_ p: CallTool.Parameters, _ name: String) -> String? {
        switch p.arguments?[name] {
        case .string(let s)?: return s
        case .int(let i)?: return String(i)
        case .double(let d)?: return String(Int(d))
        default: return nil
        }
    }

    static func required(_ p: CallTool.Parameters, _ name: String) throws -> String {
        guard let v = arg(p, name), !v.isEmpty else { throw CLIError(message: "\(name) is required") }
        return v
    }

    /// The fields of a finding an assistant needs (not the whole record).
    static func brief(_ f: [String: Any]) -> [String: Any] {
        var out: [String: Any] = [:]
        for k in ["id", "severity", "status", "check_id", "title", "resource_name", "connection_id", "cwe_id", "first_seen_at"] { out[k] = f[k] }
        return out
    }

    static func call(_ p: CallTool.Parameters, api: API) async throws -> String {
        switch p.name {
        case "list_connections":
            return json(
                try await api.all("/connections/").map { c in
                    [
                        "id": c["id"] ?? "", "name": c["name"] ?? "", "provider": c["provider"] ?? "",
                        "status": c["status"] ?? "", "last_scan_at": c["last_scan_at"] ?? NSNull(),
                    ]
                })
        case "list_findings":
            var q = ["status=\(API.escape(arg(p, "status") ?? "open"))"]
            if let s = arg(p, "min_severity") {
                let order = ["critical", "high", "medium", "low", "info"]
                guard let i = order.firstIndex(of: s.lowercased()) else {
                    throw CLIError(message: "min_severity must be one of \(order.joined(separator: ", "))")
                }
                q.append("severity=\(order[...i].joined(separator: ","))")
            }
            if let c = arg(p, "connection") { q.append("connection_id=\(try await api.connectionId(c))") }
            if let c = arg(p, "check_id") { q.append("check_id=\(API.escape(c))") }
            let limit = min(200, max(1, Int(arg(p, "limit") ?? "50") ?? 50))
            let page = try await api.call(.GET, "/findings/?" + (q + ["limit=\(limit)"]).joined(separator: "&"))
            let items = (page["items"] as? [[String: Any]] ?? []).map(brief)
            return json(["total": page["total"] ?? items.count, "findings": items])
        case "get_finding":
            return json(try await api.call(.GET, "/findings/\(API.escape(try required(p, "finding_id")))"))
        case "remediation_guide":
            return json(try await api.call(.POST, "/findings/\(API.escape(try required(p, "finding_id")))/ai-remediation"))
        case "start_scan":
            let cid = try await api.connectionId(try required(p, "connection"))
            let s = try await api.call(.POST, "/scans/trigger", body: ["connection_id": cid])
            return json(["scan_id": s["id"] ?? "", "status": s["status"] ?? "", "connection_id": cid])
        case "scan_status":
            let sid = API.escape(try required(p, "scan_id"))
            let s = try await api.call(.GET, "/scans/\(sid)")
            let progress = try await api.call(.GET, "/scans/\(sid)/progress")
            return json([
                "scan_id": s["id"] ?? "", "status": s["status"] ?? "", "phase": progress["phase"] ?? "",
                "percent_complete": progress["percent_complete"] ?? 0,
                "findings_count": s["findings_count"] ?? [:], "findings_ingested": s["findings_ingested"] ?? false, "error": s["error"] ?? NSNull(),
            ])
        case "compliance_score":
            return json(try await api.call(.GET, "/compliance/score"))
        case "triage_finding":
            let id = API.escape(try required(p, "finding_id"))
            let action = try required(p, "action")
            let paths = ["suppress": "suppress", "accept_risk": "accept-risk", "reopen": "reopen"]
            guard let path = paths[action] else { throw CLIError(message: "action must be suppress, accept_risk or reopen") }
            let f = try await api.call(.POST, "/findings/\(id)/\(path)", body: ["reason": try required(p, "reason")])
            return json(brief(f))
        default:
            throw CLIError(message: "unknown tool \(p.name)")
        }
    }
}

let api: API
do { api = try API() } catch {
    FileHandle.standardError.write(Data("vigil-mcp: \(error)\n".utf8))
    exit(1)
}
let server = Server(name: "vigil", version: "1.0.0", capabilities: .init(tools: .init(listChanged: false)))
await server.withMethodHandler(ListTools.self) { _ in .init(tools: Tools.all) }
await server.withMethodHandler(CallTool.self) { params in
    do {
        return .init(content: [.text(try await Tools.call(params, api: api))], isError: false)
    } catch {
        // The API's message, code and correlation id: enough for the assistant to explain or retry.
        return .init(content: [.text("\(error)")], isError: true)
    }
}
try await server.start(transport: StdioTransport())
await server.waitUntilCompleted()
await api.shutdown()
