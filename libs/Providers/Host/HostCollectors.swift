import Foundation
import ScanEngine
import VigilCore

/// Turns a `HostSnapshot` into resources the `host` rules (contracts/rules/host/) evaluate. Every fact
/// that a finding can rest on carries its proof: a `*_source` (`file:line`, `default`, `kernel default`
/// or `live /proc/sys`) or the list of paths found.
public enum HostCollectors {
    public static let provider = "host"

    /// Every resource of the snapshot; `host` names the audited host (its id prefix and region).
    public static func collect(_ s: HostSnapshot, host: String) -> [Resource] {
        let ctx = Context(snapshot: s, host: host)
        return [sshd(ctx), passwordPolicy(ctx), filesystem(ctx), kernel(ctx), services(ctx), sudo(ctx)]
            + accounts(ctx) + files(ctx) + mounts(ctx) + listeners(ctx) + keys(ctx)
    }

    struct Context {
        let snapshot: HostSnapshot
        let host: String
        var users: [Int: String] {
            var out: [Int: String] = [:]
            for line in (snapshot.files["/etc/passwd"] ?? "").split(separator: "\n") {
                let f = line.split(separator: ":", omittingEmptySubsequences: false)
                if f.count >= 3, let uid = Int(f[2]), out[uid] == nil { out[uid] = String(f[0]) }
            }
            return out
        }
        var groups: [Int: String] {
            var out: [Int: String] = [:]
            for line in (snapshot.files["/etc/group"] ?? "").split(separator: "\n") {
                let f = line.split(separator: ":", omittingEmptySubsequences: false)
                if f.count >= 3, let gid = Int(f[2]), out[gid] == nil { out[gid] = String(f[0]) }
            }
            return out
        }
        var packages: [String: String] { DebianPackages.installed(snapshot.files["/var/lib/dpkg/status"]) }

        func resource(_ service: String, _ type: String, _ id: String, _ name: String, _ attributes: [String: JSONValue]) -> Resource {
            Resource(
                provider: HostCollectors.provider, account: host, region: host, service: service, type: "host.\(type)", id: "\(host):\(id)",
                name: name, attributes: attributes)
        }
    }

    static func put(_ a: inout [String: JSONValue], _ key: String, _ v: Sourced) {
        a[key] = .string(v.value)
        a[key + "_source"] = .string(v.source)
    }

    static func strings(_ l: [String]) -> JSONValue { .array(l.map { .string($0) }) }

    // MARK: sshd

    static let weakCiphers = [
        "3des-cbc", "aes128-cbc", "aes192-cbc", "aes256-cbc", "blowfish-cbc", "cast128-cbc", "arcfour", "arcfour128",
        "arcfour256", "rijndael-cbc@lysator.liu.se",
    ]
    static let weakMACs = [
        "hmac-md5", "hmac-md5-96", "hmac-md5-etm@openssh.com", "hmac-md5-96-etm@openssh.com", "hmac-sha1",
        "hmac-sha1-96", "hmac-sha1-etm@openssh.com", "hmac-sha1-96-etm@openssh.com", "umac-64@openssh.com", "umac-64-etm@openssh.com",
        "hmac-ripemd160", "hmac-ripemd160-etm@openssh.com",
    ]
    static let weakKex = [
        "diffie-hellman-group1-sha1", "diffie-hellman-group14-sha1", "diffie-hellman-group-exchange-sha1",
        "gss-gex-sha1-", "gss-group1-sha1-", "gss-group14-sha1-",
    ]

