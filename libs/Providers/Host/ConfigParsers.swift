import Foundation

/// A configuration value and where it came from (`file:line`, or `default`).
public struct Sourced: Sendable, Equatable {
    public var value: String
    public var source: String
}

/// sshd's effective global configuration as OpenSSH reads it: keywords are case-insensitive, the first
/// value obtained wins, `Include` is read in place (globs sorted), and `Match` blocks (conditional) do
/// not change the global values.
struct SSHDConfig {
    var values: [String: Sourced] = [:]

    init(_ snapshot: HostSnapshot, path: String = "/etc/ssh/sshd_config") {
        var depth = 0
        read(path, snapshot, &depth)
    }

    private mutating func read(_ path: String, _ s: HostSnapshot, _ depth: inout Int) {
        guard depth < 8, let text = s.files[path] else { return }
        depth += 1
        var inMatch = false
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let (key, value) = Self.split(line)
            if key == "match" {
                inMatch = true
                continue
            }
            if inMatch { continue }
            if key == "include" {
                for pattern in value.split(separator: " ").map(String.init) {
                    let full = pattern.hasPrefix("/") ? pattern : "/etc/ssh/" + pattern
                    for f in Self.expand(full, in: s) { read(f, s, &depth) }
                }
                continue
            }
            if values[key] == nil { values[key] = Sourced(value: value, source: "\(path):\(i + 1)") }
        }
        depth -= 1
    }

    static func split(_ line: String) -> (String, String) {
        var key = ""
        var rest = Substring(line)
        if let idx = line.firstIndex(where: { $0 == " " || $0 == "\t" || $0 == "=" }) {
            key = String(line[..<idx])
            rest = line[line.index(after: idx)...]
        } else {
            key = line
            rest = ""
        }
        let value = rest.drop(while: { $0 == " " || $0 == "\t" || $0 == "=" }).trimmingCharacters(in: .whitespaces)
        return (key.lowercased(), value.hasPrefix("\"") && value.hasSuffix("\"") && value.count >= 2 ? String(value.dropFirst().dropLast()) : value)
    }

    /// A glob over the snapshot's files (`*` within the last path component only, as sshd's includes use).
    static func expand(_ pattern: String, in s: HostSnapshot) -> [String] {
        guard pattern.contains("*") || pattern.contains("?") else { return [pattern] }
        let dir = (pattern as NSString).deletingLastPathComponent
        let name = (pattern as NSString).lastPathComponent
        return s.files.keys.filter { ($0 as NSString).deletingLastPathComponent == dir && Glob.matches(name, ($0 as NSString).lastPathComponent) }
            .sorted()
    }

    func get(_ key: String, default d: String) -> Sourced { values[key] ?? Sourced(value: d, source: "default") }
}

enum Glob {
    /// `*` and `?` matching of a whole name.
    static func matches(_ pattern: String, _ name: String) -> Bool {
        let p = Array(pattern)
        let n = Array(name)
        var (pi, ni, star, mark) = (0, 0, -1, 0)
        while ni < n.count {
            if pi < p.count && (p[pi] == "?" || p[pi] == n[ni]) {
                pi += 1
                ni += 1
            } else if pi < p.count && p[pi] == "*" {
                star = pi
                mark = ni
                pi += 1
            } else if star >= 0 {
                pi = star + 1
                mark += 1
                ni = mark
            } else {
                return false
            }
        }
        while pi < p.count && p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}

/// `key value` files (login.defs, pwquality.conf, timesyncd…): the last value of a key wins.
enum KeyValueConfig {
    static func parse(_ text: String?, path: String, separator: Character? = nil) -> [String: Sourced] {
        var out: [String: Sourced] = [:]
        for (i, raw) in (text ?? "").split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") || line.hasPrefix("[") { continue }
            let parts: [Substring]
            if let sep = separator {
                parts = line.split(separator: sep, maxSplits: 1)
            } else {
                parts = line.split(maxSplits: 1, whereSeparator: { $0 == " " || $0 == "\t" })
            }
            guard parts.count == 2 else { continue }
            let key = parts[0].trimmingCharacters(in: .whitespaces)
            var value = parts[1].trimmingCharacters(in: .whitespaces)
            if let hash = value.firstIndex(of: "#"), separator != nil { value = value[..<hash].trimmingCharacters(in: .whitespaces) }
            out[key] = Sourced(value: value.trimmingCharacters(in: CharacterSet(charactersIn: "\"")), source: "\(path):\(i + 1)")
        }
        return out
    }
}

/// Kernel parameters as configured: `/usr/lib/sysctl.d`, `/etc/sysctl.d` (a file there replaces the
/// one of the same name in /usr/lib), then `/etc/sysctl.conf`; within that order, later wins.
enum SysctlConfig {
    static func configured(_ s: HostSnapshot) -> [String: Sourced] {
        var byName: [String: String] = [:]
        for dir in ["/usr/lib/sysctl.d", "/etc/sysctl.d"] {
            for path in s.files.keys where (path as NSString).deletingLastPathComponent == dir && path.hasSuffix(".conf") {
                byName[(path as NSString).lastPathComponent] = path
            }
        }
        var files = byName.keys.sorted().compactMap { byName[$0] }
        files.append("/etc/sysctl.conf")
        var out: [String: Sourced] = [:]
        for path in files {
            for (k, v) in KeyValueConfig.parse(s.files[path], path: path, separator: "=") {
                out[k.replacingOccurrences(of: "/", with: ".").trimmingCharacters(in: CharacterSet(charactersIn: "-"))] = v
            }
        }
        return out
    }
}

/// Debian package version comparison (`dpkg --compare-versions`): epoch, upstream, revision, with `~`
/// sorting before everything.
enum DebianVersion {
    static func compare(_ a: String, _ b: String) -> Int {
        let (ea, ua, ra) = split(a)
        let (eb, ub, rb) = split(b)
        if ea != eb { return ea < eb ? -1 : 1 }
        let c = part(ua, ub)
        return c != 0 ? c : part(ra, rb)
    }

