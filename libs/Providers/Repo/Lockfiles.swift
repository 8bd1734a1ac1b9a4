import Foundation

/// A third-party component a lockfile pins.
public struct Component: Codable, Sendable, Hashable {
    /// OSV's ecosystem name: `npm`, `PyPI`, `Go`, `crates.io`, `RubyGems`, `Packagist`, `SwiftURL`.
    public var ecosystem: String
    public var name: String
    public var version: String?
    /// The lockfile it was read from.
    public var file: String

    public init(ecosystem: String, name: String, version: String?, file: String) {
        self.ecosystem = ecosystem
        self.name = name
        self.version = version
        self.file = file
    }

    /// Package URL (purl spec): `pkg:npm/%40scope/name@1.0.0`, `pkg:pypi/requests@2.31.0`, `pkg:golang/golang.org/x/net@v0.1.0`.
    public var purl: String {
        let type: String
        var n = name
        switch ecosystem {
        case "npm":
            type = "npm"
            if n.hasPrefix("@") { n = "%40" + n.dropFirst() }
        case "PyPI":
            type = "pypi"
            n = n.lowercased().replacingOccurrences(of: "_", with: "-")
        case "Go": type = "golang"
        case "crates.io": type = "cargo"
        case "RubyGems": type = "gem"
        case "Packagist": type = "composer"
        case "SwiftURL":
            type = "swift"
            n = n.replacingOccurrences(of: "https://", with: "").replacingOccurrences(of: ".git", with: "")
        default: type = "generic"
        }
        return "pkg:\(type)/\(n)" + (version.map { "@\($0)" } ?? "")
    }
}

/// Lockfile readers: each takes the file's text and returns what it pins. Malformed input gives what could be
/// read (never a crash): a lockfile is attacker-controlled text.
public enum Lockfiles {
    /// File name → reader.
    public static let readers: [String: @Sendable (String, String) -> [Component]] = [
        "package-lock.json": npmLock, "npm-shrinkwrap.json": npmLock, "yarn.lock": yarnLock, "poetry.lock": tomlPackages("PyPI"),
        "Cargo.lock": tomlPackages("crates.io"), "go.sum": goSum, "Gemfile.lock": gemfileLock, "composer.lock": composerLock,
        "Package.resolved": swiftResolved, "Pipfile.lock": pipfileLock,
    ]

    /// The reader for a path, if it is a lockfile (`requirements*.txt` included).
    public static func reader(for path: String) -> (@Sendable (String, String) -> [Component])? {
        let name = (path as NSString).lastPathComponent
        if let r = readers[name] { return r }
        if name.hasPrefix("requirements") && name.hasSuffix(".txt") { return requirements }
        return nil
    }

    static func json(_ text: String) -> Any? { try? JSONSerialization.jsonObject(with: Data(text.utf8)) }

    @Sendable static func npmLock(_ text: String, _ file: String) -> [Component] {
        guard let root = json(text) as? [String: Any] else { return [] }
        var out: [Component] = []
        if let packages = root["packages"] as? [String: Any] {
            for (path, v) in packages where !path.isEmpty {
                guard let p = v as? [String: Any], let version = p["version"] as? String, p["link"] as? Bool != true else { continue }
                guard let r = path.range(of: "node_modules/", options: .backwards) else { continue }
                out.append(Component(ecosystem: "npm", name: String(path[r.upperBound...]), version: version, file: file))
            }
        } else if let deps = root["dependencies"] as? [String: Any] {
            func walk(_ deps: [String: Any], depth: Int) {
                guard depth < 64 else { return }
                for (name, v) in deps {
                    guard let d = v as? [String: Any] else { continue }
                    if let version = d["version"] as? String { out.append(Component(ecosystem: "npm", name: name, version: version, file: file)) }
                    if let nested = d["dependencies"] as? [String: Any] { walk(nested, depth: depth + 1) }
                }
            }
            walk(deps, depth: 0)
        }
        return out
    }

