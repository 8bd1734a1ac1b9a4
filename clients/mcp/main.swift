import Foundation
import MCP
import NIOHTTP1
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

    static let confirm: (type: String, description: String) = ("boolean", "must be true: this tool changes something")
    static let readOnly = Tool.Annotations(readOnlyHint: true)
    static let changes = Tool.Annotations(readOnlyHint: false, destructiveHint: false)

    static let all: [Tool] = [
        Tool(
            name: "list_connections", description: "The workspace's connected AWS accounts, web targets and Linux hosts.", inputSchema: schema([:]),
            annotations: readOnly),
        Tool(
            name: "run_scan", description: "Queue a scan of a connection (confirm: true); poll get_scan until findings_ingested is true.",
            inputSchema: schema(["connection": ("string", "connection name or id"), "confirm": confirm], required: ["connection", "confirm"]),
            annotations: changes),
        Tool(
            name: "get_scan", description: "A scan's status, progress, counts by severity and whether its findings are final.",
            inputSchema: schema(["scan_id": ("string", "the scan's id")], required: ["scan_id"]), annotations: readOnly),
        Tool(
            name: "list_findings",
            description: "Findings with filters. Severity: a minimum (critical, high, medium, low, info). Status defaults to open.",
            inputSchema: schema([
                "min_severity": ("string", "lowest severity to include"), "status": ("string", "open, resolved, suppressed, accepted_risk"),
                "connection": ("string", "connection name or id"), "check_id": ("string", "rule id, e.g. web.headers.hsts_missing"),
                "limit": ("integer", "at most this many (default 50, max 200)"),
            ]), annotations: readOnly),
        Tool(
            name: "get_finding", description: "One finding with evidence, remediation steps and compliance controls.",
            inputSchema: schema(["finding_id": ("string", "the finding's id")], required: ["finding_id"]), annotations: readOnly),
        Tool(
            name: "explain_finding", description: "Why a finding matters and how to fix it: console steps, CLI commands and Terraform.",
            inputSchema: schema(["finding_id": ("string", "the finding's id")], required: ["finding_id"]), annotations: readOnly),
        Tool(
            name: "request_remediation",
            description: "Plan an automatic fix for a finding (confirm: true); it waits for approval unless the workspace's policy approves it.",
            inputSchema: schema(
                ["finding_id": ("string", "the finding's id"), "dry_run": ("boolean", "plan only"), "confirm": confirm],
                required: ["finding_id", "confirm"]), annotations: changes),
        Tool(
            name: "compliance_score", description: "Compliance scores per framework (CIS, PCI DSS, SOC 2, ISO 27001, NIST 800-53).",
            inputSchema: schema([:]), annotations: readOnly),
        Tool(
            name: "generate_report", description: "Generate a report (confirm: true); read it as the resource vigil://reports/{id}.",
            inputSchema: schema(
                [
                    "type": ("string", "executive_summary, compliance or findings_export"), "format": ("string", "json, csv or html"),
                    "confirm": confirm,
                ], required: ["type", "confirm"]), annotations: changes),
        Tool(
            name: "get_scan_policy", description: "The workspace's utilisation thresholds for cost findings.", inputSchema: schema([:]),
            annotations: readOnly),
        Tool(
            name: "set_scan_policy", description: "Change utilisation thresholds (confirm: true); fields left out keep their value.",
            inputSchema: schema(
                [
                    "global": ("object", "cpu_percent, network_mb, connections, lookback_days, min_monthly_savings…"),
                    "services": ("object", "per-service overrides, e.g. {\"ec2\": {\"cpu_percent\": 3}}"), "confirm": confirm,
                ],
                required: ["confirm"]), annotations: changes),
        Tool(
            name: "triage_finding", description: "Suppress, accept the risk of, or reopen a finding, with a reason (confirm: true; audited).",
            inputSchema: schema(
                [
                    "finding_id": ("string", "the finding's id"), "action": ("string", "suppress, accept_risk or reopen"),
                    "reason": ("string", "why"),
                    "confirm": confirm,
                ], required: ["finding_id", "action", "reason", "confirm"]), annotations: changes),
    ]

    /// Tools that change something run only with `confirm: true`.
    static func confirmed(_ p: CallTool.Parameters) throws {
        guard case .bool(true)? = p.arguments?["confirm"] else {
            throw CLIError(message: "\(p.name) changes something: call it again with confirm: true once the user agreed")
        }
    }

    /// An MCP value as JSON-serialisable Foundation values.
    static func plain(_ v: Value) -> Any {
        switch v {
        case .null: return NSNull()
        case .bool(let b): return b
        case .int(let i): return i
        case .double(let d): return d
        case .string(let s): return s
        case .array(let a): return a.map(plain)
        case .object(let o): return o.mapValues(plain)
        case .data(_, let d): return d.base64EncodedString()
        }
    }

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
        case "explain_finding":
            return json(try await api.call(.POST, "/findings/\(API.escape(try required(p, "finding_id")))/ai-remediation"))
        case "run_scan":
            try confirmed(p)
            let cid = try await api.connectionId(try required(p, "connection"))
            let s = try await api.call(.POST, "/scans/trigger", body: ["connection_id": cid])
            return json(["scan_id": s["id"] ?? "", "status": s["status"] ?? "", "connection_id": cid])
        case "get_scan":
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
            try confirmed(p)
            let id = API.escape(try required(p, "finding_id"))
            let action = try required(p, "action")
            let paths = ["suppress": "suppress", "accept_risk": "accept-risk", "reopen": "reopen"]
            guard let path = paths[action] else { throw CLIError(message: "action must be suppress, accept_risk or reopen") }
            let f = try await api.call(.POST, "/findings/\(id)/\(path)", body: ["reason": try required(p, "reason")])
            return json(brief(f))
        case "request_remediation":
            try confirmed(p)
            var body: [String: Any] = ["finding_id": try required(p, "finding_id")]
            if case .bool(let dry)? = p.arguments?["dry_run"] { body["dry_run"] = dry }
            let a = try await api.call(.POST, "/remediations/request", body: body)
            var out: [String: Any] = [:]
            for k in ["id", "status", "action", "title", "dry_run", "plan"] { out[k] = a[k] }
            return json(out)
        case "generate_report":
            try confirmed(p)
            let r = try await api.call(.POST, "/reports/generate", body: ["type": try required(p, "type"), "format": arg(p, "format") ?? "json"])
            return json(["report_id": r["id"] ?? "", "status": r["status"] ?? "", "resource": "vigil://reports/\(Output.string(r["id"]))"])
        case "get_scan_policy":
            return json(try await api.call(.GET, "/settings/scan-policy"))
        case "set_scan_policy":
            try confirmed(p)
            var body: [String: Any] = [:]
            for k in ["global", "services"] { if let v = p.arguments?[k] { body[k] = plain(v) } }
            return json(try await api.call(.PATCH, "/settings/scan-policy", body: body))
        default:
            throw CLIError(message: "unknown tool \(p.name)")
        }
    }
}

