import Foundation

/// What an audit knows about one Linux host, gathered read-only from a fixed list of files and
/// commands (`HostSnapshot.textFiles`, `HostSnapshot.statPaths`, …) by the agent on the host or by
/// the scan workers over SSH. Secrets are reduced before they enter it: `/etc/shadow` becomes a status
/// per account (`set`, `empty`, `locked`), never a hash; private keys are recorded by path and mode only.
///
/// Paths are absolute paths on the audited host; with `--root DIR` they are read under DIR.
public struct HostSnapshot: Codable, Sendable, Equatable {
    /// Contents of the text files of `textFiles` (and the files of `textDirs`) that exist, capped at
    /// `maxFileBytes` each.
    public var files: [String: String] = [:]
    /// Mode (octal, e.g. `0640`), owner and group ids of the paths of `statPaths` that exist, and of
    /// the entries of `statDirs`.
    public var stats: [String: FileStat] = [:]
    /// `/etc/shadow` reduced to a status per account, with the ageing fields.
    public var shadow: [String: ShadowEntry] = [:]
    /// setuid/setgid regular files under the system directories of `scanRoots`.
    public var setuid: [String] = []
    /// World-writable directories without the sticky bit under `scanRoots`.
    public var worldWritableDirs: [String] = []
    /// World-writable regular files under `scanRoots`.
    public var worldWritableFiles: [String] = []
    /// Private keys in home directories (`~/.ssh/id_*` and other files that start with a PEM or
    /// OpenSSH private-key line), with their mode.
    public var homePrivateKeys: [String: FileStat] = [:]
    /// `authorized_keys` files of every home directory, with their mode.
    public var authorizedKeys: [String: FileStat] = [:]
    /// `.rhosts`, `.netrc` and `/etc/hosts.equiv` files found.
    public var trustFiles: [String] = []
    /// Live kernel parameters read from `/proc/sys` (absent when auditing a mounted image).
    public var liveSysctl: [String: String] = [:]
    /// `/proc/net/{tcp,tcp6,udp,udp6}` (absent when auditing a mounted image).
    public var sockets: [String: String] = [:]
    /// The host's name and kernel, when known.
    public var hostname: String?
    public var kernel: String?
    /// Whether the snapshot is of a running system (`/proc` present) or of a mounted tree.
    public var live: Bool = false
    /// Paths that could not be read although they exist (permission), for the audit's own report.
    public var unreadable: [String] = []

    public init() {}

    public static let maxFileBytes = 1 << 20

