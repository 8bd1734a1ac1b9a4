import AsyncHTTPClient
import Foundation
import Host
import NIOCore
import NIOSSL
import VigilCore
import VigilCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// What the agent keeps between runs, in `<state-dir>/connector.json` (mode 600, directory 700).
struct AgentState: Codable {
    var url: String
    var connectorId: String
    var secret: String
    var heartbeatIntervalSeconds: Int
    var pollIntervalSeconds: Int
}

struct AgentError: Error, CustomStringConvertible {
    var message: String
    /// The server refused the credentials (revoked, or a wrong secret): retrying cannot help.
    var refused = false
    var description: String { message }
}

/// The connector's HTTP side: every call goes to the gateway's `/api/v1/connector-api/…`, signed after
/// registration. HTTPS only, except to loopback addresses; an extra CA bundle and an HTTP proxy are
/// supported.
final class ConnectorClient: Sendable {
    let base: String
    let http: HTTPClient
    let timeout: TimeAmount = .seconds(30)

    init(url: String, caFile: String?, proxy: String?) throws {
        guard let u = URL(string: url), let scheme = u.scheme?.lowercased(), let host = u.host else {
            throw AgentError(message: "--url must be an absolute URL such as https://vigil.example.com")
        }
        let loopback = host == "localhost" || host.hasPrefix("127.") || host == "::1" || host == "[::1]"
        guard scheme == "https" || (scheme == "http" && loopback) else {
            throw AgentError(message: "the connector talks HTTPS only (plain HTTP is allowed to loopback addresses)")
        }
        base = url.hasSuffix("/") ? String(url.dropLast()) : url
        var config = HTTPClient.Configuration()
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caFile { tls.additionalTrustRoots = [.file(caFile)] }
        config.tlsConfiguration = tls
        if let proxy {
            guard let p = URL(string: proxy), let ph = p.host else { throw AgentError(message: "--proxy must be a URL such as http://proxy:3128") }
            config.proxy = .server(host: ph, port: p.port ?? 3128)
        }
        config.timeout = .init(connect: .seconds(10), read: .seconds(40))
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    func shutdown() async { try? await http.shutdown() }

    /// POSTs JSON to `path` (under /api/v1/connector-api), signed with `state` when given.
    func post(_ path: String, _ body: Data, signedWith state: AgentState? = nil) async throws -> (Int, Data) {
        let full = "/api/v1/connector-api" + path
        var req = HTTPClientRequest(url: base + full)
        req.method = .POST
        req.headers.add(name: "content-type", value: "application/json")
        req.headers.add(name: "user-agent", value: "vigil-connector/\(AgentVersion.current)")
        if let state {
            let ts = String(Int(Date().timeIntervalSince1970))
            let nonce = Base64URL.encode(Sodium.randomBytes(18))
            let text = ConnectorProtocol.canonical(
                method: "POST", path: full, timestamp: ts, nonce: nonce, bodySHA256Hex: Sodium.hex(Sodium.sha256(Array(body))))
            let sig = Sodium.hex(Sodium.hmacSHA256(key: Array(state.secret.utf8), message: Array(text.utf8)))
            req.headers.add(name: ConnectorProtocol.connectorHeader, value: state.connectorId)
            req.headers.add(name: ConnectorProtocol.timestampHeader, value: ts)
            req.headers.add(name: ConnectorProtocol.nonceHeader, value: nonce)
            req.headers.add(name: ConnectorProtocol.signatureHeader, value: "v1=" + sig)
        }
        req.body = .bytes(ByteBuffer(bytes: body))
        let res = try await http.execute(req, timeout: timeout)
        let buf = try await res.body.collect(upTo: 8 << 20)
        return (Int(res.status.code), Data(buf.readableBytesView))
    }

    func call<Reply: Decodable>(_ path: String, _ body: some Encodable, signedWith state: AgentState?, as: Reply.Type) async throws -> Reply {
        let (status, data) = try await post(path, try JSON.encode(body), signedWith: state)
        guard (200..<300).contains(status) else {
            let message = (try? JSONSerialization.jsonObject(with: data) as? [String: Any])?["message"] as? String ?? "HTTP \(status)"
            throw AgentError(message: "\(path): \(message)", refused: status == 401)
        }
        return try JSON.decode(Reply.self, from: data)
    }
}

enum AgentVersion {
    static let current = "1.0.0"
}

/// Reads and writes the agent's state file, refusing one that others can read.
enum StateFile {
    static func path(_ dir: String) -> String { dir + "/connector.json" }

    static func load(_ dir: String) throws -> AgentState? {
        let p = path(dir)
        guard FileManager.default.fileExists(atPath: p) else { return nil }
        let attrs = try FileManager.default.attributesOfItem(atPath: p)
        if let mode = attrs[.posixPermissions] as? Int, mode & 0o077 != 0 {
            throw AgentError(message: "\(p) is readable by others (mode \(String(mode, radix: 8))); chmod 600 it and rotate the connector")
        }
        return try JSON.decode(AgentState.self, from: Data(contentsOf: URL(fileURLWithPath: p)))
    }

    static func save(_ s: AgentState, _ dir: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: dir)
        let p = path(dir)
        let tmp = p + ".tmp"
        FileManager.default.createFile(atPath: tmp, contents: try JSON.encode(s), attributes: [.posixPermissions: 0o600])
        guard rename(tmp, p) == 0 else { throw AgentError(message: "cannot write \(p): errno \(errno)") }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: p)
    }
}

