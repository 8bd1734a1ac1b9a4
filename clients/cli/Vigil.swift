import ArgumentParser
import Foundation
import NIOHTTP1
import VigilAPIClient

#if canImport(Glibc)
    import Glibc
#endif

/// `vigil`: the command line of the Vigil REST API (scripts, CI pipelines, terminals).
///
/// Exit codes: 0 success; 1 an error (the API's message and correlation id are printed); 2 the
/// credential was refused; 3 `--fail-on` found open findings at or above the severity; 4 the scan failed
/// or was canceled.
@main
struct Vigil: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vigil", abstract: "Vigil from the command line: connect, scan, triage, fix, report.",
        discussion:
            "Exit codes: 0 ok, 1 error, 2 credential refused, 3 --fail-on matched, 4 scan failed. "
            + "Shell completions: vigil --generate-completion-script bash|zsh|fish",
        subcommands: [Login.self, Connect.self, Scan.self, Findings.self, Fix.self, Report.self, Schedule.self, Tail.self])
}

/// Runs `body` with the API client, printing a `CLIError` as the API said it and exiting with its code.
func withAPI(_ api: API? = nil, _ body: (API) async throws -> Void) async throws {
    var client: API? = api
    do {
        if client == nil { client = try API() }
        try await body(client!)
        await client?.shutdown()
    } catch let e as CLIError {
        await client?.shutdown()
        FileHandle.standardError.write(Data((e.description + "\n").utf8))
        throw ExitCode(e.exitCode)
    }
}

func say(_ s: String) { write(s + "\n") }

/// Unbuffered stdout (a progress line must show before the next poll).
func write(_ s: String) { FileHandle.standardOutput.write(Data(s.utf8)) }

struct Login: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Store the API URL and a credential (mode 600 in your config directory).")
    @Option(help: "The Vigil URL, e.g. https://vigil.example.com") var url: String
    @Option(name: .customLong("api-key"), help: "An API key (vgl_…)") var apiKey: String?
    @Option(help: "Sign in with an email (the password is read from VIGIL_PASSWORD or stdin)") var email: String?

    func run() async throws {
        let api = try API(url: url, token: apiKey ?? "")
        try await withAPI(api) { api in
            var token = apiKey ?? ""
            if let email {
                let password = ProcessInfo.processInfo.environment["VIGIL_PASSWORD"] ?? readLine(strippingNewline: true) ?? ""
                let r = try await api.call(.POST, "/auth/login", body: ["email": email, "password": password], auth: false)
                token = r["access_token"] as? String ?? ""
            }
            guard !token.isEmpty else { throw CLIError(message: "give --api-key or --email") }
            let checked = try API(url: url, token: token)
            defer { Task { await checked.shutdown() } }
            let me = try await checked.call(.GET, "/auth/me")
            try CLIConfig(url: url, token: token).save()
            let who = (me["user"] as? [String: Any])?["email"] as? String ?? (me["api_key"] as? [String: Any])?["name"] as? String ?? "api key"
            say("logged in to \(url) as \(who); saved to \(CLIConfig.path)")
        }
    }
}