    static func sshd(_ c: Context) -> Resource {
        let cfg = SSHDConfig(c.snapshot)
        let installed = c.snapshot.files["/etc/ssh/sshd_config"] != nil || c.packages["openssh-server"] != nil
        var a: [String: JSONValue] = ["installed": .bool(installed)]
        let defaults: [(String, String, String)] = [
            ("permit_root_login", "permitrootlogin", "prohibit-password"), ("password_authentication", "passwordauthentication", "yes"),
            ("permit_empty_passwords", "permitemptypasswords", "no"), ("x11_forwarding", "x11forwarding", "no"),
            ("ignore_rhosts", "ignorerhosts", "yes"), ("hostbased_authentication", "hostbasedauthentication", "no"),
            ("permit_user_environment", "permituserenvironment", "no"), ("log_level", "loglevel", "INFO"),
            ("allow_tcp_forwarding", "allowtcpforwarding", "yes"), ("use_pam", "usepam", "no"),
            ("banner", "banner", "none"),
        ]
        for (attr, key, d) in defaults {
            var v = cfg.get(key, default: d)
            v.value = v.value.lowercased()
            put(&a, attr, v)
        }
        for (attr, key, d) in [
            ("max_auth_tries", "maxauthtries", 6), ("max_sessions", "maxsessions", 10), ("client_alive_interval", "clientaliveinterval", 0),
            ("client_alive_count_max", "clientalivecountmax", 3),
        ] {
            let v = cfg.get(key, default: String(d))
            a[attr] = .number(Double(Int(v.value) ?? d))
            a[attr + "_source"] = .string(v.source)
        }
        let grace = cfg.get("logingracetime", default: "120")
        a["login_grace_time"] = .number(Double(Self.seconds(grace.value) ?? 120))
        a["login_grace_time_source"] = .string(grace.source)
        // OpenSSH's compiled-in algorithm lists contain none of the weak ones; only configured lists can.
        for (attr, key, weak) in [("ciphers", "ciphers", weakCiphers), ("macs", "macs", weakMACs), ("kex", "kexalgorithms", weakKex)] {
            let v = cfg.values[key]
            let list = (v?.value ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            // `+alg` appends to the defaults, `-alg` removes, `^alg` puts first: all three can add weak ones except `-`.
            let named = list.map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "+^")) }.filter { !$0.hasPrefix("-") }
            let bad = named.filter { n in weak.contains { w in w.hasSuffix("-") ? n.hasPrefix(w) : n == w } }
            a["weak_" + attr] = strings(bad)
            a["weak_" + attr + "_source"] = .string(v?.source ?? "default")
        }
        return c.resource("ssh", "sshd", "sshd", "sshd on \(c.host)", a)
    }

    /// sshd time values: `120`, `2m`, `1m30s`.
    static func seconds(_ s: String) -> Int? {
        if let n = Int(s) { return n }
        var total = 0
        var num = ""
        for ch in s.lowercased() {
            if ch.isNumber {
                num.append(ch)
            } else {
                guard let n = Int(num) else { return nil }
                switch ch {
                case "s": total += n
                case "m": total += n * 60
                case "h": total += n * 3600
                case "d": total += n * 86400
                case "w": total += n * 604800
                default: return nil
                }
                num = ""
            }
        }
        if let n = Int(num) { total += n }
        return total
    }

    // MARK: accounts

    static let noLoginShells: Set<String> = [
        "/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false", "/bin/sync", "/sbin/shutdown",
        "/sbin/halt", "/usr/sbin/shutdown", "/usr/sbin/halt", "/bin/nologin", "",
    ]

    static func accounts(_ c: Context) -> [Resource] {
        let lines = (c.snapshot.files["/etc/passwd"] ?? "").split(separator: "\n", omittingEmptySubsequences: false)
        let defs = KeyValueConfig.parse(c.snapshot.files["/etc/login.defs"], path: "/etc/login.defs")
        let uidMin = Int(defs["UID_MIN"]?.value ?? "") ?? 1000
        var uids: [Int: Int] = [:]
        for line in lines {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            if f.count >= 7, let uid = Int(f[2]) { uids[uid, default: 0] += 1 }
        }
        var out: [Resource] = []
        for (i, line) in lines.enumerated() where !line.isEmpty {
            let f = line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            let source = "/etc/passwd:\(i + 1)"
            if line.hasPrefix("+") || line.hasPrefix("-") {
                out.append(
                    c.resource("accounts", "account", "account:\(line)", String(line), ["legacy_nis_entry": .bool(true), "source": .string(source)]))
                continue
            }
            guard f.count >= 7, let uid = Int(f[2]) else { continue }
            let name = f[0]
            let shell = f[6]
            let shadow = c.snapshot.shadow[name]
            // The passwd field itself: `x` defers to shadow; an empty field is no password at all.
            let password =
                f[1].isEmpty ? "empty" : (f[1] == "x" ? (shadow?.status ?? "unknown") : (f[1].hasPrefix("!") || f[1] == "*" ? "locked" : "set"))
            let system = uid < uidMin && uid != 0
            out.append(
                c.resource(
                    "accounts", "account", "account:\(name)", name,
                    [
                        "user": .string(name), "uid": .number(Double(uid)), "gid": .number(Double(Int(f[3]) ?? -1)), "home": .string(f[5]),
                        "shell": .string(shell), "login_shell": .bool(!noLoginShells.contains(shell)), "system": .bool(system),
                        "password": .string(password), "password_locked": .bool(password == "locked"),
                        "duplicate_uid": .bool((uids[uid] ?? 0) > 1), "legacy_nis_entry": .bool(false), "source": .string(source),
                    ]))
        }
        return out
    }

    static func passwordPolicy(_ c: Context) -> Resource {
        let path = "/etc/login.defs"
        let defs = KeyValueConfig.parse(c.snapshot.files[path], path: path)
        var a: [String: JSONValue] = ["present": .bool(c.snapshot.files[path] != nil)]
        for (attr, key, d) in [
            ("pass_max_days", "PASS_MAX_DAYS", 99999), ("pass_min_days", "PASS_MIN_DAYS", 0), ("pass_warn_age", "PASS_WARN_AGE", 7),
        ] {
            let v = defs[key] ?? Sourced(value: String(d), source: "default")
            a[attr] = .number(Double(Int(v.value) ?? d))
            a[attr + "_source"] = .string(v.source)
        }
        put(
            &a, "encrypt_method",
            defs["ENCRYPT_METHOD"].map { Sourced(value: $0.value.uppercased(), source: $0.source) } ?? Sourced(value: "DES", source: "default"))
        put(&a, "umask", defs["UMASK"] ?? Sourced(value: "022", source: "default"))
        let umask = Int(a["umask"]?.stringValue ?? "", radix: 8) ?? 0o022
        a["umask_allows_group_write_or_world_read"] = .bool(umask & 0o027 != 0o027)
        var minlen = Sourced(value: "8", source: "default")
        for path in ["/etc/security/pwquality.conf"] + c.snapshot.files.keys.filter({ $0.hasPrefix("/etc/security/pwquality.conf.d/") }).sorted() {
            if let v = KeyValueConfig.parse(c.snapshot.files[path], path: path, separator: "=")["minlen"] { minlen = v }
        }
        a["min_length"] = .number(Double(Int(minlen.value) ?? 8))
        a["min_length_source"] = .string(minlen.source)
        return c.resource("accounts", "password_policy", "password-policy", "password policy on \(c.host)", a)
    }

    // MARK: files

    /// Which files are checked for what: (class, the most a mode may allow, allowed group names).
    static func filePolicy(_ path: String) -> (String, Int, [String])? {
        switch path {
        case "/etc/passwd", "/etc/group": return (path == "/etc/passwd" ? "passwd" : "group", 0o644, ["root"])
        case "/etc/shadow", "/etc/gshadow": return (path == "/etc/shadow" ? "shadow" : "gshadow", 0o640, ["root", "shadow"])
        case "/etc/passwd-", "/etc/group-": return ("passwd_backup", 0o644, ["root"])
        case "/etc/shadow-", "/etc/gshadow-": return ("shadow_backup", 0o640, ["root", "shadow"])
        case "/etc/ssh/sshd_config": return ("sshd_config", 0o600, ["root"])
        case "/etc/crontab": return ("crontab", 0o600, ["root"])
        case "/etc/cron.hourly", "/etc/cron.daily", "/etc/cron.weekly", "/etc/cron.monthly", "/etc/cron.d": return ("cron_dir", 0o700, ["root"])
        case "/boot/grub/grub.cfg": return ("bootloader", 0o600, ["root"])
        case "/etc/sudoers": return ("sudoers", 0o440, ["root"])
        default:
            if path.hasPrefix("/etc/ssh/ssh_host_"), path.hasSuffix("_key") { return ("ssh_host_private_key", 0o600, ["root", "ssh_keys", "_ssh"]) }
            if path.hasPrefix("/etc/ssh/ssh_host_"), path.hasSuffix(".pub") { return ("ssh_host_public_key", 0o644, ["root"]) }
            return nil
        }
    }

    static func files(_ c: Context) -> [Resource] {
        let users = c.users
        let groups = c.groups
        return c.snapshot.stats.keys.sorted().compactMap { path in
            guard let st = c.snapshot.stats[path], let (cls, allowed, okGroups) = filePolicy(path) else { return nil }
            let excess = st.bits & 0o7777 & ~allowed
            let owner = users[st.uid] ?? String(st.uid)
            let group = groups[st.gid] ?? String(st.gid)
            return c.resource(
                "files", "file", "file:\(path)", path,
                [
                    "path": .string(path), "file_class": .string(cls), "mode": .string(st.mode), "owner": .string(owner), "group": .string(group),
                    "allowed_mode": .string(FileStat.octal(allowed)), "too_open": .bool(excess != 0),
                    "wrong_owner": .bool(st.uid != 0 || !okGroups.contains(group)),
                ])
        }
    }

    /// Setuid/setgid programs a Debian or Ubuntu system ships (by name); others are unexpected.
    static let knownSetuid: Set<String> = [
        "su", "sudo", "sudoedit", "passwd", "chsh", "chfn", "gpasswd", "newgrp", "mount", "umount", "ping",
        "ping6", "pkexec", "ssh-keysign", "dbus-daemon-launch-helper", "unix_chkpwd", "chage", "expiry", "crontab", "wall", "write",
        "write.ul", "at", "fusermount", "fusermount3", "Xorg.wrap", "polkit-agent-helper-1", "mount.nfs", "mount.cifs", "newuidmap",
        "newgidmap", "pam_extrausers_chkpwd", "bsd-write", "dotlockfile", "ssh-agent", "traceroute6.iputils", "mlocate", "plocate",
        "locate", "staprun", "lxc-user-nic", "snap-confine", "chrome-sandbox", "mail-lock", "mail-unlock", "mail-touchlock",
        "utempter", "vmware-user-suid-wrapper", "ntfs-3g", "exim4", "procmail", "screen", "uuidd", "netreport", "usernetctl", "doas",
    ]

    static func filesystem(_ c: Context) -> Resource {
        let s = c.snapshot
        let unexpected = s.setuid.filter { !knownSetuid.contains(($0 as NSString).lastPathComponent) }
        return c.resource(
            "files", "filesystem", "filesystem", "filesystem of \(c.host)",
            [
                "world_writable_dirs_without_sticky": strings(s.worldWritableDirs), "world_writable_files": strings(s.worldWritableFiles),
                "unexpected_setuid": strings(unexpected), "setuid_count": .number(Double(s.setuid.count)), "trust_files": strings(s.trustFiles),
            ])
    }

    // MARK: kernel

    /// Values a Debian kernel boots with when nothing configures them.
    static let kernelDefaults: [String: String] = [
        "net.ipv4.ip_forward": "0", "net.ipv6.conf.all.forwarding": "0", "net.ipv4.conf.all.send_redirects": "1",
        "net.ipv4.conf.default.send_redirects": "1", "net.ipv4.conf.all.accept_redirects": "1", "net.ipv4.conf.default.accept_redirects": "1",
        "net.ipv6.conf.all.accept_redirects": "1", "net.ipv4.conf.all.secure_redirects": "1", "net.ipv4.conf.all.accept_source_route": "0",
        "net.ipv6.conf.all.accept_source_route": "0", "net.ipv4.conf.all.rp_filter": "0", "net.ipv4.conf.default.rp_filter": "0",
        "net.ipv4.conf.all.log_martians": "0", "net.ipv4.icmp_echo_ignore_broadcasts": "1", "net.ipv4.icmp_ignore_bogus_error_responses": "1",
        "net.ipv4.tcp_syncookies": "1", "net.ipv6.conf.all.accept_ra": "1", "kernel.randomize_va_space": "2", "kernel.dmesg_restrict": "0",
        "kernel.kptr_restrict": "0", "kernel.yama.ptrace_scope": "0", "fs.suid_dumpable": "0", "fs.protected_hardlinks": "1",
        "fs.protected_symlinks": "1",
    ]

    static func kernel(_ c: Context) -> Resource {
        let configured = SysctlConfig.configured(c.snapshot)
        var a: [String: JSONValue] = ["live": .bool(c.snapshot.live)]
        for key in HostSnapshot.sysctlKeys {
            let attr = key.replacingOccurrences(of: ".", with: "_")
            let v: Sourced
            if let live = c.snapshot.liveSysctl[key] {
                v = Sourced(value: live, source: "live /proc/sys" + (configured[key].map { " (configured at \($0.source))" } ?? ""))
            } else if let conf = configured[key] {
                v = conf
            } else if let d = kernelDefaults[key] {
                v = Sourced(value: d, source: "kernel default")
            } else {
                continue
            }
            a[attr] = .number(Double(Int(v.value) ?? -1))
            a[attr + "_source"] = .string(v.source)
        }
        return c.resource("kernel", "kernel", "kernel", "kernel parameters of \(c.host)", a)
    }

    // MARK: mounts

    static func mounts(_ c: Context) -> [Resource] {
        // Live mounts when auditing a running system, else the fstab of the tree.
        let (text, source) = c.snapshot.live ? (c.snapshot.files["/proc/mounts"], "/proc/mounts") : (c.snapshot.files["/etc/fstab"], "/etc/fstab")
        var found: [String: (options: [String], line: Int)] = [:]
        for (i, raw) in (text ?? "").split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let f = raw.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard f.count >= 4, !f[0].hasPrefix("#") else { continue }
            found[String(f[1])] = (f[3].split(separator: ",").map(String.init), i + 1)
        }
        return ["/tmp", "/dev/shm", "/var/tmp"].map { point in
            let m = found[point]
            let opts = m?.options ?? []
            return c.resource(
                "files", "mount", "mount:\(point)", point,
                [
                    "mount_point": .string(point), "separate": .bool(m != nil), "options": strings(opts), "nodev": .bool(opts.contains("nodev")),
                    "nosuid": .bool(opts.contains("nosuid")), "noexec": .bool(opts.contains("noexec")),
                    "source": .string(m.map { "\(source):\($0.line)" } ?? "not in \(source)"),
                ])
        }
    }

    // MARK: services and packages

    static let insecureServers = [
        "telnetd", "inetutils-telnetd", "telnetd-ssl", "rsh-server", "rsh-redone-server", "nis", "tftpd",
        "tftpd-hpa", "atftpd", "talkd", "inetutils-talkd", "xinetd", "openbsd-inetd", "inetutils-inetd", "rsh-server", "ypserv",
    ]
    static let insecureClients = ["telnet", "inetutils-telnet", "rsh-client", "rsh-redone-client", "talk", "inetutils-talk", "yp-tools"]

    static func services(_ c: Context) -> Resource {
        let s = c.snapshot
        let pkgs = c.packages
        var a: [String: JSONValue] = [:]
        a["packages_known"] = .bool(s.files["/var/lib/dpkg/status"] != nil)
        a["insecure_servers"] = strings(insecureServers.filter { pkgs[$0] != nil }.sorted())
        a["insecure_clients"] = strings(insecureClients.filter { pkgs[$0] != nil }.sorted())
        // Firewall: installed, and a default-deny input policy configured.
        var fw: [String] = []
        var denySource: String? = nil
        if pkgs["nftables"] != nil || s.files["/etc/nftables.conf"] != nil {
            fw.append("nftables")
            for (i, line) in (s.files["/etc/nftables.conf"] ?? "").split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let l = line.lowercased()
                if l.contains("hook input"), l.contains("policy drop") { denySource = "/etc/nftables.conf:\(i + 1)" }
            }
        }
        let ufwEnabled = KeyValueConfig.parse(s.files["/etc/ufw/ufw.conf"], path: "/etc/ufw/ufw.conf", separator: "=")["ENABLED"]
        if pkgs["ufw"] != nil || s.files["/etc/ufw/ufw.conf"] != nil {
            fw.append("ufw")
            let policy = KeyValueConfig.parse(s.files["/etc/default/ufw"], path: "/etc/default/ufw", separator: "=")["DEFAULT_INPUT_POLICY"]
            if ufwEnabled?.value.lowercased() == "yes", let p = policy, ["drop", "reject"].contains(p.value.lowercased()) { denySource = p.source }
        }
        if pkgs["iptables-persistent"] != nil || s.files["/etc/iptables/rules.v4"] != nil {
            fw.append("iptables")
            for (i, line) in (s.files["/etc/iptables/rules.v4"] ?? "").split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            where line.hasPrefix(":INPUT DROP") {
                denySource = "/etc/iptables/rules.v4:\(i + 1)"
            }
        }
        a["firewalls"] = strings(fw)
        a["firewall_default_deny"] = .bool(denySource != nil)
        a["firewall_default_deny_source"] = .string(denySource ?? "no input chain with a drop policy found")
        // Audit daemon, time synchronisation, automatic security updates.
        a["auditd_installed"] = .bool(pkgs["auditd"] != nil)
        let timeSync = ["chrony", "systemd-timesyncd", "ntp", "ntpsec", "openntpd"].filter { pkgs[$0] != nil }
        a["time_sync"] = strings(timeSync)
        let periodic = KeyValueConfig.parse(s.files["/etc/apt/apt.conf.d/20auto-upgrades"], path: "/etc/apt/apt.conf.d/20auto-upgrades")
        let unattended = periodic["APT::Periodic::Unattended-Upgrade"].map { $0.value.trimmingCharacters(in: CharacterSet(charactersIn: "\";")) }
        a["unattended_upgrades"] = .bool(pkgs["unattended-upgrades"] != nil && unattended == "1")
        a["unattended_upgrades_source"] = .string(periodic["APT::Periodic::Unattended-Upgrade"]?.source ?? "not configured")
        // Pending security updates, from dpkg's status and apt's security package lists.
        let lists = s.files.filter { $0.key.hasPrefix(HostSnapshot.aptLists + "/") }.map(\.value)
        let available = DebianPackages.available(lists)
        let pending = pkgs.compactMap { name, installed -> String? in
            guard let v = available[name], DebianVersion.compare(installed, v) < 0 else { return nil }
            return "\(name) \(installed) → \(v)"
        }.sorted()
        a["security_lists"] = .number(Double(lists.count))
        a["pending_security_updates"] = strings(pending)
        // Core dumps: a hard limit of 0 for everyone and no setuid dumps.
        var coreLimit: String? = nil
        for path in ["/etc/security/limits.conf"] + s.files.keys.filter({ $0.hasPrefix("/etc/security/limits.d/") }).sorted() {
            for (i, line) in (s.files[path] ?? "").split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                if f.count >= 4, f[0] == "*", f[1] == "hard", f[2] == "core", f[3] == "0" { coreLimit = "\(path):\(i + 1)" }
            }
        }
        a["core_dumps_limited"] = .bool(coreLimit != nil)
        a["core_dumps_limited_source"] = .string(coreLimit ?? "no '* hard core 0' in limits.conf")
        return c.resource("services", "services", "services", "services and packages of \(c.host)", a)
    }

    static func sudo(_ c: Context) -> Resource {
        var nopasswd: [String] = []
        var usePty = false
        let paths = ["/etc/sudoers"] + c.snapshot.files.keys.filter { $0.hasPrefix("/etc/sudoers.d/") }.sorted()
        for path in paths {
            for (i, raw) in (c.snapshot.files[path] ?? "").split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = raw.trimmingCharacters(in: .whitespaces)
                if line.hasPrefix("#") || line.isEmpty { continue }
                let compact = line.replacingOccurrences(of: " ", with: "").replacingOccurrences(of: "\t", with: "")
                if compact.contains("NOPASSWD:ALL") { nopasswd.append("\(path):\(i + 1): \(line)") }
                if line.hasPrefix("Defaults"), compact.contains("use_pty"), !compact.contains("!use_pty") { usePty = true }
            }
        }
        return c.resource(
            "accounts", "sudo", "sudo", "sudo on \(c.host)",
            [
                "installed": .bool(c.snapshot.files["/etc/sudoers"] != nil), "nopasswd_all": strings(nopasswd), "use_pty": .bool(usePty),
            ])
    }

    // MARK: network and keys

    static func listeners(_ c: Context) -> [Resource] {
        var out: [Resource] = []
        var seen = Set<String>()
        for proto in ["tcp", "tcp6", "udp", "udp6"] {
            for line in (c.snapshot.sockets[proto] ?? "").split(separator: "\n").dropFirst() {
                let f = line.split(separator: " ")
                guard f.count > 3 else { continue }
                let local = f[1].split(separator: ":")
                guard local.count == 2, let port = Int(local[1], radix: 16) else { continue }
                // TCP listens are state 0A; UDP sockets bound without a peer are state 07.
                let listening = proto.hasPrefix("tcp") ? f[3] == "0A" : f[3] == "07"
                let any = local[0].allSatisfy { $0 == "0" }
                guard listening, any else { continue }
                let key = "\(proto.hasPrefix("tcp") ? "tcp" : "udp"):\(port)"
                guard seen.insert(key).inserted else { continue }
                out.append(
                    c.resource(
                        "network", "listener", "listener:\(key)", "\(key) on all addresses",
                        [
                            "protocol": .string(proto.hasPrefix("tcp") ? "tcp" : "udp"), "port": .number(Double(port)), "all_addresses": .bool(true),
                            "ssh": .bool(port == 22), "source": .string("/proc/net/\(proto)"),
                        ]))
            }
        }
        return out
    }

    static func keys(_ c: Context) -> [Resource] {
        let users = c.users
        var out: [Resource] = []
        for (path, st) in c.snapshot.homePrivateKeys.sorted(by: { $0.key < $1.key }) {
            out.append(
                c.resource(
                    "accounts", "private_key", "key:\(path)", path,
                    [
                        "path": .string(path), "mode": .string(st.mode), "owner": .string(users[st.uid] ?? String(st.uid)),
                        "readable_by_others": .bool(st.bits & 0o077 != 0),
                    ]))
        }
        for (path, st) in c.snapshot.authorizedKeys.sorted(by: { $0.key < $1.key }) {
            out.append(
                c.resource(
                    "accounts", "authorized_keys", "authorized_keys:\(path)", path,
                    [
                        "path": .string(path), "mode": .string(st.mode), "owner": .string(users[st.uid] ?? String(st.uid)),
                        "writable_by_others": .bool(st.bits & 0o022 != 0),
                    ]))
        }
        return out
    }
}
