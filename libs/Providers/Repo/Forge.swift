import Foundation
import Net
import VigilCore

/// Code forges whose API opens a pull request for a pushed branch: GitHub (`POST /repos/{owner}/{repo}/pulls`) and
/// GitLab (`POST /projects/{path}/merge_requests`). github.com and gitlab.com are known; other hosts (GitHub
/// Enterprise, self-managed GitLab) are named by the operator: `VIGIL_FORGE_HOSTS=git.corp:443=gitlab@https://git.corp/api/v4`.
public struct ForgeSettings: Sendable {
    public struct Host: Sendable, Equatable {
        public var kind: String
        public var api: String
    }
    /// `host` or `host:port` of a clone URL → the forge there.
    public var hosts: [String: Host]

    public init(githubAPI: String = "https://api.github.com", gitlabAPI: String = "https://gitlab.com/api/v4", extra: String = "") {
        hosts = ["github.com": Host(kind: "github", api: githubAPI), "gitlab.com": Host(kind: "gitlab", api: gitlabAPI)]
        for entry in extra.split(separator: ",") {
            let parts = entry.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let value = parts[1].split(separator: "@", maxSplits: 1)
            guard value.count == 2, ["github", "gitlab"].contains(String(value[0])) else { continue }
            hosts[parts[0].trimmingCharacters(in: .whitespaces).lowercased()] = Host(kind: String(value[0]), api: String(value[1]))
        }
    }
}

public enum Forge {
    public struct Opened: Sendable, Equatable {
        public var provider: String
        public var url: String
        public var number: Int
    }

    /// The forge and project path (`owner/repo`, `group/sub/repo`) of a clone URL, when the host is a known forge.
    public static func identify(_ cloneURL: String, _ settings: ForgeSettings) -> (host: ForgeSettings.Host, project: String)? {
        var host = ""
        var path = ""
        if let scp = cloneURL.firstMatch(of: /^[A-Za-z0-9._-]+@([A-Za-z0-9.-]+):(.+)$/) {
            host = String(scp.1).lowercased()
            path = String(scp.2)
        } else if let u = URL(string: cloneURL), let h = u.host {
            host = h.lowercased()
            path = u.path
            if let port = u.port, settings.hosts["\(host):\(port)"] != nil { host = "\(host):\(port)" }
        }
        guard let forge = settings.hosts[host] else { return nil }
        var project = path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if project.hasSuffix(".git") { project = String(project.dropLast(4)) }
        guard project.split(separator: "/").count >= 2, !project.contains("..") else { return nil }
        return (forge, project)
    }

    /// Opens the pull (merge) request with the repository's token. Blocking.
    public static func open(
        _ host: ForgeSettings.Host, project: String, token: String, branch: String, base: String, title: String, body: String, http: OutboundHTTP
    ) throws -> Opened {
        let url: String
        var headers = ["Content-Type": "application/json", "Accept": "application/json"]
        let payload: [String: String]
        let api = host.api.hasSuffix("/") ? String(host.api.dropLast()) : host.api
        if host.kind == "github" {
            url = "\(api)/repos/\(project)/pulls"
            headers["Authorization"] = "Bearer \(token)"
            headers["Accept"] = "application/vnd.github+json"
            headers["X-GitHub-Api-Version"] = "2022-11-28"
            payload = ["title": title, "head": branch, "base": base, "body": body]
        } else {
            url = "\(api)/projects/\(project.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? project)/merge_requests"
            headers["PRIVATE-TOKEN"] = token
            payload = ["title": title, "source_branch": branch, "target_branch": base, "description": body]
        }
        let data = try JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys])
        let r = try http.send(method: "POST", url: url, headers: headers, body: Array(data), maxBody: 512 << 10)
        guard r.status == 201 || r.status == 200 else {
            throw RepoError("the \(host.kind == "github" ? "GitHub" : "GitLab") API answered \(r.status)")
        }
        guard let o = try? JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any],
            let link = (o["html_url"] ?? o["web_url"]) as? String, let number = (o["number"] ?? o["iid"]) as? Int
        else { throw RepoError("the forge's answer names no pull request") }
        return Opened(provider: host.kind, url: link, number: number)
    }
}
