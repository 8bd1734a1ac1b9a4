import Foundation
import Net
import Synchronization
import VigilCore

/// A repository to scan: where it lives, how to authenticate, where its mirror is kept.
public struct RepoTarget: Sendable {
    public var cloneURL: String
    public var defaultBranch: String?
    /// An HTTPS token (sent as `Authorization: Basic x-access-token:<token>`), or an SSH private key.
    public var token: String?
    public var sshKey: String?
    /// The bare mirror of this repository (kept between scans and fetched incrementally).
    public var mirrorDir: String

    public init(cloneURL: String, defaultBranch: String?, token: String?, sshKey: String?, mirrorDir: String) {
        self.cloneURL = cloneURL
        self.defaultBranch = defaultBranch
        self.token = token
        self.sshKey = sshKey
        self.mirrorDir = mirrorDir
    }
}

public struct RepoError: Error, CustomStringConvertible, Sendable {
    public var message: String
    /// Nothing a retry would change (a bad URL, refused credentials, a repository over the limits).
    public var permanent: Bool
    public init(_ message: String, permanent: Bool = true) {
        self.message = message
        self.permanent = permanent
    }
    public var description: String { message }
}

/// Which clone URLs a workspace may give, checked when the repository is added and again before every fetch.
/// `https://`, `ssh://` and scp-like `git@host:path` reach public hosts only; `file://`, `http://` and
/// loopback hosts only when the operator allows local repositories (`VIGIL_REPO_ALLOW_LOCAL`).
public struct RepoURLPolicy: Sendable {
    public var allowLocal: Bool
    public init(allowLocal: Bool) { self.allowLocal = allowLocal }

    public enum Kind: String, Sendable { case https, http, ssh, file }

    /// Syntax: the kind and host of a clone URL, or why it is refused (no DNS).
    public func parse(_ raw: String) throws -> (kind: Kind, host: String?, port: Int?) {
        let url = raw.trimmingCharacters(in: .whitespaces)
        guard !url.isEmpty, url.count <= 2048, !url.hasPrefix("-"), !url.contains(where: { $0.isWhitespace || $0.isNewline }) else {
            throw RepoError("clone_url must be a single URL without spaces")
        }
        if let scp = url.firstMatch(of: /^([A-Za-z0-9._-]+)@([A-Za-z0-9.-]+):(?!\/\/)([^\s]+)$/) {
            guard !scp.3.hasPrefix("-") else { throw RepoError("clone_url has an invalid path") }
            return (.ssh, String(scp.2), 22)
        }
        guard let u = URL(string: url), let scheme = u.scheme?.lowercased() else {
            throw RepoError("clone_url must be https://, ssh://, git@host:path" + (allowLocal ? ", http:// or file://" : ""))
        }
        switch scheme {
        case "https":
            guard let host = u.host, !host.isEmpty else { throw RepoError("clone_url has no host") }
            guard u.password == nil else { throw RepoError("clone_url must not contain a password: give it as credentials.token") }
            return (.https, host, u.port ?? 443)
        case "ssh":
            guard let host = u.host, !host.isEmpty else { throw RepoError("clone_url has no host") }
            return (.ssh, host, u.port ?? 22)
        case "http" where allowLocal:
            guard let host = u.host, !host.isEmpty else { throw RepoError("clone_url has no host") }
            guard u.password == nil else { throw RepoError("clone_url must not contain a password: give it as credentials.token") }
            return (.http, host, u.port ?? 80)
        case "file" where allowLocal:
            guard u.path.hasPrefix("/") else { throw RepoError("file:// URLs need an absolute path") }
            return (.file, nil, nil)
        case "http", "file":
            throw RepoError("\(scheme):// repositories are not allowed on this server (VIGIL_REPO_ALLOW_LOCAL is off)")
        default:
            throw RepoError("clone_url must be https://, ssh://, git@host:path" + (allowLocal ? ", http:// or file://" : ""))
        }
    }

