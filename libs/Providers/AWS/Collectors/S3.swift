import Foundation
import ScanEngine
import VigilCore

enum S3Collector {
    static let publicGroups = ["http://acs.amazonaws.com/groups/global/AllUsers", "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"]

    @Sendable static func collect(_ ctx: CollectContext) async throws -> [Resource] {
        let c = ctx.client
        let home = ctx.region == "global" ? "us-east-1" : ctx.region
        let list = try await c.restXML(service: "s3", region: home, method: "GET", path: "/")
        let names = (list.xml?.first("Buckets")?.children ?? []).compactMap { $0["Name"] }
        var out = try await Concurrently.map(names, width: ctx.width) { name in try await bucket(name, ctx: ctx, home: home) }
        if let account = try await accountSettings(ctx, home: home) { out.append(account) }
        return out
    }

    /// The account-level Block Public Access (S3 Control); nil when the endpoint does not offer it.
    static func accountSettings(_ ctx: CollectContext, home: String) async throws -> Resource? {
        let flags = ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"]
        let r: (status: Int, xml: XMLNode?)?
        do {
            r = try await optional(["NoSuchPublicAccessBlockConfiguration"]) {
                try await ctx.client.restXML(
                    service: "s3", region: home, method: "GET", path: "/v20180820/configuration/publicAccessBlock",
                    headers: ["x-amz-account-id": ctx.account])
            }
        } catch let e as AWSError where e.isUnsupportedByEndpoint || e.status == 405 || e.status == 501 {
            return nil
        }
        var values: [String: JSONValue] = [:]
        for f in flags { values[snake(f)] = .bool(r?.xml?.first(f)?.text == "true") }
        values["all_enabled"] = .bool(flags.allSatisfy { r?.xml?.first($0)?.text == "true" })
        return ctx.resource(
            "s3", "aws.s3.account_settings", id: "arn:aws:s3:::account/\(ctx.account)", name: "s3-account-\(ctx.account)", region: "global",
            ["public_access_block": .object(values)])
    }

    static func bucket(_ name: String, ctx: CollectContext, home: String) async throws -> Resource {
        let c = ctx.client
        let path = "/\(name)"
        let location = try await optional([]) {
            try await c.restXML(service: "s3", region: home, method: "GET", path: path, query: [("location", "")])
        }
        var region = location?.xml?.first("LocationConstraint")?.text ?? ""
        if region.isEmpty { region = "us-east-1" } else if region == "EU" { region = "eu-west-1" }
        var a: [String: JSONValue] = ["bucket_region": .string(region)]

        let pab = try await optional(["NoSuchPublicAccessBlockConfiguration"]) {
            try await c.restXML(service: "s3", region: region, method: "GET", path: path, query: [("publicAccessBlock", "")])
        }
        let flags = ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"]
        var pabValues: [String: JSONValue] = [:]
        for f in flags { pabValues[snake(f)] = .bool(pab?.xml?.first(f)?.text == "true") }
        pabValues["all_enabled"] = .bool(flags.allSatisfy { pab?.xml?.first($0)?.text == "true" })
        a["public_access_block"] = .object(pabValues)

        let acl = try await c.restXML(service: "s3", region: region, method: "GET", path: path, query: [("acl", "")])
        var read = false
        var write = false
        for g in acl.xml?.all("Grant") ?? [] {
            guard let uri = g.first("URI")?.text, publicGroups.contains(uri) else { continue }
            let perm = g.first("Permission")?.text ?? ""
            if ["READ", "FULL_CONTROL"].contains(perm) { read = true }
            if ["WRITE", "WRITE_ACP", "FULL_CONTROL"].contains(perm) { write = true }
        }
        a["acl_public_read"] = .bool(read)
        a["acl_public_write"] = .bool(write)

        let policy = try await optional(["NoSuchBucketPolicy"]) {
            try await c.rest(service: "s3", region: region, method: "GET", path: path, query: [("policy", "")])
        }
        let facts = PolicyFacts(document: policy?.body, ownAccount: ctx.account)
        a["has_policy"] = .bool(policy?.body.isEmpty == false)
        a["policy_public"] = .bool(facts.allowsPublicPrincipal)
        a["policy_denies_insecure_transport"] = .bool(facts.deniesInsecureTransport)

        let enc = try await optional(["ServerSideEncryptionConfigurationNotFoundError"]) {
            try await c.restXML(service: "s3", region: region, method: "GET", path: path, query: [("encryption", "")])
        }
        let algorithm = enc?.xml?.first("SSEAlgorithm")?.text
        a["encryption"] = .object(["enabled": .bool(algorithm != nil), "algorithm": algorithm.json])

        let ver = try await c.restXML(service: "s3", region: region, method: "GET", path: path, query: [("versioning", "")])
        a["versioning"] = .string(ver.xml?.first("Status")?.text ?? "Disabled")
        a["mfa_delete"] = .bool(ver.xml?.first("MfaDelete")?.text == "Enabled")

        // Lifecycle rules, and what old versions cost when nothing expires them.
        let lifecycle = try await optional(["NoSuchLifecycleConfiguration"]) {
            try await c.restXML(service: "s3", region: region, method: "GET", path: path, query: [("lifecycle", "")])
        }
        let rules = lifecycle?.xml?.all("Rule") ?? []
        a["lifecycle_rules"] = .number(Double(rules.count))
        a["noncurrent_expiration"] = .bool(
            rules.contains { $0.first("NoncurrentVersionExpiration") != nil && $0.first("Status")?.text != "Disabled" })
        if a["versioning"]?.stringValue != "Disabled" {
            var bytes = 0.0
            var marker: [(String, String)] = []
            var truncated = false
            for _ in 0..<20 {
                let page = try await c.restXML(service: "s3", region: region, method: "GET", path: path, query: [("versions", "")] + marker)
                for v in page.xml?.all("Version") ?? [] where v.first("IsLatest")?.text == "false" {
                    bytes += Double(v.first("Size")?.text ?? "") ?? 0
                }
                truncated = page.xml?.first("IsTruncated")?.text == "true"
                guard truncated, let k = page.xml?.first("NextKeyMarker")?.text else { break }
                marker = [("key-marker", k)] + (page.xml?.first("NextVersionIdMarker").map { [("version-id-marker", $0.text)] } ?? [])
            }
            a["noncurrent_gib"] = .number(round1(bytes / 1_073_741_824))
            a["noncurrent_counted_all"] = .bool(!truncated)
            a["noncurrent_monthly_cost_usd"] = .number(money(bytes / 1_073_741_824 * Prices.s3GB(region: region)))
        }

        let logging = try await c.restXML(service: "s3", region: region, method: "GET", path: path, query: [("logging", "")])
        a["logging_enabled"] = .bool(logging.xml?.first("LoggingEnabled") != nil)

        let tagSet = try await optional(["NoSuchTagSet"]) {
            try await c.restXML(service: "s3", region: region, method: "GET", path: path, query: [("tagging", "")])
        }
        var t: [String: String] = [:]
        for tag in tagSet?.xml?.all("Tag") ?? [] { if let k = tag["Key"] { t[k] = tag["Value"] ?? "" } }
        return ctx.resource("s3", "aws.s3.bucket", id: "arn:aws:s3:::\(name)", name: name, region: region, tags: t, a)
    }

    static func snake(_ s: String) -> String {
        var out = ""
        for (i, ch) in s.enumerated() {
            if ch.isUppercase && i > 0 { out += "_" }
            out += ch.lowercased()
        }
        return out
    }
}