struct Connect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Connect an AWS account, a web target, a Linux host or a repository.",
        subcommands: [AWS.self, Web.self, Linux.self, Repo.self])

    struct AWS: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "An AWS account (keys from the options or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).")
        @Option var name: String
        @Option(name: .customLong("region"), help: "Repeat for several regions") var regions: [String] = ["us-east-1"]
        @Option(name: .customLong("role-arn")) var roleArn: String?
        @Option(name: .customLong("external-id")) var externalId: String?
        @Option(name: .customLong("endpoint-url"), help: "An AWS-compatible endpoint (moto, LocalStack)") var endpointUrl: String?

        func run() async throws {
            try await withAPI { api in
                let env = ProcessInfo.processInfo.environment
                var creds: [String: Any] = [:]
                if let k = env["AWS_ACCESS_KEY_ID"], let s = env["AWS_SECRET_ACCESS_KEY"] {
                    creds["access_key_id"] = k
                    creds["secret_access_key"] = s
                    if let t = env["AWS_SESSION_TOKEN"] { creds["session_token"] = t }
                }
                if let roleArn { creds["role_arn"] = roleArn }
                if let externalId { creds["external_id"] = externalId }
                var settings: [String: Any] = ["regions": regions]
                if let endpointUrl { settings["endpoint_url"] = endpointUrl }
                let c = try await api.call(
                    .POST, "/connections/", body: ["name": name, "provider": "aws", "credentials": creds, "settings": settings])
                say("connected \(Output.string(c["name"])) (\(Output.string(c["id"])))")
            }
        }
    }

    struct Web: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A web target (a URL).")
        @Argument var url: String
        @Option var name: String?
        @Option(name: .customLong("ca-file"), help: "Extra PEM CA bundle to trust for this site") var caFile: String?

        func run() async throws {
            try await withAPI { api in
                var settings: [String: Any] = ["url": url]
                if let caFile { settings["ca_pem"] = try String(contentsOfFile: caFile, encoding: .utf8) }
                let c = try await api.call(
                    .POST, "/connections/", body: ["name": name ?? URL(string: url)?.host ?? url, "provider": "web", "settings": settings])
                say("connected \(Output.string(c["name"])) (\(Output.string(c["id"])))")
            }
        }
    }

    struct Linux: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A Linux host: through an enrolled connector, or agentless over SSH.")
        @Option var name: String
        @Option(name: .customLong("connector-id")) var connectorId: String?
        @Option(help: "SSH host (agentless)") var host: String?
        @Option var port: Int = 22
        @Option var user: String = "root"
        @Option(name: .customLong("key-file"), help: "Private key for SSH") var keyFile: String?

        func run() async throws {
            try await withAPI { api in
                var body: [String: Any] = ["name": name, "provider": "linux"]
                if let connectorId {
                    body["settings"] = ["mode": "agent", "connector_id": connectorId]
                } else if let host, let keyFile {
                    body["settings"] = ["mode": "ssh", "host": host, "port": port, "username": user]
                    body["credentials"] = ["private_key": try String(contentsOfFile: keyFile, encoding: .utf8)]
                } else {
                    throw CLIError(message: "give --connector-id, or --host and --key-file")
                }
                let c = try await api.call(.POST, "/connections/", body: body)
                say("connected \(Output.string(c["name"])) (\(Output.string(c["id"])))")
            }
        }
    }

    struct Repo: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A git repository (https://, ssh:// or git@host:path); scan it with `vigil scan NAME` for secrets in its tree and history.")
        @Argument(help: "Clone URL") var cloneURL: String
        @Option var name: String?
        @Option(help: "Branch whose tree is scanned (default: the remote's HEAD)") var branch: String?
        @Option(name: .customLong("token-env"), help: "Environment variable holding an HTTPS access token") var tokenEnv: String?
        @Option(name: .customLong("key-file"), help: "SSH private key for ssh:// and git@ URLs") var keyFile: String?

        func run() async throws {
            try await withAPI { api in
                var body: [String: Any] = ["clone_url": cloneURL]
                if let name { body["name"] = name }
                if let branch { body["default_branch"] = branch }
                if let tokenEnv {
                    guard let token = ProcessInfo.processInfo.environment[tokenEnv], !token.isEmpty else {
                        throw CLIError(message: "\(tokenEnv) is not set")
                    }
                    body["credentials"] = ["token": token]
                } else if let keyFile {
                    body["credentials"] = ["ssh_key": try String(contentsOfFile: keyFile, encoding: .utf8)]
                }
                let r = try await api.call(.POST, "/repositories", body: body)
                say("connected \(Output.string(r["name"])) (\(Output.string(r["id"])))")
            }
        }
    }
}