    /// Syntax and addresses: the host must not resolve to a loopback, private or metadata address unless
    /// local repositories are allowed. Blocking (DNS).
    public func check(_ raw: String) throws {
        let (_, host, port) = try parse(raw)
        guard let host else { return }
        let guardrail = SSRFGuard(allowLoopback: allowLocal, allowPrivate: allowLocal)
        do { _ = try guardrail.check("https://\(host.contains(":") ? "[\(host)]" : host):\(port ?? 443)/") } catch {
            throw RepoError("clone_url: \(error)")
        }
    }
}

/// `git` as a child process: no user or system configuration, no prompts, only the protocols the policy
/// allows (also for submodules, which are never fetched), no redirects, and a deadline after which it is killed.
public struct Git: Sendable {
    public var policy: RepoURLPolicy
    public var deadline: Date
    /// Extra environment: credentials travel here (GIT_CONFIG_* and GIT_SSH_COMMAND), never in arguments.
    var environment: [String: String] = [:]

    public init(policy: RepoURLPolicy, deadline: Date) {
        self.policy = policy
        self.deadline = deadline
    }

    /// HTTPS authentication with a token (as forges accept it: basic auth with the token as password).
    public mutating func authorization(token: String) {
        environment["VIGIL_AUTH_HEADER"] = "Authorization: Basic " + Data("x-access-token:\(token)".utf8).base64EncodedString()
    }

    var baseEnvironment: [String: String] {
        var env: [String: String] = [
            "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false", "SSH_ASKPASS": "/bin/false", "LC_ALL": "C",
            "GIT_ALLOW_PROTOCOL": policy.allowLocal ? "https:ssh:http:file" : "https:ssh",
            "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=/dev/null -o ConnectTimeout=15",
        ]
        var config: [(String, String)] = [("http.followRedirects", "false"), ("core.hooksPath", "/dev/null"), ("protocol.ext.allow", "never")]
        if let header = environment["VIGIL_AUTH_HEADER"] { config.append(("http.extraHeader", header)) }
        env["GIT_CONFIG_COUNT"] = String(config.count)
        for (i, (k, v)) in config.enumerated() {
            env["GIT_CONFIG_KEY_\(i)"] = k
            env["GIT_CONFIG_VALUE_\(i)"] = v
        }
        for (k, v) in environment where k != "VIGIL_AUTH_HEADER" { env[k] = v }
        return env
    }

    /// Runs git; stdout goes to `onOutput` in chunks as it arrives. Throws with git's stderr (credentials
    /// are never in it: they are not in the arguments or the URL).
    public func run(_ args: [String], cwd: String? = nil, stdin: Data? = nil, onOutput: (Data) throws -> Void) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/git")
        p.arguments = args
        p.environment = baseEnvironment
        if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        let io = try ChildStdio(for: p)
        let (out, err, input) = (io.output, io.error, io.input)
        try io.run(p)
        let remaining = deadline.timeIntervalSinceNow
        let killer = DispatchWorkItem { if p.isRunning { p.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + max(0.1, remaining), execute: killer)
        defer { killer.cancel() }
        let errData = ErrorSink()
        let errDone = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            errData.set(err.read.readDataToEndOfFile())
            errDone.signal()
        }
        if let stdin {
            let writer = input.write
            DispatchQueue.global().async {
                try? writer.write(contentsOf: stdin)
                try? writer.close()
            }
        } else {
            try? input.write.close()
        }
        var failure: (any Error)? = nil
        while true {
            let chunk = out.read.availableData
            if chunk.isEmpty { break }
            if failure == nil {
                do { try onOutput(chunk) } catch {
                    failure = error
                    p.terminate()
                }
            }
        }
        p.waitUntilExit()
        errDone.wait()
        if let failure { throw failure }
        if Date() >= deadline { throw RepoError("the repository scan ran out of time (git \(args.first ?? "") was stopped)") }
        guard p.terminationStatus == 0 else {
            let message = String(decoding: errData.get().prefix(2000), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw RepoError(
                "git \(args.first ?? "") failed: \(Self.scrub(message))",
                permanent: !message.contains("Could not resolve") && !message.contains("timed out"))
        }
    }

