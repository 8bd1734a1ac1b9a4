import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Gathers a `HostSnapshot` from the local filesystem, every path read under `root` (`/` for the
/// running system, a directory for a mounted image or a prepared tree). Read-only: it opens files for
/// reading, stats and lists directories, and nothing else.
public struct LocalGatherer: Sendable {
    public let root: String

    public init(root: String = "/") {
        self.root = root == "/" ? "" : (root.hasSuffix("/") ? String(root.dropLast()) : root)
    }

    func real(_ path: String) -> String { root + path }

    /// lstat without following a link: a symlink is not its target.
    func stat(_ path: String) -> FileStat? {
        var st = Glibc.stat()
        guard lstat(real(path), &st) == 0 else { return nil }
        let type = Int(st.st_mode) & Int(S_IFMT)
        guard type != Int(S_IFLNK) else { return nil }
        return FileStat(bits: Int(st.st_mode), uid: Int(st.st_uid), gid: Int(st.st_gid), isDirectory: type == Int(S_IFDIR))
    }

    func isRegular(_ path: String) -> Bool {
        var st = Glibc.stat()
        return lstat(real(path), &st) == 0 && Int(st.st_mode) & Int(S_IFMT) == Int(S_IFREG)
    }

    func read(_ path: String, into s: inout HostSnapshot) {
        guard isRegular(path) || path.hasPrefix("/proc/") else { return }
        guard let h = FileHandle(forReadingAtPath: real(path)) else {
            if FileManager.default.fileExists(atPath: real(path)) { s.unreadable.append(path) }
            return
        }
        defer { try? h.close() }
        let data = (try? h.read(upToCount: HostSnapshot.maxFileBytes)) ?? Data()
        s.files[path] = String(decoding: data, as: UTF8.self)
    }

    func list(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: real(dir))) ?? []).sorted()
    }

    public func gather() -> HostSnapshot {
        var s = HostSnapshot()
        for f in HostSnapshot.textFiles { read(f, into: &s) }
        for d in HostSnapshot.textDirs {
            for name in list(d) where !name.hasPrefix(".") { read("\(d)/\(name)", into: &s) }
        }
        for name in list(HostSnapshot.aptLists) where name.contains("security") && name.hasSuffix("_Packages") {
            read("\(HostSnapshot.aptLists)/\(name)", into: &s)
        }
        for p in HostSnapshot.statPaths { if let st = stat(p) { s.stats[p] = st } }
        for d in HostSnapshot.statDirs {
            for name in list(d) { if let st = stat("\(d)/\(name)"), !st.isDirectory { s.stats["\(d)/\(name)"] = st } }
        }
        if let data = FileManager.default.contents(atPath: real("/etc/shadow")) {
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
                if let (user, e) = ShadowEntry.parse(line) { s.shadow[user] = e }
            }
        } else if FileManager.default.fileExists(atPath: real("/etc/shadow")) {
            s.unreadable.append("/etc/shadow")
        }
        walkSystem(into: &s)
        homes(into: &s)
        s.live = FileManager.default.fileExists(atPath: real("/proc/sys/kernel"))
        if s.live {
            for key in HostSnapshot.sysctlKeys {
                let path = "/proc/sys/" + key.replacingOccurrences(of: ".", with: "/")
                if let v = try? String(contentsOfFile: real(path), encoding: .utf8) {
                    s.liveSysctl[key] = v.trimmingCharacters(in: .whitespacesAndNewlines)
                }
            }
            for t in ["tcp", "tcp6", "udp", "udp6"] {
                if let v = try? String(contentsOfFile: real("/proc/net/\(t)"), encoding: .utf8) { s.sockets[t] = v }
            }
        }
        s.hostname = s.files["/etc/hostname"]?.trimmingCharacters(in: .whitespacesAndNewlines)
        s.kernel = s.files["/proc/sys/kernel/osrelease"]?.trimmingCharacters(in: .whitespacesAndNewlines)
        return s
    }

    /// setuid/setgid files and world-writable entries under the system roots, bounded.
    /// Like `find ROOT -xdev`: a directory on another filesystem than its scan root is listed, not entered.
    func walkSystem(into s: inout HostSnapshot) {
        var seen = 0
        var stack: [(String, UInt)] = HostSnapshot.scanRoots.reversed().compactMap { r in
            var st = Glibc.stat()
            return lstat(real(r), &st) == 0 && Int(st.st_mode) & Int(S_IFMT) == Int(S_IFDIR) ? (r, UInt(st.st_dev)) : nil
        }
        while let (dir, dev) = stack.popLast(), seen < HostSnapshot.maxWalkEntries {
            guard let entries = try? FileManager.default.contentsOfDirectory(atPath: real(dir)) else { continue }
            for name in entries.sorted() {
                seen += 1
                let path = dir == "/" ? "/" + name : dir + "/" + name
                var st = Glibc.stat()
                guard lstat(real(path), &st) == 0 else { continue }
                let type = Int(st.st_mode) & Int(S_IFMT)
                let bits = Int(st.st_mode) & 0o7777
                if type == Int(S_IFDIR) {
                    if bits & 0o002 != 0 && bits & 0o1000 == 0 { s.worldWritableDirs.append(path) }
                    if UInt(st.st_dev) == dev { stack.append((path, dev)) }
                } else if type == Int(S_IFREG) {
                    if bits & 0o6000 != 0 { s.setuid.append(path) }
                    if bits & 0o002 != 0 { s.worldWritableFiles.append(path) }
                }
            }
        }
    }

    /// Home directories from /etc/passwd (and /root): private keys, authorized_keys, trust files.
    func homes(into s: inout HostSnapshot) {
        var homes = Set(["/root"])
        for line in (s.files["/etc/passwd"] ?? "").split(separator: "\n") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            if f.count >= 6, f[5].hasPrefix("/"), f[5] != "/" { homes.insert(String(f[5])) }
        }
        if stat("/etc/hosts.equiv") != nil { s.trustFiles.append("/etc/hosts.equiv") }
        for home in homes.sorted() {
            guard stat(home)?.isDirectory == true else { continue }
            for name in [".rhosts", ".shosts", ".netrc"] where isRegular("\(home)/\(name)") { s.trustFiles.append("\(home)/\(name)") }
            let ssh = "\(home)/.ssh"
            for name in list(ssh) {
                let path = "\(ssh)/\(name)"
                guard isRegular(path), let st = stat(path) else { continue }
                if name == "authorized_keys" || name == "authorized_keys2" {
                    s.authorizedKeys[path] = st
                } else if !name.hasSuffix(".pub"), name != "known_hosts", name != "config", Self.isPrivateKey(real(path)) {
                    s.homePrivateKeys[path] = st
                }
            }
        }
    }

    /// Whether a file starts like a private key (PEM, PKCS#8, OpenSSH), by its first 64 bytes.
    static func isPrivateKey(_ realPath: String) -> Bool {
        guard let h = FileHandle(forReadingAtPath: realPath) else { return false }
        defer { try? h.close() }
        let head = String(decoding: (try? h.read(upToCount: 64)) ?? Data(), as: UTF8.self)
        return head.hasPrefix("-----BEGIN") && head.contains("PRIVATE KEY")
    }
}
