import Foundation
import Net
import ScanEngine
import VigilCore

/// Facts from the site's answers: transport, security headers, banners, CORS, cookies.
enum WebChecks {
    static func host(of url: String) -> String? { URL(string: url)?.host?.lowercased() }

    /// The site resource: where the first request ended and what its headers say.
    static func site(origin: String, host: String, chain: [WebResponse], final: WebResponse, isTLS: Bool) -> Resource {
        var a: [String: JSONValue] = [
            "url": .string(chain.first?.url ?? origin), "final_url": .string(final.url), "status": .number(Double(final.status)),
            "scheme": .string(isTLS ? "https" : "http"), "redirects": .number(Double(chain.count - 1)),
        ]
        let finalHost = Self.host(of: final.url) ?? host
        a["redirects_to_other_host"] = .bool(finalHost != host.lowercased())
        a["redirect_target_host"] = .string(finalHost)
        let finalTLS = final.url.lowercased().hasPrefix("https://")
        a["final_is_https"] = .bool(finalTLS)
        // Headers are judged on the page the visitor lands on, if it is HTML (an API's JSON is not framed or styled).
        let type = final.header("content-type")?.lowercased() ?? ""
        a["is_html"] = .bool(type.contains("text/html") || (type.isEmpty && final.text.lowercased().contains("<html")))
        a.merge(headers(final, isTLS: finalTLS)) { $1 }
        return WebScan.resource("site", id: origin, name: origin, host: host, a)
    }

    static func headers(_ r: WebResponse, isTLS: Bool) -> [String: JSONValue] {
        var a: [String: JSONValue] = [:]
        // HSTS (only meaningful, and only honoured, over HTTPS).
        if isTLS {
            let hsts = r.header("strict-transport-security")
            let directives = (hsts ?? "").lowercased().split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            let maxAge = directives.first { $0.hasPrefix("max-age") }.flatMap {
                Int($0.split(separator: "=").last?.trimmingCharacters(in: .init(charactersIn: "\" ")) ?? "")
            }
            a["hsts"] = [
                "present": .bool(hsts != nil && maxAge != nil), "max_age": .number(Double(maxAge ?? 0)),
                "include_subdomains": .bool(directives.contains("includesubdomains")), "preload": .bool(directives.contains("preload")),
            ]
        }
        // CSP: script-src (or default-src) allowing inline script without a nonce or hash, or any host.
        let csp = r.all("content-security-policy").joined(separator: ",")
        let policy = CSP(csp)
        let scripts = policy.directive("script-src") ?? policy.directive("default-src")
        let hasNonceOrHash =
            scripts?.contains { $0.hasPrefix("'nonce-") || $0.hasPrefix("'sha256-") || $0.hasPrefix("'sha384-") || $0.hasPrefix("'sha512-") } ?? false
        let strictDynamic = scripts?.contains("'strict-dynamic'") ?? false
        a["csp"] = [
            "present": .bool(!csp.isEmpty), "script_src_defined": .bool(scripts != nil),
            "script_unsafe_inline": .bool((scripts?.contains("'unsafe-inline'") ?? false) && !hasNonceOrHash),
            "script_unsafe_eval": .bool(scripts?.contains("'unsafe-eval'") ?? false),
            "script_wildcard": .bool(
                !strictDynamic && (scripts?.contains { ["*", "http:", "https:", "data:", "http://*", "https://*"].contains($0) } ?? false)),
            "frame_ancestors": .bool(policy.directive("frame-ancestors") != nil),
        ]
        let xfo = r.header("x-frame-options")?.lowercased().trimmingCharacters(in: .whitespaces)
        a["frame_protection"] = .bool(policy.directive("frame-ancestors") != nil || xfo == "deny" || xfo == "sameorigin")
        a["x_content_type_options"] = .bool(r.header("x-content-type-options")?.lowercased().trimmingCharacters(in: .whitespaces) == "nosniff")
        let referrer = r.header("referrer-policy")?.lowercased().split(separator: ",").last?.trimmingCharacters(in: .whitespaces)
        a["referrer_policy"] = .string(referrer ?? "")
        a["referrer_policy_unsafe"] = .bool(referrer == "unsafe-url" || referrer == "no-referrer-when-downgrade")
        a["permissions_policy"] = .bool(r.header("permissions-policy") != nil)
        a["coop"] = .string(r.header("cross-origin-opener-policy")?.lowercased() ?? "")
        a["corp"] = .string(r.header("cross-origin-resource-policy")?.lowercased() ?? "")
        // Version banners: a product with a version number in a header that only advertises it.
        var banners: [JSONValue] = []
        for name in ["server", "x-powered-by", "x-aspnet-version", "x-aspnetmvc-version", "x-generator", "x-runtime", "x-version"] {
            for v in r.all(name) where v.range(of: #"\d+\.\d+"#, options: .regularExpression) != nil || name.hasPrefix("x-aspnet") {
                banners.append(.string("\(name): \(v)"))
            }
        }
        a["version_banners"] = .array(banners)
        return a
    }

