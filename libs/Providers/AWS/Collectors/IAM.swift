import Foundation
import ScanEngine
import Synchronization
import VigilCore

enum IAMCollector {
    static let version = "2010-05-08"
    static let adminPolicy = "arn:aws:iam::aws:policy/AdministratorAccess"

    @Sendable static func collect(_ ctx: CollectContext) async throws -> [Resource] {
        let c = ctx.client
        @Sendable func q(_ action: String, _ params: [(String, String)] = []) async throws -> XMLNode {
            try await c.query(service: "iam", region: "us-east-1", action: action, version: version, params: params)
        }
        @Sendable func pages(_ action: String, _ params: [(String, String)] = []) async throws -> [XMLNode] {
            try await c.queryPages(
                service: "iam", region: "us-east-1", action: action, version: version, params: params,
                inToken: "Marker", outToken: "Marker")
        }
        var out: [Resource] = []

        // Account: root MFA/keys and the password policy.
        let summary = try await q("GetAccountSummary")
        var entries: [String: String] = [:]
        for e in summary.all("entry") { if let k = e["key"] { entries[k] = e["value"] } }
        let pp = try await optional(["NoSuchEntity"]) { try await q("GetAccountPasswordPolicy") }
        var policy: [String: JSONValue] = ["present": .bool(pp != nil)]
        if let p = pp?.first("PasswordPolicy") {
            if let n = Double(p["MinimumPasswordLength"] ?? "") { policy["minimum_length"] = .number(n) }
            if let n = Double(p["PasswordReusePrevention"] ?? "") { policy["reuse_prevention"] = .number(n) }
            if let n = Double(p["MaxPasswordAge"] ?? "") { policy["max_age_days"] = .number(n) }
        }
        var account: [String: JSONValue] = ["password_policy": .object(policy)]
        if let v = entries["AccountMFAEnabled"] { account["root_mfa_enabled"] = .bool(v == "1") }
        if let v = entries["AccountAccessKeysPresent"] { account["root_access_keys_present"] = .bool(v == "1") }
        out.append(ctx.resource("iam", "aws.iam.account", id: "arn:aws:iam::\(ctx.account):root", name: ctx.account, region: "global", account))

        // Customer-managed policies and whether they grant "*" on "*".
        var policies: [XMLNode] = []
        for page in try await pages("ListPolicies", [("Scope", "Local")]) { policies += page.list("Policies") }
        let policyFacts = try await Concurrently.map(policies, width: ctx.width) { p -> (String, Resource) in
            let arn = p["Arn"] ?? ""
            let doc = try await q("GetPolicyVersion", [("PolicyArn", arn), ("VersionId", p["DefaultVersionId"] ?? "v1")])
            let facts = PolicyFacts(document: doc.first("Document")?.text, ownAccount: ctx.account)
            return (
                arn,
                ctx.resource(
                    "iam", "aws.iam.policy", id: arn, name: p["PolicyName"] ?? arn, region: "global",
                    [
                        "grants_full_admin": .bool(facts.grantsFullAdmin),
                        "attachment_count": .number(Double(p["AttachmentCount"] ?? "") ?? 0),
                    ])
            )
        }
        out += policyFacts.map(\.1)
        let adminArns = Set(policyFacts.filter { $0.1.attributes["grants_full_admin"] == .bool(true) }.map(\.0) + [adminPolicy])

        // Groups' attached policies, looked up once per group.
        let groupAdmin = Mutex<[String: Bool]>([:])
        @Sendable func groupHasAdmin(_ g: String) async throws -> Bool {
            if let known = groupAdmin.withLock({ $0[g] }) { return known }
            let attached = try await pages("ListAttachedGroupPolicies", [("GroupName", g)]).flatMap { $0.list("AttachedPolicies") }
            var admin = attached.contains { adminArns.contains($0["PolicyArn"] ?? "") }
            if !admin {
                for name in try await pages("ListGroupPolicies", [("GroupName", g)]).flatMap({ $0.list("PolicyNames") }).map(\.text) {
                    let doc = try await q("GetGroupPolicy", [("GroupName", g), ("PolicyName", name)])
                    if PolicyFacts(document: doc.first("PolicyDocument")?.text).grantsFullAdmin { admin = true }
                }
            }
            groupAdmin.withLock { $0[g] = admin }
            return admin
        }

        // Users.
        var users: [XMLNode] = []
        for page in try await pages("ListUsers") { users += page.list("Users") }
        out += try await Concurrently.map(users, width: ctx.width) { u -> Resource in
            let name = u["UserName"] ?? ""
            let console = try await optional(["NoSuchEntity"]) { try await q("GetLoginProfile", [("UserName", name)]) } != nil
            let mfa = try await q("ListMFADevices", [("UserName", name)]).list("MFADevices")
            let keys = try await q("ListAccessKeys", [("UserName", name)]).list("AccessKeyMetadata")
            var active = 0
            var unused = 0
            var oldest: Double? = nil
            for k in keys where k["Status"] == "Active" {
                active += 1
                let age = Dates.days(since: Dates.parse(k["CreateDate"]), now: ctx.now) ?? 0
                oldest = max(oldest ?? 0, age)
                let used = try await q("GetAccessKeyLastUsed", [("AccessKeyId", k["AccessKeyId"] ?? "")])
                let lastUsed = Dates.days(since: Dates.parse(used.first("LastUsedDate")?.text), now: ctx.now)
                if age > 45 && (lastUsed ?? .infinity) > 45 { unused += 1 }
            }
            let attached = try await pages("ListAttachedUserPolicies", [("UserName", name)]).flatMap { $0.list("AttachedPolicies") }
            let inline = try await pages("ListUserPolicies", [("UserName", name)]).flatMap { $0.list("PolicyNames") }.map(\.text)
            var admin = attached.contains { adminArns.contains($0["PolicyArn"] ?? "") }
            for p in inline where !admin {
                let doc = try await q("GetUserPolicy", [("UserName", name), ("PolicyName", p)])
                if PolicyFacts(document: doc.first("PolicyDocument")?.text).grantsFullAdmin { admin = true }
            }
            let groups = try await pages("ListGroupsForUser", [("UserName", name)]).flatMap { $0.list("Groups") }.compactMap { $0["GroupName"] }
            for g in groups where !admin { admin = try await groupHasAdmin(g) }
            var a: [String: JSONValue] = [
                "console_access": .bool(console), "mfa_enabled": .bool(!mfa.isEmpty), "active_key_count": .number(Double(active)),
                "unused_active_key_count": .number(Double(unused)), "has_admin": .bool(admin),
                "direct_policy_count": .number(Double(attached.count + inline.count)),
                "groups": .array(groups.map { .string($0) }),
            ]
            if let oldest { a["oldest_active_key_age_days"] = .number(oldest) }
            if let d = Dates.days(since: Dates.parse(u["PasswordLastUsed"]), now: ctx.now) { a["password_last_used_days"] = .number(d) }
            return ctx.resource("iam", "aws.iam.user", id: u["Arn"] ?? name, name: name, region: "global", a)
        }

        // Roles (service-linked roles are AWS-managed and skipped).
        var roles: [XMLNode] = []
        for page in try await pages("ListRoles") { roles += page.list("Roles") }
        for role in roles where !(role["Path"] ?? "").hasPrefix("/aws-service-role/") {
            let name = role["RoleName"] ?? ""
            let trust = PolicyFacts(document: role["AssumeRolePolicyDocument"], ownAccount: ctx.account)
            out.append(
                ctx.resource(
                    "iam", "aws.iam.role", id: role["Arn"] ?? name, name: name, region: "global",
                    [
                        "trust_allows_any_principal": .bool(trust.allowsPublicPrincipal),
                        "trust_cross_account_without_external_id": .bool(trust.crossAccountWithoutExternalId),
                        "path": (role["Path"]).json,
                    ]))
        }
        return out
    }
}
