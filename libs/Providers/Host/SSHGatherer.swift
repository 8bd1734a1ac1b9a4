import Foundation
import ScanEngine
import VigilCore

/// Where and as whom to audit a host over SSH.
public struct SSHTarget: Sendable {
    /// The name the connection gives (shown, and the host key's alias).
    public var host: String
    /// The address checked by the SSRF guard, which ssh connects to.
    public var address: String
    public var port: Int
    public var username: String
    public var privateKeyPEM: String
    /// The pinned host key (`<type> <base64>`), or nil to trust and pin the first one seen.
    public var hostKey: String?

    public init(host: String, address: String, port: Int, username: String, privateKeyPEM: String, hostKey: String?) {
        self.host = host
        self.address = address
        self.port = port
        self.username = username
        self.privateKeyPEM = privateKeyPEM
        self.hostKey = hostKey
    }
}

/// Why an SSH audit did not happen; `hostKeyChanged` must never be retried silently.
public struct SSHAuditError: Error, CustomStringConvertible {
    public enum Kind: Sendable { case hostKeyChanged, authentication, unreachable, other }
    public var kind: Kind
    public var message: String
    public var description: String { message }
}

/// Audits a host agentlessly: one `ssh` session (OpenSSH's client, batch mode, only the given key,
/// host key pinned or trusted on first use) runs a fixed read-only shell script that prints the same
/// facts `LocalGatherer` reads, reduced the same way (`/etc/shadow` to statuses), and the collectors run
/// here. With passwordless sudo the script runs as root, else with the login's rights (what it cannot
/// read is listed as unreadable).
public struct SSHGatherer: Sendable {
    public let target: SSHTarget
    public var timeout: Duration = .seconds(120)
    public static let maxOutput = 96 << 20

    public init(target: SSHTarget) { self.target = target }

    /// Runs the audit; returns the result and the host key the server presented.
    public func audit() async throws -> (ConnectorProtocol.AuditResult, hostKey: String?) {
        let started = ContinuousClock.now
        let (out, learned) = try await session(
            command: "if sudo -n true 2>/dev/null; then exec sudo -n sh -s; else exec sh -s; fi", stdin: Data(Self.script.utf8))
        let snapshot = try Self.parse(out)
        let resources = HostCollectors.collect(snapshot, host: target.host)
        let took = (ContinuousClock.now - started).components
        let seconds = Double(took.seconds) + Double(took.attoseconds) / 1e18
        return (
            ConnectorProtocol.AuditResult(
                host: target.host, resources: resources, unreadable: snapshot.unreadable, live: snapshot.live, seconds: seconds),
            learned
        )
    }

    /// Logs in and out (the connection test); returns the host key the server presented.
    public func probe() async throws -> String? {
        try await session(command: "true", stdin: Data()).hostKey
    }

