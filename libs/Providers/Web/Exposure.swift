import Foundation
import Net
import ScanEngine
import VigilCore

/// Well-known paths that should never be public. A path counts as exposed only when its body proves
/// what it is (`[core]` in `.git/config`, SQL in a dump, the magic bytes of an archive) and that body
/// is not the site's answer to any unknown path (the soft-404, learnt first).
enum Exposure {
    struct Probe {
        var kind: String
        var path: String
        /// A regular expression over the body's text, or magic bytes at its start.
        var proof: String?
        var magic: [UInt8]?
    }

    static let probes: [Probe] = [
        Probe(kind: "git", path: "/.git/config", proof: #"(?m)^\s*\[core\]"#),
        Probe(kind: "git", path: "/.git/HEAD", proof: #"^ref: refs/[A-Za-z0-9._/-]+\s*$"#),
        Probe(
            kind: "env_file", path: "/.env",
            proof: #"(?m)^\s*(export\s+)?[A-Z][A-Z0-9_]{2,}\s*=\s*\S+.*\n(.*\n)*?\s*(export\s+)?[A-Z][A-Z0-9_]{2,}\s*="#),
        Probe(kind: "env_file", path: "/.env.production", proof: #"(?m)^\s*[A-Z][A-Z0-9_]{2,}\s*=\s*\S+"#),
        Probe(kind: "backup", path: "/backup.zip", magic: [0x50, 0x4B, 0x03, 0x04]),
        Probe(kind: "backup", path: "/backup.tar.gz", magic: [0x1F, 0x8B]),
        Probe(kind: "backup", path: "/site.zip", magic: [0x50, 0x4B, 0x03, 0x04]),
        Probe(kind: "database_dump", path: "/dump.sql", proof: #"(?i)(CREATE TABLE|INSERT INTO|-- MySQL dump|PostgreSQL database dump)"#),
        Probe(kind: "database_dump", path: "/backup.sql", proof: #"(?i)(CREATE TABLE|INSERT INTO|-- MySQL dump|PostgreSQL database dump)"#),
        Probe(kind: "database_dump", path: "/db.sql", proof: #"(?i)(CREATE TABLE|INSERT INTO|-- MySQL dump|PostgreSQL database dump)"#),
        Probe(kind: "config_backup", path: "/wp-config.php.bak", proof: #"DB_PASSWORD"#),
        Probe(kind: "config_backup", path: "/config.php.bak", proof: #"<\?php"#),
        Probe(kind: "server_status", path: "/server-status", proof: #"Apache Server Status|Server uptime"#),
        Probe(kind: "server_status", path: "/server-info", proof: #"Apache Server Information"#),
        Probe(kind: "server_status", path: "/nginx_status", proof: #"Active connections:\s*\d+"#),
        Probe(kind: "directory_listing", path: "/uploads/", proof: #"(?i)<title>\s*(Index of /|Directory listing for)"#),
        Probe(kind: "directory_listing", path: "/backup/", proof: #"(?i)<title>\s*(Index of /|Directory listing for)"#),
        Probe(kind: "directory_listing", path: "/static/", proof: #"(?i)<title>\s*(Index of /|Directory listing for)"#),
        Probe(kind: "ds_store", path: "/.DS_Store", magic: [0x00, 0x00, 0x00, 0x01, 0x42, 0x75, 0x64, 0x31]),
        Probe(kind: "admin_panel", path: "/phpmyadmin/", proof: #"(?i)<title>[^<]*phpMyAdmin"#),
        Probe(kind: "admin_panel", path: "/adminer.php", proof: #"(?i)<title>[^<]*Adminer"#),
        Probe(kind: "debug_endpoint", path: "/actuator/env", proof: #""propertySources"\s*:"#),
        Probe(kind: "debug_endpoint", path: "/phpinfo.php", proof: #"(?i)<title>phpinfo\(\)"#),
    ]

    static let kinds = [
        "git", "env_file", "backup", "database_dump", "config_backup", "server_status", "directory_listing", "ds_store",
        "admin_panel", "debug_endpoint", "source_map",
    ]

    static func proves(_ p: Probe, _ body: [UInt8]) -> Bool {
        if let magic = p.magic { return body.starts(with: magic) }
        guard let proof = p.proof else { return false }
        return String(decoding: body, as: UTF8.self).range(of: proof, options: .regularExpression) != nil
    }

    static func probe(origin: String, host: String, client: WebClient, content: Content.Found) throws -> [Resource] {
        // The site's answer to a path that cannot exist: a catch-all 200 page is not an exposure.
        let baseline = try client.send("GET", origin + "/vigil-\(UUID().uuidString.lowercased())-missing", maxBody: 262_144)
        let soft404 = (200..<300).contains(baseline.status)
        var hits: [String: (path: String, status: Int)] = [:]
        for p in probes where hits[p.kind] == nil {
            let r = try client.send("GET", origin + p.path, maxBody: 262_144)
            guard (200..<300).contains(r.status), proves(p, r.body) else { continue }
            if soft404 && (r.body == baseline.body || proves(p, baseline.body)) { continue }
            hits[p.kind] = (p.path, r.status)
        }
        // Source maps: one a script names and that was served, or `<script>.map` next to the first scripts.
        if let map = content.sourceMaps.first {
            hits["source_map"] = (String(map.dropFirst(origin.count)), 200)
        } else {
            for script in content.scripts.prefix(5) {
                let r = try client.send("GET", script + ".map", maxBody: 262_144)
                if r.status == 200, Content.sourceMapSources(r.body) != nil {
                    hits["source_map"] = (String(script.dropFirst(origin.count)) + ".map", 200)
                    break
                }
            }
        }
        return kinds.map { kind in
            let hit = hits[kind]
            return WebScan.resource(
                "exposure", id: "\(origin)#exposure:\(kind)", name: "\(kind) at \(origin)", host: host,
                [
                    "kind": .string(kind), "exposed": .bool(hit != nil), "path": .string(hit?.path ?? ""),
                    "url": .string(hit.map { origin + $0.path } ?? ""), "soft_404": .bool(soft404),
                ])
        }
    }
}
