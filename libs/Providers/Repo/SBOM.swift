import Foundation
import ScanEngine
import Synchronization
import VigilCore

/// A known vulnerability of a package, from an OSV export.
public struct Advisory: Sendable, Equatable {
    public var id: String
    public var aliases: [String]
    public var summary: String
    /// `critical`, `high`, `medium` or `low`.
    public var severity: String
    /// Ranges of affected versions: `[introduced, fixed)`; `fixed` nil means every later version.
    public var ranges: [(introduced: String, fixed: String?)]
    public var versions: Set<String>

    public static func == (a: Advisory, b: Advisory) -> Bool { a.id == b.id }

    public func affects(_ version: String) -> Bool {
        if versions.contains(version) { return true }
        return ranges.contains { r in
            (r.introduced == "0" || Versions.compare(version, r.introduced) >= 0) && (r.fixed.map { Versions.compare(version, $0) < 0 } ?? true)
        }
    }

    /// The lowest fixed version above `version`.
    public func firstFixed(after version: String) -> String? {
        ranges.compactMap(\.fixed).filter { Versions.compare($0, version) > 0 }.min { Versions.compare($0, $1) < 0 }
    }
}

/// Version order good enough for OSV's SEMVER and ECOSYSTEM ranges of the ecosystems read here: numeric
/// parts compare as numbers, a pre-release (`1.0.0-rc1`, `1.0.0rc1`, `1.0.0.beta`) sorts before its release.
public enum Versions {
    static func parts(_ v: String) -> (release: [Int], pre: String?) {
        var s = Substring(v.hasPrefix("v") ? String(v.dropFirst()) : v)
        if let plus = s.firstIndex(of: "+") { s = s[..<plus] }
        var release: [Int] = []
        var current = ""
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            if c.isNumber {
                current.append(c)
            } else if c == "." && !current.isEmpty {
                release.append(Int(current.prefix(18)) ?? 0)
                current = ""
            } else {
                break
            }
            i = s.index(after: i)
        }
        if !current.isEmpty { release.append(Int(current.prefix(18)) ?? 0) }
        let rest = s[i...].trimmingCharacters(in: CharacterSet(charactersIn: "-._"))
        return (release, rest.isEmpty ? nil : rest.lowercased())
    }

    /// -1, 0 or 1.
    public static func compare(_ a: String, _ b: String) -> Int {
        let (ra, pa) = parts(a)
        let (rb, pb) = parts(b)
        for i in 0..<max(ra.count, rb.count) {
            let x = i < ra.count ? ra[i] : 0
            let y = i < rb.count ? rb[i] : 0
            if x != y { return x < y ? -1 : 1 }
        }
        switch (pa, pb) {
        case (nil, nil): return 0
        case (nil, _): return 1
        case (_, nil): return -1
        case (let x?, let y?): return x == y ? 0 : (x.compare(y, options: .numeric) == .orderedAscending ? -1 : 1)
        }
    }
}

/// An OSV database export in a directory (`*.json`, one advisory each, as osv.dev's per-ecosystem exports
/// unpack), indexed by ecosystem and package name. Loaded once and again when the directory changes.
public final class OSVDatabase: Sendable {
    public let directory: String
    struct Index: Sendable {
        var stamp: Date
        var files: Int
        var byPackage: [String: [Advisory]]
    }
    let index = Mutex<Index?>(nil)

    public init(directory: String) { self.directory = directory }

    static func key(_ ecosystem: String, _ name: String) -> String {
        ecosystem.lowercased() + "\u{0}" + (ecosystem == "PyPI" ? name.lowercased().replacingOccurrences(of: "_", with: "-") : name)
    }