    /// One ssh session running `command` with `stdin`; its output and the host key (pinned or learned).
    func session(command: String, stdin: Data) async throws -> (Data, hostKey: String?) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-ssh-\(ID.make())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(at: dir) }
        let key = dir.appendingPathComponent("id")
        try Data((target.privateKeyPEM.hasSuffix("\n") ? target.privateKeyPEM : target.privateKeyPEM + "\n").utf8).write(to: key)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: key.path)
        let knownHosts = dir.appendingPathComponent("known_hosts")
        let alias = "vigil-target"
        if let pinned = target.hostKey { try Data("\(alias) \(pinned)\n".utf8).write(to: knownHosts) } else { try Data().write(to: knownHosts) }
        let args = [
            "-F", "/dev/null", "-i", key.path, "-p", String(target.port), "-l", target.username,
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "PasswordAuthentication=no", "-o", "KbdInteractiveAuthentication=no",
            "-o", "UserKnownHostsFile=\(knownHosts.path)", "-o", "GlobalKnownHostsFile=/dev/null", "-o", "HostKeyAlias=\(alias)",
            "-o", "StrictHostKeyChecking=\(target.hostKey == nil ? "accept-new" : "yes")", "-o", "ConnectTimeout=10",
            "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR", "-T", target.address, command,
        ]
        let (status, out, err) = try await Self.run("/usr/bin/ssh", args, stdin: stdin, timeout: timeout)
        guard status == 0 else { throw Self.failure(status: status, stderr: err, target: target) }
        let learned = (try? String(contentsOf: knownHosts, encoding: .utf8))?.split(separator: "\n").first.flatMap { line -> String? in
            let f = line.split(separator: " ")
            return f.count >= 3 ? "\(f[1]) \(f[2])" : nil
        }
        return (out, learned ?? target.hostKey)
    }

    static func failure(status: Int32, stderr: String, target: SSHTarget) -> SSHAuditError {
        let e = stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        if e.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") || e.contains("Host key verification failed") {
            return SSHAuditError(
                kind: .hostKeyChanged,
                message: "the SSH host key of \(target.host):\(target.port) is not the pinned one; the scan stopped. If the server was rebuilt, "
                    + "clear settings.host_key on the connection to trust the new key")
        }
        if e.contains("Permission denied") {
            return SSHAuditError(kind: .authentication, message: "SSH login as \(target.username) was refused (check the key in authorized_keys)")
        }
        if e.contains("Connection refused") || e.contains("timed out") || e.contains("No route") || e.contains("Could not resolve") {
            return SSHAuditError(kind: .unreachable, message: "\(target.host):\(target.port) is unreachable over SSH: \(e.prefix(300))")
        }
        return SSHAuditError(kind: .other, message: "ssh exited with \(status): \(e.prefix(300))")
    }

    /// Runs a program with a deadline; stdout is bounded by `maxOutput`.
    static func run(_ path: String, _ args: [String], stdin: Data, timeout: Duration) async throws -> (Int32, Data, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        let io = try ChildStdio(for: p)
        let (inPipe, outPipe, errPipe) = (io.input, io.output, io.error)
        try io.run(p)
        let killer = Task {
            try await Task.sleep(for: timeout)
            if p.isRunning { p.terminate() }
        }
        defer { killer.cancel() }
        // Pipes and waitpid block: they run on Dispatch threads (`Blocking`), never on the cooperative pool,
        // which has one thread per core — two blocked readers there starved every other request of the service.
        async let out: Data = Blocking.run {
            var buf = Data()
            while true {
                let chunk = outPipe.read.availableData
                if chunk.isEmpty { break }
                if buf.count < maxOutput { buf.append(chunk) }
            }
            return buf
        }
        async let err: Data = Blocking.run { errPipe.read.readDataToEndOfFile() }
        await Blocking.run {
            try? inPipe.write.write(contentsOf: stdin)
            try? inPipe.write.close()
        }
        let (o, e) = await (out, err)
        await Blocking.run { p.waitUntilExit() }
        return (p.terminationStatus, o, String(decoding: e.prefix(8192), as: UTF8.self))
    }

    // MARK: the script and its output

    /// POSIX sh, read-only. Lines: `F path b64` (file contents), `S path mode uid gid d|f` (stat),
    /// `H user status min max warn` (shadow, reduced), `U`/`W`/`X path` (setuid, world-writable dirs,
    /// files), `K`/`A path mode uid gid` (home private keys, authorized_keys), `T path` (trust files),
    /// `Y key value` (live sysctl), `N proto b64` (sockets), `R path` (unreadable), `L` (live system).
    public static let script: String = {
        func list(_ a: [String]) -> String { a.map { "'\($0)'" }.joined(separator: " ") }
        let sysctl = HostSnapshot.sysctlKeys.map { "'\($0)'" }.joined(separator: " ")
        return """
            export LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin
            b64() { base64 -w 0 2>/dev/null || base64 | tr -d '\\n'; }
            file() { case "$1" in /proc/*) [ -r "$1" ] || return 0;; *) [ -f "$1" ] && [ ! -L "$1" ] || return 0;; esac
              if [ -r "$1" ]; then printf 'F %s ' "$1"; head -c \(HostSnapshot.maxFileBytes) "$1" | b64; echo; else echo "R $1"; fi; }
            st() { if [ -e "$1" ] && [ ! -L "$1" ]; then s=$(stat -c '%a %u %g %F' "$1" 2>/dev/null) && set -- "$1" $s && \\
              case "$5" in directory) echo "S $1 $2 $3 $4 d";; *) echo "S $1 $2 $3 $4 f";; esac; fi; }
            echo '@@VIGIL 1'
            for f in \(list(HostSnapshot.textFiles)); do file "$f"; done
            for d in \(list(HostSnapshot.textDirs)); do [ -d "$d" ] && for f in "$d"/*; do [ -e "$f" ] && file "$f"; done; done
            for f in \(HostSnapshot.aptLists)/*security*_Packages; do [ -f "$f" ] && { printf 'F %s ' "$f"; b64 < "$f"; echo; }; done
            for f in \(list(HostSnapshot.statPaths)); do st "$f"; done
            for d in \(list(HostSnapshot.statDirs)); do [ -d "$d" ] && for f in "$d"/*; do [ -f "$f" ] && st "$f"; done; done
            if [ -r /etc/shadow ]; then awk -F: 'NF>1 && $1!="" { s=($2=="")?"empty":(($2 ~ /^[!*]/)?"locked":"set"); \\
              print "H", $1, s, ($4==""?"-":$4), ($5==""?"-":$5), ($6==""?"-":$6) }' /etc/shadow
            elif [ -e /etc/shadow ]; then echo 'R /etc/shadow'; fi
            for r in \(list(HostSnapshot.scanRoots)); do [ -d "$r" ] || continue
              find "$r" -xdev \\( -type f -perm /6000 -printf 'U %p\\n' \\) , \\( -type d -perm -0002 ! -perm -1000 -printf 'W %p\\n' \\) , \
                \\( -type f -perm -0002 -printf 'X %p\\n' \\) 2>/dev/null | head -n 300000
            done
            [ -e /etc/hosts.equiv ] && echo 'T /etc/hosts.equiv'
            { echo /root; awk -F: '$6 ~ /^\\// && $6 != "/" { print $6 }' /etc/passwd 2>/dev/null; } | sort -u | while read -r h; do
              [ -d "$h" ] || continue
              for n in .rhosts .shosts .netrc; do [ -f "$h/$n" ] && echo "T $h/$n"; done
              [ -d "$h/.ssh" ] || continue
              for f in "$h"/.ssh/*; do [ -f "$f" ] && [ ! -L "$f" ] || continue
                s=$(stat -c '%a %u %g' "$f" 2>/dev/null) || continue
                case "${f##*/}" in
                  authorized_keys|authorized_keys2) echo "A $f $s";;
                  *.pub|known_hosts|config) ;;
                  *) if head -c 64 "$f" 2>/dev/null | grep -q -- '-----BEGIN.*PRIVATE KEY'; then echo "K $f $s"; fi;;
                esac
              done
            done
            if [ -d /proc/sys/kernel ]; then echo L
              for k in \(sysctl); do p=/proc/sys/$(echo "$k" | tr . /); [ -r "$p" ] && echo "Y $k $(cat "$p")"; done
              for t in tcp tcp6 udp udp6; do [ -r /proc/net/$t ] && { printf 'N %s ' "$t"; b64 < /proc/net/$t; echo; }; done
            fi
            echo '@@END'
            """
    }()

    /// The script's output as a snapshot.
    public static func parse(_ data: Data) throws -> HostSnapshot {
        var s = HostSnapshot()
        var ended = false
        let text = String(decoding: data, as: UTF8.self)
        guard text.hasPrefix("@@VIGIL 1") else { throw SSHAuditError(kind: .other, message: "the host did not run the audit script (no shell?)") }
        func decode(_ b: Substring) -> String { Data(base64Encoded: String(b)).map { String(decoding: $0, as: UTF8.self) } ?? "" }
        func mode(_ m: Substring) -> String { FileStat.octal(Int(m, radix: 8) ?? 0) }
        for line in text.split(separator: "\n") {
            guard line.count >= 2 else {
                if line == "L" { s.live = true }
                continue
            }
            let tag = line.first!
            let rest = line.dropFirst(2)
            switch tag {
            case "F":
                guard let sp = rest.lastIndex(of: " ") else { continue }
                s.files[String(rest[..<sp])] = decode(rest[rest.index(after: sp)...])
            case "S", "K", "A":
                // path may contain spaces: the last 3 (S: 4) fields are numbers.
                let f = rest.split(separator: " ")
                let n = tag == "S" ? 4 : 3
                guard f.count > n else { continue }
                let path = f[0..<(f.count - n)].joined(separator: " ")
                let nums = f[(f.count - n)...].map { $0 }
                let st = FileStat(mode: mode(nums[0]), uid: Int(nums[1]) ?? -1, gid: Int(nums[2]) ?? -1, isDirectory: tag == "S" && nums[3] == "d")
                switch tag {
                case "S": s.stats[path] = st
                case "K": s.homePrivateKeys[path] = st
                default: s.authorizedKeys[path] = st
                }
            case "H":
                let f = rest.split(separator: " ")
                guard f.count == 5 else { continue }
                s.shadow[String(f[0])] = ShadowEntry(status: String(f[1]), maxDays: Int(f[3]), minDays: Int(f[2]), warnDays: Int(f[4]))
            case "U": s.setuid.append(String(rest))
            case "W": s.worldWritableDirs.append(String(rest))
            case "X": s.worldWritableFiles.append(String(rest))
            case "T": s.trustFiles.append(String(rest))
            case "R": s.unreadable.append(String(rest))
            case "Y":
                let f = rest.split(separator: " ", maxSplits: 1)
                if f.count == 2 { s.liveSysctl[String(f[0])] = f[1].trimmingCharacters(in: .whitespaces) }
            case "N":
                let f = rest.split(separator: " ", maxSplits: 1)
                if f.count == 2 { s.sockets[String(f[0])] = decode(f[1]) }
            case "@": if line == "@@END" { ended = true }
            default: continue
            }
        }
        guard ended else { throw SSHAuditError(kind: .other, message: "the audit output was cut short") }
        s.hostname = s.files["/etc/hostname"]?.trimmingCharacters(in: .whitespacesAndNewlines)
        s.kernel = s.files["/proc/sys/kernel/osrelease"]?.trimmingCharacters(in: .whitespacesAndNewlines)
        return s
    }
}
