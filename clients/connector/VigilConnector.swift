import ArgumentParser
import Foundation
import Host
import ScanEngine
import VigilCore

@main
struct VigilConnector: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vigil-connector",
        abstract: "Vigil's on-prem connector: audits this Linux host for the Vigil platform, or audits a directory tree locally.",
        version: AgentVersion.current,
        subcommands: [Run.self, Register.self, AuditCommand.self])

    struct Connection: ParsableArguments {
        @Option(help: "Where the connector keeps its identity (connector.json, mode 600).")
        var stateDir = "/var/lib/vigil-connector"
        @Option(help: "An extra PEM CA bundle to trust for the Vigil URL (a private CA).")
        var caFile: String?
        @Option(help: "An HTTP proxy for outbound HTTPS, e.g. http://proxy:3128.")
        var proxy: String?
    }

    static func log(_ s: String) {
        FileHandle.standardError.write(Data("\(Timestamp.format(Date())) vigil-connector: \(s)\n".utf8))
    }

    /// Registers with an enrollment token and saves the identity.
    static func register(url: String, token: String, name: String, _ c: Connection) async throws -> AgentState {
        let client = try ConnectorClient(url: url, caFile: c.caFile, proxy: c.proxy)
        defer { Task { await client.shutdown() } }
        let host = ProcessInfo.processInfo.hostName
        let reply = try await client.call(
            "/register", ConnectorProtocol.RegisterRequest(enrollmentToken: token, name: name, hostname: host, version: AgentVersion.current),
            signedWith: nil, as: ConnectorProtocol.RegisterReply.self)
        let state = AgentState(
            url: url, connectorId: reply.connectorId, secret: reply.connectorSecret, heartbeatIntervalSeconds: reply.heartbeatIntervalSeconds,
            pollIntervalSeconds: reply.pollIntervalSeconds)
        try StateFile.save(state, c.stateDir)
        log("registered as connector \(reply.connectorId); identity saved in \(StateFile.path(c.stateDir))")
        return state
    }

    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register with an enrollment token and save the connector's identity.")
        @Option(help: "The Vigil URL, e.g. https://vigil.example.com.") var url: String
        @Option(help: "The enrollment token (vce_…).") var token: String
        @Option(help: "A name for this connector.") var name: String = ProcessInfo.processInfo.hostName
        @OptionGroup var connection: Connection

        func run() async throws { _ = try await VigilConnector.register(url: url, token: token, name: name, connection) }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Heartbeat, poll for jobs and run them (registers first when --token is given and no identity is saved).")
        @Option(help: "The Vigil URL (needed to register).") var url: String?
        @Option(help: "An enrollment token, used once if no identity is saved.") var token: String?
        @Option(help: "A name for this connector.") var name: String = ProcessInfo.processInfo.hostName
        @Option(help: "Audit the tree under this directory instead of /.") var root = "/"
        @Flag(help: "Stop after the first job.") var once = false
        @OptionGroup var connection: Connection

        func run() async throws {
            var state = try StateFile.load(connection.stateDir)
            if state == nil {
                guard let url, let token else {
                    throw ValidationError("no identity in \(StateFile.path(connection.stateDir)); give --url and --token to register")
                }
                state = try await VigilConnector.register(url: url, token: token, name: name, connection)
            }
            guard let state else { return }
            let client = try ConnectorClient(url: state.url, caFile: connection.caFile, proxy: connection.proxy)
            VigilConnector.log("connector \(state.connectorId) polling \(state.url)")
            do {
                try await Agent(client: client, state: state, root: root, once: once, log: VigilConnector.log).run()
                await client.shutdown()
            } catch let e as AgentError where e.refused {
                await client.shutdown()
                VigilConnector.log(e.message)
                throw ExitCode(3)
            }
        }
    }

    struct AuditCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "audit", abstract: "Audit this host (or a mounted tree) locally and print the findings; no server needed.")
        @Option(help: "Read every path under this directory (a mounted image or a prepared tree).") var root = "/"
        @Option(help: "text, json (the findings) or result (the facts a connector would post).") var format = "text"

        func validate() throws {
            guard ["json", "text", "result"].contains(format) else { throw ValidationError("--format must be text, json or result") }
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: root, isDirectory: &isDir), isDir.boolValue else {
                throw ValidationError("--root \(root) is not a directory")
            }
        }

        static func text(_ v: JSONValue) -> String {
            switch v {
            case .string(let s): return s
            case .number(let n): return n == n.rounded() ? String(Int(n)) : String(n)
            case .bool(let b): return String(b)
            case .null: return "null"
            default: return String(decoding: (try? JSON.encode(v)) ?? Data(), as: UTF8.self)
            }
        }

        func run() async throws {
            let result = Audit.run(root: root)
            if format == "result" {
                print(String(decoding: try JSON.encode(result), as: UTF8.self))
                return
            }
            let results = Scanner.evaluate(result.resources, rules: RuleEngine.index(BuiltinRules.all), tenantId: "local", connectionId: result.host)
            let failed = results.filter { $0.status == "FAIL" }.sorted {
                ($0.severity.rank, $0.ruleId, $0.resourceId) < ($1.severity.rank, $1.ruleId, $1.resourceId)
            }
            if format == "json" {
                struct Finding: Encodable {
                    var ruleId: String
                    var severity: String
                    var title: String
                    var resource: String
                    var evidence: [String: JSONValue]
                }
                struct Report: Encodable {
                    var host: String
                    var seconds: Double
                    var checksEvaluated: Int
                    var findings: [Finding]
                    var unreadable: [String]
                }
                let report = Report(
                    host: result.host, seconds: result.seconds, checksEvaluated: results.count,
                    findings: failed.map {
                        Finding(ruleId: $0.ruleId, severity: $0.severity.rawValue, title: $0.title, resource: $0.resourceName, evidence: $0.evidence)
                    }, unreadable: result.unreadable)
                print(String(decoding: try JSON.encode(report), as: UTF8.self))
            } else {
                print("\(result.host): \(failed.count) findings from \(results.count) checks in \(String(format: "%.2f", result.seconds)) s")
                for f in failed {
                    let proof = f.evidence.sorted { $0.key < $1.key }.map { "\($0.key)=\(Self.text($0.value))" }.joined(separator: " ")
                    let severity = f.severity.rawValue.uppercased().padding(toLength: 8, withPad: " ", startingAt: 0)
                    print("\(severity) \(f.ruleId)  \(f.resourceName)\n         \(f.title)\n         \(proof)")
                }
                if !result.unreadable.isEmpty { print("not readable: \(result.unreadable.joined(separator: ", "))") }
            }
        }
    }
}
