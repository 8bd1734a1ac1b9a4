import AWS
import Foundation
import ScanEngine
import VigilCore

/// IAM, KMS and CloudTrail fixes: stale access keys, admin policies, key rotation, log file validation.
extension FixActions {
    static func iamCall(_ action: String, _ params: [(String, String)], okErrors: [String]? = nil) -> APICall {
        .query("iam", "us-east-1", action, version: iam, params, okErrors: okErrors)
    }

    static func grantsAdmin(_ c: AWSClient, policyArn: String) async throws -> Bool {
        if policyArn.hasSuffix(":policy/AdministratorAccess") { return true }
        let p = try await c.query(service: "iam", region: "us-east-1", action: "GetPolicy", version: iam, params: [("PolicyArn", policyArn)])
        guard let v = p.first("DefaultVersionId")?.text else { return false }
        let doc = try await c.query(
            service: "iam", region: "us-east-1", action: "GetPolicyVersion", version: iam, params: [("PolicyArn", policyArn), ("VersionId", v)])
        return PolicyFacts(document: doc.first("Document")?.text).grantsFullAdmin
    }

    static let identityActions: [FixAction] = [
        FixAction(
            name: "iam.deactivate_stale_access_key", title: "Deactivate the user's stale access keys (old, unused, or beyond the newest one)",
            service: "iam", resourceType: "aws.iam.user",
            permissions: ["iam:ListAccessKeys", "iam:GetAccessKeyLastUsed", "iam:UpdateAccessKey"], rollbackPermissions: ["iam:UpdateAccessKey"],
            inspect: { c, t in
                let user = t.resourceName
                let keys = try await c.query(
                    service: "iam", region: "us-east-1", action: "ListAccessKeys", version: iam, params: [("UserName", user)]
                )
                .list("AccessKeyMetadata")
                var out: [JSONValue] = []
                for k in keys where k["Status"] == "Active" {
                    let id = k["AccessKeyId"] ?? ""
                    let used = try await c.query(
                        service: "iam", region: "us-east-1", action: "GetAccessKeyLastUsed", version: iam, params: [("AccessKeyId", id)])
                    let age = Dates.days(since: Dates.parse(k["CreateDate"]), now: Date()) ?? 0
                    let last = Dates.days(since: Dates.parse(used.first("LastUsedDate")?.text), now: Date())
                    out.append(
                        .object([
                            "access_key_id": .string(id), "age_days": .number(age.rounded()),
                            "last_used_days": last.map { .number($0.rounded()) } ?? .null,
                            "created": .string(k["CreateDate"] ?? ""),
                        ]))
                }
                return .object(["user": .string(user), "active_keys": .array(out)])
            },
            plan: { t, s in
                staleKeys(t, s).map { iamCall("UpdateAccessKey", [("UserName", t.resourceName), ("AccessKeyId", $0), ("Status", "Inactive")]) }
            },
            rollback: { t, s, _ in
                staleKeys(t, s).map { iamCall("UpdateAccessKey", [("UserName", t.resourceName), ("AccessKeyId", $0), ("Status", "Active")]) }
            }),
        FixAction(
            name: "iam.detach_admin_policy", title: "Take full administrator rights away from the user (detach, delete inline, leave admin groups)",
            service: "iam", resourceType: "aws.iam.user",
            permissions: [
                "iam:ListAttachedUserPolicies", "iam:ListUserPolicies", "iam:GetUserPolicy", "iam:ListGroupsForUser", "iam:GetPolicy",
                "iam:GetPolicyVersion", "iam:ListAttachedGroupPolicies", "iam:ListGroupPolicies", "iam:GetGroupPolicy",
                "iam:DetachUserPolicy", "iam:DeleteUserPolicy", "iam:RemoveUserFromGroup",
            ],
            rollbackPermissions: ["iam:AttachUserPolicy", "iam:PutUserPolicy", "iam:AddUserToGroup"],
            inspect: { c, t in
                let user = t.resourceName
                func q(_ a: String, _ p: [(String, String)]) async throws -> XMLNode {
                    try await c.query(service: "iam", region: "us-east-1", action: a, version: iam, params: p)
                }
                var attached: [JSONValue] = []
                var inline: [JSONValue] = []
                var groups: [JSONValue] = []
                for p in try await q("ListAttachedUserPolicies", [("UserName", user)]).list("AttachedPolicies") {
                    if let arn = p["PolicyArn"], try await grantsAdmin(c, policyArn: arn) { attached.append(.string(arn)) }
                }
                for name in try await q("ListUserPolicies", [("UserName", user)]).list("PolicyNames").map(\.text) {
                    let doc = try await q("GetUserPolicy", [("UserName", user), ("PolicyName", name)]).first("PolicyDocument")?.text
                    let text = doc.map { $0.removingPercentEncoding ?? $0 }
                    if PolicyFacts(document: text).grantsFullAdmin {
                        inline.append(.object(["name": .string(name), "document": .string(text ?? "")]))
                    }
                }
                for g in try await q("ListGroupsForUser", [("UserName", user)]).list("Groups").compactMap({ $0["GroupName"] }) {
                    var admin = false
                    for p in try await q("ListAttachedGroupPolicies", [("GroupName", g)]).list("AttachedPolicies") where !admin {
                        if let arn = p["PolicyArn"] { admin = try await grantsAdmin(c, policyArn: arn) }
                    }
                    for name in try await q("ListGroupPolicies", [("GroupName", g)]).list("PolicyNames").map(\.text) where !admin {
                        admin =
                            PolicyFacts(
                                document: try await q("GetGroupPolicy", [("GroupName", g), ("PolicyName", name)]).first("PolicyDocument")?.text
                            )
                            .grantsFullAdmin
                    }
                    if admin { groups.append(.string(g)) }
                }
                return .object([
                    "user": .string(user), "admin_policies": .array(attached), "admin_inline_policies": .array(inline),
                    "admin_groups": .array(groups),
                ])
            },
            plan: { t, s in
                let u = t.resourceName
                return (s["admin_policies"]?.arrayValue ?? []).compactMap(\.stringValue).map {
                    iamCall("DetachUserPolicy", [("UserName", u), ("PolicyArn", $0)], okErrors: ["NoSuchEntity"])
                }
                    + (s["admin_inline_policies"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }.map {
                        iamCall("DeleteUserPolicy", [("UserName", u), ("PolicyName", $0)], okErrors: ["NoSuchEntity"])
                    }
                    + (s["admin_groups"]?.arrayValue ?? []).compactMap(\.stringValue).map {
                        iamCall("RemoveUserFromGroup", [("GroupName", $0), ("UserName", u)], okErrors: ["NoSuchEntity"])
                    }
            },
            rollback: { t, s, _ in
                let u = t.resourceName
                return (s["admin_policies"]?.arrayValue ?? []).compactMap(\.stringValue).map {
                    iamCall("AttachUserPolicy", [("UserName", u), ("PolicyArn", $0)])
                }
                    + (s["admin_inline_policies"]?.arrayValue ?? []).map {
                        iamCall(
                            "PutUserPolicy",
                            [("UserName", u), ("PolicyName", $0["name"]?.stringValue ?? ""), ("PolicyDocument", $0["document"]?.stringValue ?? "")])
                    }
                    + (s["admin_groups"]?.arrayValue ?? []).compactMap(\.stringValue).map {
                        iamCall("AddUserToGroup", [("GroupName", $0), ("UserName", u)])
                    }
            }),
        FixAction(
            name: "kms.enable_key_rotation", title: "Turn on automatic yearly rotation of the KMS key", service: "kms", resourceType: "aws.kms.key",
            permissions: ["kms:GetKeyRotationStatus", "kms:EnableKeyRotation"], rollbackPermissions: ["kms:DisableKeyRotation"],
            inspect: { c, t in
                let r = try await c.json(service: "kms", region: t.region, target: "TrentService.GetKeyRotationStatus", body: ["KeyId": t.resourceId])
                return .object(["rotation_enabled": .bool(r["KeyRotationEnabled"] as? Bool ?? false)])
            },
            plan: { t, s in
                s["rotation_enabled"]?.boolValue == true
                    ? [] : [.json("kms", t.region, target: "TrentService.EnableKeyRotation", ["KeyId": t.resourceId])]
            },
            rollback: { t, _, _ in [.json("kms", t.region, target: "TrentService.DisableKeyRotation", ["KeyId": t.resourceId])] }),
        FixAction(
            name: "cloudtrail.enable_log_file_validation", title: "Turn on log file integrity validation for the trail", service: "cloudtrail",
            resourceType: "aws.cloudtrail.trail", permissions: ["cloudtrail:DescribeTrails", "cloudtrail:UpdateTrail"],
            rollbackPermissions: ["cloudtrail:UpdateTrail"],
            inspect: { c, t in
                let r = try await c.json(
                    service: "cloudtrail", region: t.region, target: "\(trail).DescribeTrails", body: ["trailNameList": [t.resourceId]])
                let tr = (r["trailList"] as? [[String: Any]])?.first
                return .object(["exists": .bool(tr != nil), "log_file_validation": .bool(tr?["LogFileValidationEnabled"] as? Bool ?? false)])
            },
            plan: { t, s in
                s["log_file_validation"]?.boolValue == true
                    ? [] : [.json("cloudtrail", t.region, target: "\(trail).UpdateTrail", ["Name": t.resourceId, "EnableLogFileValidation": true])]
            },
            rollback: { t, _, _ in
                [.json("cloudtrail", t.region, target: "\(trail).UpdateTrail", ["Name": t.resourceId, "EnableLogFileValidation": false])]
            }),
    ]

    /// Keys to deactivate: older than 90 days, or unused for 45 days; for the "more than one active
    /// key" rule also every key but the most recently used (or newest).
    static func staleKeys(_ t: FixTarget, _ s: JSONValue) -> [String] {
        let keys = s["active_keys"]?.arrayValue ?? []
        var out: [String] = []
        for k in keys {
            let age = k["age_days"]?.numberValue ?? 0
            let last = k["last_used_days"]?.numberValue
            if age > 90 || (age > 45 && (last ?? .infinity) > 45) { out.append(k["access_key_id"]?.stringValue ?? "") }
        }
        if t.ruleId == "aws.iam.user_multiple_active_keys", keys.count > 1 {
            let keep = keys.min { a, b in
                let la = a["last_used_days"]?.numberValue ?? .infinity
                let lb = b["last_used_days"]?.numberValue ?? .infinity
                if la != lb { return la < lb }
                return (a["created"]?.stringValue ?? "") > (b["created"]?.stringValue ?? "")
            }
            for k in keys where k != keep { if let id = k["access_key_id"]?.stringValue, !out.contains(id) { out.append(id) } }
        }
        return out.filter { !$0.isEmpty }
    }
}