struct Scan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Scan a connection (by name or id); --wait shows progress until the findings are final.")
    @Argument(help: "Connection name or id") var connection: String
    @Flag(help: "Wait for the scan and its findings") var wait = false
    @Option(name: .customLong("fail-on"), help: "Exit 3 when open findings at or above this severity exist (implies --wait)") var failOn: String?
    @Option(name: .customLong("service"), help: "Repeat to narrow an AWS scan") var services: [String] = []
    @Option(help: "Give up waiting after this many seconds") var timeout: Int = 1800

    func run() async throws {
        let threshold = try failOn.map(Output.atLeast)
        try await withAPI { api in
            let cid = try await api.connectionId(connection)
            var body: [String: Any] = ["connection_id": cid]
            if !services.isEmpty { body["services"] = services }
            let scan = try await api.call(.POST, "/scans/trigger", body: body)
            let sid = Output.string(scan["id"])
            say("scan \(sid) queued")
            guard wait || threshold != nil else { return }
            let final = try await follow(api, sid)
            let counts = final["findings_count"] as? [String: Any] ?? [:]
            say("scan \(Output.string(final["status"])): " + Output.severities.map { "\($0) \(Output.string(counts[$0]))" }.joined(separator: ", "))
            if Output.string(final["status"]) != "completed" {
                throw CLIError(message: "the scan \(Output.string(final["status"])): \(Output.string(final["error"]))", exitCode: 4)
            }
            if let threshold {
                let open = try await api.call(
                    .GET, "/findings/?connection_id=\(cid)&status=open&severity=\(threshold.joined(separator: ","))&limit=1")
                let n = open["total"] as? Int ?? 0
                if n > 0 {
                    throw CLIError(message: "\(n) open finding(s) at or above \(failOn!) on \(connection)", exitCode: 3)
                }
            }
        }
    }

    /// Polls progress: a redrawn bar on a terminal, one line per phase otherwise; then waits for
    /// `findings_ingested` so what follows reads the scan's final findings.
    func follow(_ api: API, _ sid: String) async throws -> [String: Any] {
        let started = Date()
        var lastPhase = ""
        let tty = Output.isTTY
        while Date().timeIntervalSince(started) < Double(timeout) {
            let p = try await api.call(.GET, "/scans/\(sid)/progress")
            let phase = Output.string(p["phase"])
            let (percent, done, total) = (p["percent_complete"] as? Int ?? 0, p["parts_done"] as? Int ?? 0, p["parts_total"] as? Int ?? 0)
            let line = Output.bar(percent: percent, phase: phase, done: done, total: total, since: started)
            if tty {
                write("\r" + line)
            } else if phase != lastPhase {
                say("\(Output.elapsed(started)) \(phase) \(percent)% \(done)/\(total) parts")
            }
            lastPhase = phase
            if ["completed", "failed", "canceled"].contains(Output.string(p["status"])) {
                if tty { write("\n") }
                break
            }
            try await Task.sleep(for: .milliseconds(300))
        }
        while Date().timeIntervalSince(started) < Double(timeout) {
            let s = try await api.call(.GET, "/scans/\(sid)")
            if s["findings_ingested"] as? Bool == true { return s }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw CLIError(message: "the scan did not finish within \(timeout) s")
    }
}