    static func split(_ v: String) -> (Int, String, String) {
        var rest = Substring(v)
        var epoch = 0
        if let colon = rest.firstIndex(of: ":"), let e = Int(rest[..<colon]) {
            epoch = e
            rest = rest[rest.index(after: colon)...]
        }
        if let dash = rest.lastIndex(of: "-") { return (epoch, String(rest[..<dash]), String(rest[rest.index(after: dash)...])) }
        return (epoch, String(rest), "0")
    }

    static func order(_ c: Character?) -> Int {
        guard let c else { return 0 }
        if c == "~" { return -1 }
        if c.isLetter { return Int(c.asciiValue ?? 0) }
        return Int(c.asciiValue ?? 0) + 256
    }

    static func part(_ a: String, _ b: String) -> Int {
        var x = Array(a)[...]
        var y = Array(b)[...]
        while !x.isEmpty || !y.isEmpty {
            // Non-digit prefix, character by character.
            while (x.first.map { !$0.isNumber } ?? false) || (y.first.map { !$0.isNumber } ?? false) {
                let ox = order(x.first.flatMap { $0.isNumber ? nil : $0 })
                let oy = order(y.first.flatMap { $0.isNumber ? nil : $0 })
                if ox != oy { return ox < oy ? -1 : 1 }
                if let f = x.first, !f.isNumber { x = x.dropFirst() }
                if let f = y.first, !f.isNumber { y = y.dropFirst() }
            }
            let dx = x.prefix(while: { $0.isNumber })
            let dy = y.prefix(while: { $0.isNumber })
            x = x.dropFirst(dx.count)
            y = y.dropFirst(dy.count)
            let nx = Int(String(dx).drop(while: { $0 == "0" })) ?? 0
            let ny = Int(String(dy).drop(while: { $0 == "0" })) ?? 0
            if nx != ny { return nx < ny ? -1 : 1 }
        }
        return 0
    }
}

/// `Package:`/`Version:`/`Status:` stanzas of dpkg's status file and apt's package lists.
enum DebianPackages {
    /// Installed packages (status `install ok installed`) and their versions.
    static func installed(_ text: String?) -> [String: String] {
        var out: [String: String] = [:]
        for stanza in stanzas(text) where stanza["Status"]?.hasSuffix(" installed") == true {
            if let p = stanza["Package"], let v = stanza["Version"] { out[p] = v }
        }
        return out
    }

    /// The newest version of each package in a list.
    static func available(_ texts: [String]) -> [String: String] {
        var out: [String: String] = [:]
        for text in texts {
            for stanza in stanzas(text) {
                guard let p = stanza["Package"], let v = stanza["Version"] else { continue }
                if let cur = out[p], DebianVersion.compare(cur, v) >= 0 { continue }
                out[p] = v
            }
        }
        return out
    }

    static func stanzas(_ text: String?) -> [[String: String]] {
        var out: [[String: String]] = []
        var cur: [String: String] = [:]
        for line in (text ?? "").split(separator: "\n", omittingEmptySubsequences: false) {
            if line.isEmpty {
                if !cur.isEmpty { out.append(cur) }
                cur = [:]
            } else if line.first != " ", let colon = line.firstIndex(of: ":") {
                cur[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        if !cur.isEmpty { out.append(cur) }
        return out
    }
}