/// The long-running agent: heartbeats, long-polls for jobs, runs the ones it knows and posts signed
/// results, retrying with backoff through network failures and gateway restarts.
struct Agent {
    let client: ConnectorClient
    let state: AgentState
    let root: String
    let once: Bool
    let log: @Sendable (String) -> Void

    func run() async throws {
        try await heartbeat()
        let beat = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(max(1, state.heartbeatIntervalSeconds)))
                do { try await heartbeat() } catch let e as AgentError where e.refused { return } catch { log("heartbeat failed: \(error)") }
            }
        }
        defer { beat.cancel() }
        var failures = 0
        while !Task.isCancelled {
            do {
                let reply = try await client.call(
                    "/jobs/poll", ConnectorProtocol.PollRequest(waitSeconds: 8), signedWith: state, as: ConnectorProtocol.PollReply.self)
                failures = 0
                if let job = reply.job {
                    try await handle(job)
                    if once { return }
                }
            } catch let e as AgentError where e.refused {
                throw AgentError(message: "the server refused this connector's credentials (revoked?): \(e.message)", refused: true)
            } catch {
                failures += 1
                let wait = min(60.0, pow(2.0, Double(min(failures, 6)))) * Double.random(in: 0.5...1.0)
                log("poll failed (\(error)); retrying in \(Int(wait)) s")
                try await Task.sleep(for: .seconds(wait))
            }
        }
    }

    func heartbeat() async throws {
        let facts = Self.facts()
        _ = try await client.call(
            "/heartbeat",
            ConnectorProtocol.Heartbeat(version: AgentVersion.current, hostname: facts["hostname"], facts: facts, load: Self.load()),
            signedWith: state, as: ConnectorProtocol.HeartbeatReply.self)
    }

    /// Runs a job of a known kind; anything else is refused (reported failed), never executed.
    func handle(_ job: ConnectorProtocol.Job) async throws {
        guard ConnectorProtocol.jobKinds.contains(job.kind) else {
            log("refused job \(job.id) of unknown kind \(job.kind)")
            try await post(
                job.id,
                ConnectorProtocol.JobResult(
                    status: "failed", error: "job kind \(job.kind) is not one this connector runs",
                    chunkIndex: nil, chunkCount: nil, data: nil, sha256: nil))
            return
        }
        log("running job \(job.id) (\(job.kind))")
        let result = Audit.run(root: root)
        let text = String(decoding: try JSON.encode(result), as: UTF8.self)
        let sha = Sodium.hex(Sodium.sha256(Array(text.utf8)))
        let bytes = Array(text.utf8)
        // VIGIL_CONNECTOR_CHUNK_BYTES makes chunks smaller (tests exercise chunking with it).
        let size = max(1024, Int(ProcessInfo.processInfo.environment["VIGIL_CONNECTOR_CHUNK_BYTES"] ?? "") ?? ConnectorProtocol.chunkBytes)
        let count = max(1, (bytes.count + size - 1) / size)
        for i in 0..<count {
            // Chunk on UTF-8 boundaries: JSON text from the encoder is ASCII-escaped only where needed.
            var lo = i * size
            var hi = min(bytes.count, lo + size)
            while lo > 0 && lo < bytes.count && bytes[lo] & 0xC0 == 0x80 { lo -= 1 }
            while hi < bytes.count && bytes[hi] & 0xC0 == 0x80 { hi -= 1 }
            let piece = String(decoding: bytes[lo..<hi], as: UTF8.self)
            try await post(
                job.id,
                ConnectorProtocol.JobResult(
                    status: "completed", error: nil, chunkIndex: count > 1 ? i : nil, chunkCount: count, data: piece, sha256: sha))
        }
        log("job \(job.id): \(result.resources.count) facts posted in \(count) part(s)")
    }

    /// Posts one result message, retrying transient failures (the server treats repeats as no-ops).
    func post(_ jobId: String, _ r: ConnectorProtocol.JobResult) async throws {
        var attempt = 0
        while true {
            do {
                _ = try await client.call("/jobs/\(jobId)/result", r, signedWith: state, as: ConnectorProtocol.JobResultReply.self)
                return
            } catch let e as AgentError where e.refused {
                throw e
            } catch {
                attempt += 1
                if attempt >= 8 { throw error }
                try await Task.sleep(for: .seconds(min(30.0, pow(2.0, Double(attempt)))))
            }
        }
    }

    static func facts() -> [String: String] {
        var f: [String: String] = ["hostname": ProcessInfo.processInfo.hostName]
        f["kernel"] = (try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        if let os = try? String(contentsOfFile: "/etc/os-release", encoding: .utf8) {
            for line in os.split(separator: "\n") where line.hasPrefix("PRETTY_NAME=") {
                f["os"] = String(line.dropFirst("PRETTY_NAME=".count)).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
        }
        f["uptime_seconds"] = (try? String(contentsOfFile: "/proc/uptime", encoding: .utf8))?.split(separator: " ").first.map(String.init)
        return f
    }

    static func load() -> [Double]? {
        guard let s = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return nil }
        return s.split(separator: " ").prefix(3).compactMap { Double($0) }
    }
}

/// One audit of the host (or of a mounted tree under `root`).
enum Audit {
    static func run(root: String) -> ConnectorProtocol.AuditResult {
        let started = Date()
        let snapshot = LocalGatherer(root: root).gather()
        let host = snapshot.hostname ?? (root == "/" ? ProcessInfo.processInfo.hostName : (root as NSString).lastPathComponent)
        return ConnectorProtocol.AuditResult(
            host: host, resources: HostCollectors.collect(snapshot, host: host), unreadable: snapshot.unreadable, live: snapshot.live,
            seconds: Date().timeIntervalSince(started))
    }
}