struct Findings: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List and show findings.", subcommands: [List.self, Show.self])
    static let columns = ["id", "severity", "status", "rule_code", "resource_name", "title"]

    struct List: AsyncParsableCommand {
        @Option(help: "critical,high,… or a minimum with --min-severity") var severity: String?
        @Option(name: .customLong("min-severity")) var minSeverity: String?
        @Option var status: String = "open"
        @Option var connection: String?
        @Option(name: .customLong("check")) var check: String?
        @Option var limit: Int = 500
        @Option(help: "Table/CSV columns, comma-separated (default: id,severity,status,rule_code,resource_name,title)") var columns: String?
        @Flag var json = false
        @Flag var csv = false
        @Flag var sarif = false

        func run() async throws {
            try await withAPI { api in
                var q = ["status=\(API.escape(status))"]
                if let s = try minSeverity.map(Output.atLeast) ?? severity.map({ [$0] }) { q.append("severity=\(s.joined(separator: ","))") }
                if let connection { q.append("connection_id=\(try await api.connectionId(connection))") }
                if let check { q.append("check_id=\(API.escape(check))") }
                if json { return try await stream(api, "/findings/export?" + q.joined(separator: "&")) }
                // Most severe first, then by check and resource: the same findings always print the same way.
                let rank = Dictionary(uniqueKeysWithValues: Output.severities.enumerated().map { ($1, $0) })
                let items = Array(try await api.all("/findings/?" + q.joined(separator: "&"), max: limit).prefix(limit)).sorted {
                    let a = (rank[Output.string($0["severity"])] ?? 9, Output.string($0["rule_code"]), Output.string($0["resource_name"]))
                    let b = (rank[Output.string($1["severity"])] ?? 9, Output.string($1["rule_code"]), Output.string($1["resource_name"]))
                    return a < b
                }
                let cols = columns.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? Findings.columns
                if csv {
                    say(Output.csv(items, columns: cols))
                } else if sarif {
                    say(Output.sarif(items))
                } else {
                    say(items.isEmpty ? "no findings" : Output.table(items, columns: cols))
                }
            }
        }

        /// `--json`: the API's export (`GET /findings/export`), one JSON array the gateway streams one finding a
        /// line in the list's order, copied to stdout as it arrives: memory stays flat and the first findings
        /// show at once however many there are.
        func stream(_ api: API, _ path: String) async throws {
            try await api.stream(path + "&limit=\(limit)") { FileHandle.standardOutput.write($0) }
        }
    }

    struct Show: AsyncParsableCommand {
        @Argument var id: String
        @Flag var json = false
        func run() async throws {
            try await withAPI { api in
                let f = try await api.call(.GET, "/findings/\(API.escape(id))")
                if json { return say(Output.json(f)) }
                say("\(Output.string(f["severity"]).uppercased())  \(Output.string(f["title"]))")
                for k in ["id", "status", "rule_code", "resource_name", "resource_id", "region", "cwe", "first_seen_at", "last_seen_at"] {
                    say("  \(k.padding(toLength: 14, withPad: " ", startingAt: 0)) \(Output.string(f[k]))")
                }
                say("  description    \(Output.string(f["description"]))")
                if let r = f["remediation"] as? [String: Any] { say("  remediation    \(Output.string(r["console"]))") }
                say("  evidence       \(Output.string(f["evidence"]))")
            }
        }
    }
}

struct Fix: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Plan, approve and roll back automatic fixes.", subcommands: [Plan.self, Approve.self, Rollback.self])

    struct Plan: AsyncParsableCommand {
        @Argument(help: "Finding id") var finding: String
        @Flag(name: .customLong("dry-run")) var dryRun = false
        func run() async throws {
            try await withAPI { api in
                let a = try await api.call(.POST, "/remediations/request", body: ["finding_id": finding, "dry_run": dryRun])
                say("fix \(Output.string(a["id"])): \(Output.string(a["status"])) — \(Output.string(a["action"]))")
            }
        }
    }
    struct Approve: AsyncParsableCommand {
        @Argument(help: "Fix (remediation action) id") var action: String
        @Option var reason: String?
        func run() async throws {
            try await withAPI { api in
                let a = try await api.call(.POST, "/remediations/\(API.escape(action))/approve", body: reason.map { ["reason": $0] } ?? [:])
                say("fix \(Output.string(a["id"])): \(Output.string(a["status"]))")
            }
        }
    }
    struct Rollback: AsyncParsableCommand {
        @Argument var action: String
        func run() async throws {
            try await withAPI { api in
                let a = try await api.call(.POST, "/remediations/\(API.escape(action))/rollback")
                say("fix \(Output.string(a["id"])): \(Output.string(a["status"]))")
            }
        }
    }
}