    /// Text files read whole.
    public static let textFiles = [
        "/etc/ssh/sshd_config", "/etc/passwd", "/etc/group", "/etc/login.defs", "/etc/fstab", "/etc/sysctl.conf",
        "/etc/security/limits.conf", "/etc/security/pwquality.conf", "/etc/sudoers", "/etc/nftables.conf", "/etc/ufw/ufw.conf",
        "/etc/default/ufw", "/etc/iptables/rules.v4", "/etc/iptables/rules.v6", "/etc/apt/apt.conf.d/20auto-upgrades",
        "/etc/apt/apt.conf.d/50unattended-upgrades", "/etc/audit/auditd.conf", "/etc/chrony/chrony.conf", "/etc/chrony.conf",
        "/etc/systemd/timesyncd.conf", "/etc/ntp.conf", "/etc/ntpsec/ntp.conf", "/var/lib/dpkg/status", "/etc/os-release",
        "/etc/hostname", "/proc/mounts", "/proc/sys/kernel/osrelease", "/etc/systemd/coredump.conf",
    ]
    /// Directories whose regular files are read as text (drop-in configuration).
    public static let textDirs = [
        "/etc/ssh/sshd_config.d", "/etc/sysctl.d", "/usr/lib/sysctl.d", "/etc/security/limits.d", "/etc/sudoers.d",
        "/etc/apt/apt.conf.d", "/etc/systemd/coredump.conf.d",
    ]
    /// Package index files of security repositories (`/var/lib/apt/lists/*security*_Packages`).
    public static let aptLists = "/var/lib/apt/lists"
    /// Paths whose ownership and mode are checked.
    public static let statPaths = [
        "/etc/passwd", "/etc/passwd-", "/etc/shadow", "/etc/shadow-", "/etc/group", "/etc/group-", "/etc/gshadow", "/etc/gshadow-",
        "/etc/ssh/sshd_config", "/etc/crontab", "/etc/cron.hourly", "/etc/cron.daily", "/etc/cron.weekly", "/etc/cron.monthly",
        "/etc/cron.d", "/boot/grub/grub.cfg", "/etc/sudoers", "/tmp", "/var/tmp",
    ]
    /// Directories whose entries are stat'ed (SSH host keys).
    public static let statDirs = ["/etc/ssh"]
    /// Where setuid files and world-writable entries are looked for (system paths, not /home or /proc).
    public static let scanRoots = ["/bin", "/sbin", "/usr", "/etc", "/var", "/opt", "/lib", "/boot", "/root", "/srv"]
    /// Bounds of the tree walk.
    public static let maxWalkEntries = 400_000
    /// The live kernel parameters read.
    public static let sysctlKeys = [
        "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding", "net.ipv4.conf.all.send_redirects", "net.ipv4.conf.default.send_redirects",
        "net.ipv4.conf.all.accept_redirects", "net.ipv4.conf.default.accept_redirects", "net.ipv6.conf.all.accept_redirects",
        "net.ipv4.conf.all.secure_redirects", "net.ipv4.conf.all.accept_source_route", "net.ipv6.conf.all.accept_source_route",
        "net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter", "net.ipv4.conf.all.log_martians",
        "net.ipv4.icmp_echo_ignore_broadcasts", "net.ipv4.icmp_ignore_bogus_error_responses", "net.ipv4.tcp_syncookies",
        "net.ipv6.conf.all.accept_ra", "kernel.randomize_va_space", "kernel.dmesg_restrict", "kernel.kptr_restrict",
        "kernel.yama.ptrace_scope", "fs.suid_dumpable", "fs.protected_hardlinks", "fs.protected_symlinks",
    ]
}

public struct FileStat: Codable, Sendable, Equatable {
    /// Permission bits with setuid/setgid/sticky, as octal text (`0644`, `1777`).
    public var mode: String
    public var uid: Int
    public var gid: Int
    public var isDirectory: Bool

    public init(mode: String, uid: Int, gid: Int, isDirectory: Bool) {
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.isDirectory = isDirectory
    }

    public init(bits: Int, uid: Int, gid: Int, isDirectory: Bool) {
        self.init(mode: Self.octal(bits), uid: uid, gid: gid, isDirectory: isDirectory)
    }

    public var bits: Int { Int(mode, radix: 8) ?? 0 }

    public static func octal(_ bits: Int) -> String {
        let s = String(bits & 0o7777, radix: 8)
        return String(repeating: "0", count: max(0, 4 - s.count)) + s
    }
}

public struct ShadowEntry: Codable, Sendable, Equatable {
    /// `set` (a hash), `empty` (no password at all), `locked` (`!`, `*` or `!`-prefixed hash).
    public var status: String
    public var maxDays: Int?
    public var minDays: Int?
    public var warnDays: Int?

    public init(status: String, maxDays: Int?, minDays: Int?, warnDays: Int?) {
        self.status = status
        self.maxDays = maxDays
        self.minDays = minDays
        self.warnDays = warnDays
    }

    /// One `/etc/shadow` line reduced (the hash is dropped here).
    public static func parse(_ line: Substring) -> (String, ShadowEntry)? {
        let f = line.split(separator: ":", omittingEmptySubsequences: false)
        guard f.count >= 2, !f[0].isEmpty else { return nil }
        let hash = f[1]
        let status = hash.isEmpty ? "empty" : (hash.hasPrefix("!") || hash.hasPrefix("*") ? "locked" : "set")
        func int(_ i: Int) -> Int? { f.count > i ? Int(f[i]) : nil }
        return (String(f[0]), ShadowEntry(status: status, maxDays: int(4), minDays: int(3), warnDays: int(5)))
    }
}