    /// Runs git and returns its whole output (bounded).
    public func output(_ args: [String], cwd: String? = nil, limit: Int = 64 << 20) throws -> Data {
        var all = Data()
        try run(args, cwd: cwd) { chunk in
            all.append(chunk)
            if all.count > limit { throw RepoError("git \(args.first ?? "") printed more than \(limit >> 20) MB") }
        }
        return all
    }

    /// Git's messages may quote the URL: user names and tokens in it are removed.
    static func scrub(_ s: String) -> String {
        s.replacing(/\/\/[^\/@\s]+@/, with: "//***@")
    }

    final class ErrorSink: Sendable {
        let data = Mutex(Data())
        func set(_ d: Data) { data.withLock { $0 = d } }
        func get() -> Data { data.withLock { $0 } }
    }
}

/// The bare mirror of a repository, created on the first scan and fetched incrementally after that.
public enum GitMirror {
    /// git with the repository's credentials (a token header, or an SSH key in a private temporary file
    /// removed by `cleanup`).
    public static func authenticated(_ target: RepoTarget, policy: RepoURLPolicy, deadline: Date) throws -> (git: Git, cleanup: @Sendable () -> Void)
    {
        var git = Git(policy: policy, deadline: deadline)
        if let token = target.token { git.authorization(token: token) }
        guard let key = target.sshKey else { return (git, {}) }
        let path = NSTemporaryDirectory() + "vigil-repo-key-\(UUID().uuidString)"
        guard
            FileManager.default.createFile(
                atPath: path, contents: Data((key.hasSuffix("\n") ? key : key + "\n").utf8), attributes: [.posixPermissions: 0o600])
        else { throw RepoError("cannot write the SSH key file", permanent: false) }
        git.environment["GIT_SSH_COMMAND"] =
            "ssh -i \(path) -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=accept-new "
            + "-o UserKnownHostsFile=/dev/null -o ConnectTimeout=15"
        return (git, { try? FileManager.default.removeItem(atPath: path) })
    }

    /// Clones or fetches; returns the branch scanned and its head commit.
    public static func sync(_ target: RepoTarget, policy: RepoURLPolicy, deadline: Date) throws -> (branch: String, head: String) {
        try policy.check(target.cloneURL)
        let fm = FileManager.default
        let (git, cleanup) = try authenticated(target, policy: policy, deadline: deadline)
        defer { cleanup() }
        // One fetch of a mirror at a time on this host (a scan and a fix of the same repository, two workers).
        try fm.createDirectory(atPath: (target.mirrorDir as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let lock = open(target.mirrorDir + ".lock", O_CREAT | O_RDWR, 0o600)
        guard lock >= 0 else { throw RepoError("cannot lock the repository mirror", permanent: false) }
        defer { close(lock) }
        while flock(lock, LOCK_EX | LOCK_NB) != 0 {
            guard Date() < deadline else { throw RepoError("the repository mirror stayed locked by another fetch", permanent: false) }
            usleep(50_000)
        }
        let dir = target.mirrorDir
        if fm.fileExists(atPath: dir + "/HEAD") {
            _ = try git.output(["remote", "set-url", "origin", "--", target.cloneURL], cwd: dir)
            _ = try git.output(
                ["fetch", "--prune", "--no-recurse-submodules", "--quiet", "origin", "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
                cwd: dir)
        } else {
            try? fm.removeItem(atPath: dir)
            try fm.createDirectory(atPath: (dir as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            do {
                _ = try git.output(["clone", "--mirror", "--no-recurse-submodules", "--quiet", "--", target.cloneURL, dir])
            } catch {
                try? fm.removeItem(atPath: dir)
                throw error
            }
        }
        let branch: String
        if let b = target.defaultBranch {
            branch = b
        } else {
            let head = String(decoding: try git.output(["symbolic-ref", "--quiet", "HEAD"], cwd: dir), as: UTF8.self)
            branch = head.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "refs/heads/", with: "")
        }
        guard let out = try? git.output(["rev-parse", "--verify", "--quiet", "refs/heads/\(branch)^{commit}"], cwd: dir) else {
            throw RepoError("the repository has no branch \(branch)")
        }
        return (branch, String(decoding: out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