struct Report: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate and download reports.", subcommands: [Generate.self])

    struct Generate: AsyncParsableCommand {
        @Option var type: String = "executive_summary"
        @Option var format: String = "pdf"
        @Option(name: .shortAndLong, help: "Where to write the report") var output: String

        func run() async throws {
            try await withAPI { api in
                let r = try await api.call(.POST, "/reports/generate", body: ["type": type, "format": format])
                let (status, data, _) = try await api.raw(.GET, "/reports/\(Output.string(r["id"]))/download")
                guard status == 200 else { throw CLIError(message: "the report could not be downloaded (HTTP \(status))") }
                guard FileManager.default.createFile(atPath: output, contents: data) else { throw CLIError(message: "cannot write \(output)") }
                say("wrote \(output) (\(data.count) bytes, \(type), \(format))")
            }
        }
    }
}

struct Schedule: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Scan schedules.", subcommands: [List.self, Create.self, Pause.self, Resume.self, RunNow.self])

    struct List: AsyncParsableCommand {
        @Flag var json = false
        func run() async throws {
            try await withAPI { api in
                let items = try await api.all("/schedules/")
                say(
                    json
                        ? Output.json(items)
                        : Output.table(items, columns: ["id", "name", "status", "cron", "interval_minutes", "timezone", "next_run_at"]))
            }
        }
    }
    struct Create: AsyncParsableCommand {
        @Option var name: String
        @Option var connection: String
        @Option var cron: String?
        @Option(name: .customLong("every-minutes")) var every: Int?
        @Option var timezone: String = "UTC"
        func run() async throws {
            try await withAPI { api in
                var body: [String: Any] = ["name": name, "connection_id": try await api.connectionId(connection), "timezone": timezone]
                if let cron { body["cron"] = cron }
                if let every { body["interval_minutes"] = every }
                let s = try await api.call(.POST, "/schedules/", body: body)
                say("schedule \(Output.string(s["id"])): next run \(Output.string(s["next_run_at"]))")
            }
        }
    }
    struct Pause: AsyncParsableCommand {
        @Argument var id: String
        func run() async throws {
            try await withAPI { api in say(Output.string(try await api.call(.POST, "/schedules/\(API.escape(id))/pause")["status"])) }
        }
    }
    struct Resume: AsyncParsableCommand {
        @Argument var id: String
        func run() async throws {
            try await withAPI { api in say(Output.string(try await api.call(.POST, "/schedules/\(API.escape(id))/resume")["status"])) }
        }
    }
    struct RunNow: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "run-now")
        @Argument var id: String
        func run() async throws {
            try await withAPI { api in
                let r = try await api.call(.POST, "/schedules/\(API.escape(id))/run-now")
                say("run \(Output.string(r["outcome"])): scan \(Output.string(r["scan_id"]))")
            }
        }
    }
}

struct Tail: AsyncParsableCommand {
    static func line(_ e: [String: Any]) -> String {
        let type = Output.string(e["event_type"]).padding(toLength: 13, withPad: " ", startingAt: 0)
        let severity = Output.string(e["severity"]).padding(toLength: 8, withPad: " ", startingAt: 0)
        return "\(Output.string(e["created_at"]))  \(type) \(severity) \(Output.string(e["rule_code"]))  \(Output.string(e["finding_id"]))"
    }

    static let configuration = CommandConfiguration(abstract: "Follow finding events (opened, resolved, reopened, …) as they happen.")
    @Option(help: "Stop after this many seconds (0: until interrupted)") var seconds: Int = 0
    @Flag var json = false

    func run() async throws {
        try await withAPI { api in
            let started = Date()
            var seen: Set<String> = []
            // What exists now is history: only later events are printed.
            for e in try await api.call(.GET, "/finding-events?limit=200")["items"] as? [[String: Any]] ?? [] { seen.insert(Output.string(e["id"])) }
            while seconds == 0 || Date().timeIntervalSince(started) < Double(seconds) {
                let page = try await api.call(.GET, "/finding-events?limit=200")["items"] as? [[String: Any]] ?? []
                for e in page.reversed() where seen.insert(Output.string(e["id"])).inserted {
                    say(json ? Output.json(e).replacingOccurrences(of: "\n", with: "") : Tail.line(e))
                }
                try await Task.sleep(for: .seconds(1))
            }
        }
    }
}