    /// Plain HTTP on the site's host: content served without a redirect to HTTPS. An HTTP-only target
    /// is itself the finding.
    static func plainHTTP(host: String, port: Int, isTLS: Bool, client: WebClient) throws -> [String: JSONValue] {
        let h = host.contains(":") ? "[\(host)]" : host
        let url = "http://\(h)\(port == 80 ? "" : ":\(port)")/"
        let first: WebResponse
        do { first = try client.send("GET", url, maxBody: 65536) } catch {
            // Nothing listens on plain HTTP: nothing is served insecurely.
            return ["http": ["checked": true, "listening": false, "serves_content": false, "redirects_to_https": false]]
        }
        let location = first.location.flatMap { URL(string: $0, relativeTo: URL(string: url))?.absoluteString } ?? ""
        let toHTTPS = location.lowercased().hasPrefix("https://")
        let serves = (200..<300).contains(first.status) && !first.body.isEmpty
        return [
            "http": [
                "checked": true, "listening": true, "serves_content": .bool(serves), "redirects_to_https": .bool(toHTTPS),
                "status": .number(Double(first.status)),
            ]
        ]
    }

    static let probeOrigin = "https://vigil-cors-probe.invalid"

    /// CORS: an arbitrary Origin reflected with credentials, `*` with credentials, `null` trusted.
    static func cors(origin: String, client: WebClient) throws -> [String: JSONValue] {
        let evil = try client.send("GET", origin + "/", headers: ["Origin": probeOrigin], maxBody: 4096)
        let acao = evil.header("access-control-allow-origin") ?? ""
        let credentials = evil.header("access-control-allow-credentials")?.lowercased() == "true"
        let null = try client.send("GET", origin + "/", headers: ["Origin": "null"], maxBody: 4096)
        let nullACAO = null.header("access-control-allow-origin") ?? ""
        return [
            "cors": [
                "reflects_origin": .bool(acao == probeOrigin), "reflects_origin_with_credentials": .bool(acao == probeOrigin && credentials),
                "wildcard": .bool(acao == "*"), "wildcard_with_credentials": .bool(acao == "*" && credentials),
                "null_origin_allowed": .bool(nullACAO == "null"),
            ]
        ]
    }

    /// Flash and Silverlight cross-domain policies that let any site read responses.
    static func policyFiles(origin: String, client: WebClient) throws -> [String: JSONValue] {
        let cd = try client.send("GET", origin + "/crossdomain.xml", maxBody: 65536)
        let cap = try client.send("GET", origin + "/clientaccesspolicy.xml", maxBody: 65536)
        let cdWild = cd.status == 200 && cd.text.range(of: #"<allow-access-from[^>]*domain\s*=\s*["']\*["']"#, options: .regularExpression) != nil
        let capWild = cap.status == 200 && cap.text.range(of: #"<domain[^>]*uri\s*=\s*["']\*["']"#, options: .regularExpression) != nil
        return ["crossdomain_wildcard": .bool(cdWild), "clientaccesspolicy_wildcard": .bool(capWild)]
    }

    static let sessionLike = try! NSRegularExpression(pattern: "(?i)(sess|sid|auth|token|jwt|login|remember|identity|connect\\.sid)")

    /// Every cookie the site set on the way to its page.
    static func cookies(_ chain: [WebResponse], origin: String, host: String, isTLS: Bool) -> [Resource] {
        var out: [String: Resource] = [:]
        for r in chain {
            for raw in r.all("set-cookie") {
                let parts = raw.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
                guard let first = parts.first, let eq = first.firstIndex(of: "=") else { continue }
                let name = String(first[..<eq])
                var attrs: [String: String] = [:]
                for p in parts.dropFirst() {
                    let kv = p.split(separator: "=", maxSplits: 1)
                    attrs[kv[0].lowercased()] = kv.count > 1 ? String(kv[1]) : ""
                }
                let secure = attrs["secure"] != nil
                let sameSite = attrs["samesite"]?.lowercased() ?? ""
                let session = sessionLike.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil
                let hostPrefixOK = !name.hasPrefix("__Host-") || (secure && attrs["path"] == "/" && attrs["domain"] == nil)
                let securePrefixOK = !name.hasPrefix("__Secure-") || secure
                let a: [String: JSONValue] = [
                    "name": .string(name), "secure": .bool(secure), "http_only": .bool(attrs["httponly"] != nil), "same_site": .string(sameSite),
                    "session_like": .bool(session), "site_is_https": .bool(isTLS), "prefix_ok": .bool(hostPrefixOK && securePrefixOK),
                    "same_site_none_without_secure": .bool(sameSite == "none" && !secure), "set_by": .string(r.url),
                ]
                out[name] = WebScan.resource("cookie", id: "\(origin)#cookie:\(name)", name: name, host: host, a)
            }
        }
        return out.keys.sorted().compactMap { out[$0] }
    }
}

/// A Content-Security-Policy's directives (the first policy that sets a directive wins, as browsers
/// enforce every policy; for the checks here the first is what matters).
struct CSP {
    var directives: [String: [String]] = [:]

    init(_ header: String) {
        for policy in header.split(separator: ",") {
            for d in policy.split(separator: ";") {
                let words = d.split(whereSeparator: { $0 == " " || $0 == "\t" }).map { String($0) }
                guard let name = words.first?.lowercased(), directives[name] == nil else { continue }
                directives[name] = words.dropFirst().map { $0.hasPrefix("'") ? $0.lowercased() : $0 }
            }
        }
    }

    func directive(_ name: String) -> [String]? { directives[name] }
}