/// The MCP server for one caller: every tool and resource acts through `api`, i.e. with that caller's key.
func makeServer(api: API) async -> Server {
    let server = Server(
        name: "vigil", version: "1.0.0", capabilities: .init(resources: .init(subscribe: false, listChanged: false), tools: .init(listChanged: false))
    )
    await server.withMethodHandler(ListTools.self) { _ in .init(tools: Tools.all) }
    // Resources: the open findings and the generated reports, as JSON (reports as their text).
    await server.withMethodHandler(ListResources.self) { _ in
        var list = [
            Resource(name: "Open findings", uri: "vigil://findings", description: "The 200 most recent open findings", mimeType: "application/json")
        ]
        if let reports = try? await api.call(.GET, "/reports/?limit=20")["items"] as? [[String: Any]] {
            for r in reports {
                let id = Output.string(r["id"])
                list.append(Resource(name: "Report \(Output.string(r["type"])) (\(Output.string(r["format"])))", uri: "vigil://reports/\(id)"))
            }
        }
        return .init(resources: list)
    }
    await server.withMethodHandler(ReadResource.self) { params in
        if params.uri == "vigil://findings" {
            let page = try await api.call(.GET, "/findings/?status=open&limit=200")
            return .init(contents: [
                .text(Tools.json((page["items"] as? [[String: Any]] ?? []).map(Tools.brief)), uri: params.uri, mimeType: "application/json")
            ])
        }
        if params.uri.hasPrefix("vigil://reports/") {
            let id = API.escape(String(params.uri.dropFirst("vigil://reports/".count)))
            let (status, data, headers) = try await api.raw(.GET, "/reports/\(id)/download")
            guard status == 200 else { throw MCPError.invalidParams("no such report") }
            return .init(contents: [.text(String(decoding: data, as: UTF8.self), uri: params.uri, mimeType: headers.first(name: "content-type"))])
        }
        throw MCPError.invalidParams("unknown resource \(params.uri)")
    }
    await server.withMethodHandler(CallTool.self) { params in
        do {
            return .init(content: [.text(try await Tools.call(params, api: api))], isError: false)
        } catch {
            // The API's message, code and correlation id: enough for the assistant to explain or retry.
            return .init(content: [.text("\(error)")], isError: true)
        }
    }
    return server
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("vigil-mcp: \(message)\n".utf8))
    exit(1)
}

// `vigil-mcp` speaks MCP on stdio; `vigil-mcp --http HOST:PORT` (or VIGIL_MCP_HTTP) serves streamable HTTP at /mcp,
// where each session acts with the bearer key of the client that opened it.
let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.contains("--help") || arguments.contains("-h") {
    print(
        """
        USAGE: vigil-mcp [--http HOST:PORT]

        Without --http, speaks MCP on stdin/stdout with the key of `vigil login` (or VIGIL_URL and VIGIL_TOKEN).
        With --http (or VIGIL_MCP_HTTP=HOST:PORT), serves MCP streamable HTTP at http://HOST:PORT/mcp; every
        session acts with the key its client sends (Authorization: Bearer KEY or x-api-key), against VIGIL_URL.
        VIGIL_MCP_ALLOWED_HOSTS (host:port, comma-separated) replaces the loopback-only Host/Origin check.
        """)
    exit(0)
}
var httpAddress = ProcessInfo.processInfo.environment["VIGIL_MCP_HTTP"]
if let i = arguments.firstIndex(of: "--http") {
    guard i + 1 < arguments.count else { fail("--http needs HOST:PORT") }
    httpAddress = arguments[i + 1]
}
if let httpAddress {
    guard let url = ProcessInfo.processInfo.environment["VIGIL_URL"] ?? (try? CLIConfig.load().url) else {
        fail("set VIGIL_URL to the Vigil API's URL")
    }
    do { try await MCPHTTPServer(address: httpAddress, vigilURL: url).run() } catch { fail("\(error)") }
} else {
    let api: API
    do { api = try API() } catch { fail("\(error)") }
    let server = await makeServer(api: api)
    try await server.start(transport: StdioTransport())
    await server.waitUntilCompleted()
    await api.shutdown()
}

enum Output {
    static func string(_ v: Any?) -> String {
        switch v {
        case let s as String: return s
        case let n as NSNumber: return n.stringValue
        default: return ""
        }
    }
}