    /// Advisories by package, reloaded when the directory's modification time or file count changes.
    func current() throws -> [String: [Advisory]] {
        let fm = FileManager.default
        let attrs = try fm.attributesOfItem(atPath: directory)
        let stamp = attrs[.modificationDate] as? Date ?? .distantPast
        let names = try fm.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".json") }
        if let i = index.withLock({ $0 }), i.stamp == stamp, i.files == names.count { return i.byPackage }
        var by: [String: [Advisory]] = [:]
        for n in names {
            guard let data = fm.contents(atPath: directory + "/" + n), data.count < 8 << 20,
                let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
            else { continue }
            for (k, a) in Self.parse(o) { by[k, default: []].append(a) }
        }
        index.withLock { $0 = Index(stamp: stamp, files: names.count, byPackage: by) }
        return by
    }

    static func parse(_ o: [String: Any]) -> [(String, Advisory)] {
        guard let id = o["id"] as? String, o["withdrawn"] == nil else { return [] }
        let aliases = o["aliases"] as? [String] ?? []
        let summary = (o["summary"] as? String) ?? (o["details"] as? String).map { String($0.prefix(200)) } ?? id
        var severity = "medium"
        if let s = (o["database_specific"] as? [String: Any])?["severity"] as? String {
            switch s.uppercased() {
            case "CRITICAL": severity = "critical"
            case "HIGH": severity = "high"
            case "LOW": severity = "low"
            default: severity = "medium"
            }
        }
        var out: [(String, Advisory)] = []
        for case let affected as [String: Any] in o["affected"] as? [Any] ?? [] {
            guard let pkg = affected["package"] as? [String: Any], let eco = pkg["ecosystem"] as? String, let name = pkg["name"] as? String
            else { continue }
            var ranges: [(String, String?)] = []
            for case let r as [String: Any] in affected["ranges"] as? [Any] ?? [] where (r["type"] as? String) != "GIT" {
                var introduced: String? = nil
                for case let e as [String: String] in r["events"] as? [Any] ?? [] {
                    if let i = e["introduced"] {
                        if let open = introduced { ranges.append((open, nil)) }
                        introduced = i
                    } else if let f = e["fixed"], let i = introduced {
                        ranges.append((i, f))
                        introduced = nil
                    } else if let l = e["last_affected"], let i = introduced {
                        ranges.append((i, l + ".\u{10FFFF}"))
                        introduced = nil
                    }
                }
                if let open = introduced { ranges.append((open, nil)) }
            }
            let versions = Set(affected["versions"] as? [String] ?? [])
            out.append(
                (
                    key(eco.split(separator: ":").first.map(String.init) ?? eco, name),
                    Advisory(id: id, aliases: aliases, summary: summary, severity: severity, ranges: ranges, versions: versions)
                ))
        }
        return out
    }

    /// The advisories affecting a component.
    public func advisories(for c: Component) throws -> [Advisory] {
        guard let v = c.version else { return [] }
        return (try current()[Self.key(c.ecosystem, c.name)] ?? []).filter { $0.affects(v) }
    }
}

/// The `sbom_scan`: every lockfile of the branch's tree read into components, a CycloneDX 1.5 document of
/// them, and one `repo.dependency` resource per component with known vulnerabilities (when an OSV export is
/// configured).
public enum RepoSBOMScan {
    public static let maxLockfileBytes = 32 << 20

