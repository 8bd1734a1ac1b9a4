import Foundation
import Net
import VigilCore

/// Active probes (verified domains only): requests a browser would not send on its own, each one
/// harmless — TRACE echoing the request (cross-site tracing), a redirect parameter sending visitors to any
/// host (open redirect), and a marker with HTML metacharacters coming back unescaped (reflected input).
enum ActiveChecks {
    static let redirectParams = ["next", "url", "redirect", "redirect_uri", "return", "returnTo", "continue", "dest"]
    static let probeHost = "vigil-redirect-probe.invalid"

    static func run(origin: String, client: WebClient) throws -> [String: JSONValue] {
        let marker = "X-Vigil-Trace-\(UUID().uuidString.prefix(8))"
        let trace = try client.send("TRACE", origin + "/", headers: ["X-Vigil-Probe": marker], maxBody: 16384)
        let traceEnabled = (200..<300).contains(trace.status) && trace.text.contains(marker)
        var openRedirect = ""
        for p in redirectParams {
            let r = try client.send("GET", origin + "/?\(p)=https%3A%2F%2F\(probeHost)%2Fx", maxBody: 4096)
            if let loc = r.location, let host = URL(string: loc, relativeTo: URL(string: origin))?.host, host.lowercased() == probeHost {
                openRedirect = p
                break
            }
        }
        let token = "vgl\(UUID().uuidString.prefix(6).lowercased())"
        let reflected = try client.send("GET", origin + "/?q=%3C\(token)%3E%22&search=%3C\(token)%3E%22", maxBody: 1 << 20)
        let type = reflected.header("content-type")?.lowercased() ?? ""
        let unescaped = (type.contains("html") || type.isEmpty) && reflected.text.contains("<\(token)>")
        return [
            "active": [
                "checked": true, "trace_enabled": .bool(traceEnabled), "open_redirect": .bool(!openRedirect.isEmpty),
                "open_redirect_param": .string(openRedirect), "reflected_unescaped": .bool(unescaped),
            ]
        ]
    }
}