    /// yarn v1 (`"a@^1", a@~1:` then `  version "1.2.3"`) and yarn berry (`"a@npm:^1":` then `  version: 1.2.3`).
    @Sendable static func yarnLock(_ text: String, _ file: String) -> [Component] {
        var out: [Component] = []
        var current: String? = nil
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if let f = line.first, f != " ", f != "#", line.hasSuffix(":") {
                let first = line.dropLast().split(separator: ",").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
                let spec = first.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                let at = spec.dropFirst().firstIndex(of: "@")
                current = at.map { String(spec[..<$0]) }
                if current == "__metadata" { current = nil }
            } else if let name = current, line.hasPrefix("  version") {
                let v = line.dropFirst("  version".count).trimmingCharacters(in: CharacterSet(charactersIn: " :\""))
                if !v.isEmpty { out.append(Component(ecosystem: "npm", name: name, version: v, file: file)) }
                current = nil
            }
        }
        return out
    }

    /// `[[package]]` tables with `name = "…"` and `version = "…"` (poetry.lock, Cargo.lock).
    static func tomlPackages(_ ecosystem: String) -> @Sendable (String, String) -> [Component] {
        { text, file in
            var out: [Component] = []
            var name: String? = nil
            var version: String? = nil
            func flush() {
                if let n = name { out.append(Component(ecosystem: ecosystem, name: n, version: version, file: file)) }
                name = nil
                version = nil
            }
            var inPackage = false
            for raw in text.split(separator: "\n") {
                let line = raw.trimmingCharacters(in: .whitespaces)
                if line.hasPrefix("[") {
                    if inPackage { flush() }
                    inPackage = line == "[[package]]"
                    continue
                }
                guard inPackage, let eq = line.firstIndex(of: "=") else { continue }
                let key = line[..<eq].trimmingCharacters(in: .whitespaces)
                let value = line[line.index(after: eq)...].trimmingCharacters(in: CharacterSet(charactersIn: " \"'"))
                if key == "name" { name = value } else if key == "version" { version = value }
            }
            if inPackage { flush() }
            return out
        }
    }

    @Sendable static func requirements(_ text: String, _ file: String) -> [Component] {
        var out: [Component] = []
        for raw in text.split(separator: "\n") {
            var line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            line = line.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            line = line.trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty, !line.hasPrefix("-"), !line.contains("://") else { continue }
            if let m = line.firstMatch(of: /^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*===?\s*([A-Za-z0-9.!+_-]+)$/) {
                out.append(Component(ecosystem: "PyPI", name: String(m.1), version: String(m.3), file: file))
            } else if let m = line.firstMatch(of: /^([A-Za-z0-9][A-Za-z0-9._-]*)/) {
                out.append(Component(ecosystem: "PyPI", name: String(m.1), version: nil, file: file))
            }
        }
        return out
    }

    @Sendable static func goSum(_ text: String, _ file: String) -> [Component] {
        var seen: Set<String> = []
        var out: [Component] = []
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count >= 2 else { continue }
            var version = String(parts[1])
            if version.hasSuffix("/go.mod") { version = String(version.dropLast("/go.mod".count)) }
            if seen.insert("\(parts[0])@\(version)").inserted {
                out.append(Component(ecosystem: "Go", name: String(parts[0]), version: version, file: file))
            }
        }
        return out
    }

    /// The `specs:` of the `GEM` section: `    name (version)` (four spaces; six are dependencies of a gem).
    @Sendable static func gemfileLock(_ text: String, _ file: String) -> [Component] {
        var out: [Component] = []
        var inGem = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if let f = line.first, f != " " { inGem = line == "GEM" }
            guard inGem, line.hasPrefix("    "), !line.hasPrefix("     ") else { continue }
            if let m = line.firstMatch(of: /^    ([A-Za-z0-9._-]+) \(([^)\s]+)\)/) {
                var v = String(m.2)
                if let dash = v.range(of: "-"), v[dash.upperBound...].contains(where: \.isLetter) {
                    v = String(v[..<dash.lowerBound])  // platform suffix (nokogiri 1.15.0-x86_64-linux)
                }
                out.append(Component(ecosystem: "RubyGems", name: String(m.1), version: v, file: file))
            }
        }
        return out
    }

    @Sendable static func composerLock(_ text: String, _ file: String) -> [Component] {
        guard let root = json(text) as? [String: Any] else { return [] }
        return ((root["packages"] as? [Any] ?? []) + (root["packages-dev"] as? [Any] ?? [])).compactMap { v in
            guard let p = v as? [String: Any], let name = p["name"] as? String else { return nil }
            var version = p["version"] as? String
            if let s = version, s.hasPrefix("v") { version = String(s.dropFirst()) }
            return Component(ecosystem: "Packagist", name: name, version: version, file: file)
        }
    }

    @Sendable static func swiftResolved(_ text: String, _ file: String) -> [Component] {
        guard let root = json(text) as? [String: Any] else { return [] }
        let pins = (root["pins"] as? [Any]) ?? ((root["object"] as? [String: Any])?["pins"] as? [Any]) ?? []
        return pins.compactMap { v in
            guard let p = v as? [String: Any], let url = (p["location"] ?? p["repositoryURL"]) as? String else { return nil }
            let version = (p["state"] as? [String: Any])?["version"] as? String
            return Component(ecosystem: "SwiftURL", name: url, version: version, file: file)
        }
    }

    @Sendable static func pipfileLock(_ text: String, _ file: String) -> [Component] {
        guard let root = json(text) as? [String: Any] else { return [] }
        var out: [Component] = []
        for section in ["default", "develop"] {
            for (name, v) in root[section] as? [String: Any] ?? [:] {
                let version = ((v as? [String: Any])?["version"] as? String).map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "=")) }
                out.append(Component(ecosystem: "PyPI", name: name, version: version, file: file))
            }
        }
        return out
    }
}