    public static func run(
        dir: String, branch: String, head: String, git: Git, osv: OSVDatabase?, account: String
    ) throws -> (resources: [Resource], components: Int, vulnerable: Int) {
        var lockfiles: [(blob: String, path: String)] = []
        let tree = try git.output(["ls-tree", "-r", "-z", "--full-tree", head], cwd: dir, limit: 256 << 20)
        for entry in tree.split(separator: 0) {
            guard let tab = entry.firstIndex(of: 9) else { continue }
            let meta = entry[entry.startIndex..<tab].split(separator: 32)
            let path = String(decoding: entry[(tab + 1)...], as: UTF8.self)
            guard meta.count == 3, meta[1].elementsEqual("blob".utf8), !meta[0].elementsEqual("120000".utf8),
                Lockfiles.reader(for: path) != nil, !path.contains("node_modules/")
            else { continue }
            lockfiles.append((String(decoding: meta[2], as: UTF8.self), path))
        }
        var components: [Component] = []
        var reader = BatchReader()
        var index = 0
        let wanted = lockfiles.map(\.blob).joined(separator: "\n") + "\n"
        if !lockfiles.isEmpty {
            try git.run(["cat-file", "--batch"], cwd: dir, stdin: Data(wanted.utf8)) { chunk in
                try reader.feed(chunk) { _, content in
                    defer { index += 1 }
                    guard index < lockfiles.count, content.count <= maxLockfileBytes else { return }
                    let path = lockfiles[index].path
                    guard let read = Lockfiles.reader(for: path) else { return }
                    components += read(String(decoding: content, as: UTF8.self), path)
                }
            }
        }
        // One entry per (ecosystem, name, version): the same package pinned in two lockfiles is one component.
        var unique: [String: Component] = [:]
        for c in components { unique[c.purl] = unique[c.purl] ?? c }
        let sorted = unique.values.sorted { $0.purl < $1.purl }
        var resources: [Resource] = []
        var vulnerabilities: [[String: JSONValue]] = []
        for c in sorted {
            guard let advisories = try osv?.advisories(for: c), !advisories.isEmpty, let version = c.version else { continue }
            let order = ["low": 0, "medium": 1, "high": 2, "critical": 3]
            let worst = advisories.max { order[$0.severity, default: 1] < order[$1.severity, default: 1] }!
            let fixed = advisories.compactMap { $0.firstFixed(after: version) }.max { Versions.compare($0, $1) < 0 }
            let ids = advisories.map(\.id).sorted()
            resources.append(
                Resource(
                    provider: "repo", account: account, region: "global", service: "repo", type: "repo.dependency",
                    id: "repo:\(account)/\(c.file)#\(c.purl)", name: "\(c.name)@\(version)",
                    attributes: [
                        "package": .string(c.name), "version": .string(version), "ecosystem": .string(c.ecosystem), "purl": .string(c.purl),
                        "file": .string(c.file), "advisories": .array(ids.map(JSONValue.string)),
                        "aliases": .array(Array(Set(advisories.flatMap(\.aliases))).sorted().map(JSONValue.string)),
                        "vuln_severity": .string(worst.severity), "summary": .string(worst.summary),
                        "fixed_version": fixed.map(JSONValue.string) ?? .null, "branch": .string(branch), "vulnerable": .bool(true),
                    ]))
            for a in advisories {
                vulnerabilities.append([
                    "id": .string(a.id), "source": .object(["name": .string("OSV"), "url": .string("https://osv.dev/vulnerability/\(a.id)")]),
                    "ratings": .array([.object(["severity": .string(a.severity == "medium" ? "medium" : a.severity), "method": .string("other")])]),
                    "description": .string(a.summary), "affects": .array([.object(["ref": .string(c.purl)])]),
                    "recommendation": .string(a.firstFixed(after: version).map { "upgrade to \($0)" } ?? "no fixed version is known"),
                ])
            }
        }
        let document: JSONValue = .object([
            "bomFormat": .string("CycloneDX"), "specVersion": .string("1.5"), "version": .number(1),
            "serialNumber": .string("urn:uuid:" + UUID().uuidString.lowercased()),
            "metadata": .object([
                "timestamp": .string(ISO8601DateFormatter().string(from: Date())),
                "tools": .object(["components": .array([.object(["type": .string("application"), "name": .string("vigil")])])]),
                "component": .object([
                    "type": .string("application"), "name": .string(account), "version": .string(head), "bom-ref": .string("repo:\(account)"),
                ]),
                "properties": .array([.object(["name": .string("vigil:branch"), "value": .string(branch)])]),
            ]),
            "components": .array(
                sorted.map { c in
                    var o: [String: JSONValue] = [
                        "type": .string("library"), "name": .string(c.name), "purl": .string(c.purl), "bom-ref": .string(c.purl),
                        "properties": .array([
                            .object(["name": .string("vigil:lockfile"), "value": .string(c.file)]),
                            .object(["name": .string("vigil:ecosystem"), "value": .string(c.ecosystem)]),
                        ]),
                    ]
                    if let v = c.version { o["version"] = .string(v) }
                    return .object(o)
                }),
            "vulnerabilities": .array(vulnerabilities.map(JSONValue.object)),
        ])
        resources.append(
            Resource(
                provider: "repo", account: account, region: "global", service: "repo", type: "repo.sbom", id: "repo:\(account)#sbom",
                name: "\(account) SBOM",
                attributes: [
                    "branch": .string(branch), "head": .string(head), "lockfiles": .array(lockfiles.map { .string($0.path) }),
                    "components": .number(Double(sorted.count)), "vulnerable_components": .number(Double(resources.count)),
                    "osv": .bool(osv != nil), "cyclonedx": document,
                ]))
        return (resources, sorted.count, resources.count - 1)
    }
}
