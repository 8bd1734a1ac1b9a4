import Foundation
import Net
import ScanEngine
import VigilCore

/// The site's content: the landing page, same-origin pages it links to (one level), the same-origin
/// scripts they load and the source maps those name. Each is scanned for secrets with the shared
/// detectors; HTTPS pages are checked for subresources loaded over plain HTTP.
enum Content {
    struct Found {
        var resources: [Resource] = []
        var mixedContent: [String] = []
        /// Same-origin script URLs (the exposure probes look for their source maps).
        var scripts: [String] = []
        /// Source maps that were served (public source code).
        var sourceMaps: [String] = []
    }

    static let tagAttr = try! NSRegularExpression(
        pattern: #"<(script|link|img|iframe|audio|video|source|embed|object|a)\b[^>]*?\s(src|href|data)\s*=\s*["']([^"'<>\s]+)["']"#,
        options: [.caseInsensitive])
    static let sourceMapComment = try! NSRegularExpression(pattern: #"[#@]\s*sourceMappingURL\s*=\s*(\S+)"#)

    /// (tag, attribute, value) of every URL-bearing attribute in an HTML page.
    static func links(_ html: String) -> [(tag: String, attr: String, value: String)] {
        let ns = html as NSString
        return tagAttr.matches(in: html, range: NSRange(location: 0, length: min(ns.length, 2_000_000))).prefix(5000).map {
            (ns.substring(with: $0.range(at: 1)).lowercased(), ns.substring(with: $0.range(at: 2)).lowercased(), ns.substring(with: $0.range(at: 3)))
        }
    }

    static func sameOrigin(_ url: String, _ origin: String) -> Bool {
        guard let u = URL(string: url), let o = URL(string: origin) else { return false }
        return u.scheme == o.scheme && u.host?.lowercased() == o.host?.lowercased() && u.port == o.port
    }

    static func resolve(_ value: String, against base: String) -> String? {
        guard !value.hasPrefix("data:"), !value.hasPrefix("javascript:"), !value.hasPrefix("mailto:"), !value.hasPrefix("#") else { return nil }
        guard let u = URL(string: value.replacingOccurrences(of: " ", with: "%20"), relativeTo: URL(string: base)) else { return nil }
        var c = URLComponents(url: u.absoluteURL, resolvingAgainstBaseURL: true)
        c?.fragment = nil
        return c?.url?.absoluteString
    }

    static func asset(_ url: String, kind: String, text: String, host: String, truncated: Bool) -> Resource {
        let secrets = SecretDetectors.scan(text)
        return WebScan.resource(
            "asset", id: url, name: url, host: host,
            [
                "url": .string(url), "kind": .string(kind), "bytes": .number(Double(text.utf8.count)), "truncated": .bool(truncated),
                "secrets": .array(
                    secrets.map {
                        [
                            "detector": .string($0.detector), "category": .string($0.category), "severity": .string($0.severity),
                            "line": .number(Double($0.line)), "preview": .string($0.preview),
                        ]
                    }),
                "secret_categories": .array(Array(Set(secrets.map(\.category))).sorted().map(JSONValue.string)),
            ])
    }

    static func crawl(origin: String, host: String, first: WebResponse, client: WebClient, limits: WebLimits, extraPaths: [String]) throws -> Found {
        var found = Found()
        var pages: [WebResponse] = [first]
        var queued: Set<String> = [first.url]
        var pageQueue: [String] = extraPaths.compactMap { resolve($0, against: origin + "/") }
        var scriptQueue: [String] = []
        var seenScripts: Set<String> = []
        var mixed: Set<String> = []
        var i = 0
        while i < pages.count {
            let page = pages[i]
            i += 1
            let html = page.text
            found.resources.append(asset(page.url, kind: "page", text: html, host: host, truncated: page.truncated))
            let pageTLS = page.url.lowercased().hasPrefix("https://")
            for l in links(html) {
                guard let abs = resolve(l.value, against: page.url) else { continue }
                // Subresources (not navigation links) fetched over plain HTTP by an HTTPS page.
                if pageTLS, l.tag != "a", !(l.tag == "link" && !isSubresourceLink(html, l.value)), abs.lowercased().hasPrefix("http://") {
                    mixed.insert(abs)
                }
                guard sameOrigin(abs, origin) else { continue }
                if l.tag == "script", seenScripts.insert(abs).inserted { scriptQueue.append(abs) }
                if l.tag == "a", i == 1, queued.insert(abs).inserted { pageQueue.append(abs) }
            }
            while pages.count < limits.pages, !pageQueue.isEmpty {
                let next = pageQueue.removeFirst()
                guard let r = try? client.send("GET", next), (200..<300).contains(r.status),
                    r.header("content-type")?.lowercased().contains("html") ?? true
                else { continue }
                pages.append(r)
                queued.insert(next)
            }
        }
        for script in scriptQueue.prefix(limits.scripts) {
            guard let r = try? client.send("GET", script), (200..<300).contains(r.status) else { continue }
            found.scripts.append(script)
            let text = r.text
            found.resources.append(asset(script, kind: "script", text: text, host: host, truncated: r.truncated))
            let ns = text as NSString
            let tail = ns.length > 4096 ? ns.substring(from: ns.length - 4096) : text
            if let m = sourceMapComment.firstMatch(in: tail, range: NSRange(location: 0, length: (tail as NSString).length)) {
                let ref = (tail as NSString).substring(with: m.range(at: 1))
                if let mapURL = resolve(ref, against: script), sameOrigin(mapURL, origin) {
                    if let map = try? client.send("GET", mapURL), map.status == 200, let sources = sourceMapSources(map.body) {
                        found.sourceMaps.append(mapURL)
                        found.resources.append(asset(mapURL, kind: "source_map", text: sources, host: host, truncated: map.truncated))
                    }
                }
            }
        }
        found.mixedContent = mixed.sorted()
        return found
    }

    /// `<link>` elements that load something (stylesheets, icons, preloads), as opposed to `rel=canonical`.
    static func isSubresourceLink(_ html: String, _ value: String) -> Bool {
        guard let r = html.range(of: value) else { return false }
        let start = html[..<r.lowerBound].range(of: "<link", options: [.backwards, .caseInsensitive])?.lowerBound ?? r.lowerBound
        let tag = html[start..<r.upperBound].lowercased()
        return ["stylesheet", "icon", "preload", "modulepreload", "prefetch", "manifest"].contains { tag.contains($0) }
    }

    /// The text of a source map's sources (or its whole body when it has none inline); nil when the
    /// body is not a source map (a soft-404 page).
    static func sourceMapSources(_ body: [UInt8]) -> String? {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any], obj["mappings"] != nil, obj["sources"] != nil else {
            return nil
        }
        let inline = (obj["sourcesContent"] as? [Any])?.compactMap { $0 as? String } ?? []
        return inline.isEmpty ? String(decoding: body, as: UTF8.self) : inline.joined(separator: "\n")
    }
}
