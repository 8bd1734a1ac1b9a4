import AWS
import Foundation
import ScanEngine
import VigilCore

/// S3 fixes: public access blocks, public ACLs and policy statements, default encryption, versioning.
extension FixActions {
    static func bucket(_ t: FixTarget) -> String { "/" + t.resourceName }

    static let s3Actions: [FixAction] = [
        FixAction(
            name: "s3.block_public_access", title: "Turn on all four S3 Block Public Access settings for the bucket", service: "s3",
            resourceType: "aws.s3.bucket", permissions: ["s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock"],
            rollbackPermissions: ["s3:PutBucketPublicAccessBlock", "s3:DeleteBucketPublicAccessBlock"],
            inspect: { c, t in
                let r = try await optional(["NoSuchPublicAccessBlockConfiguration"]) {
                    try await c.restXML(service: "s3", region: t.region, method: "GET", path: bucket(t), query: [("publicAccessBlock", "")])
                }
                var o: [String: JSONValue] = ["configured": .bool(r != nil)]
                for f in pabFlags { o[f] = .bool(r?.xml?.first(f)?.text == "true") }
                return .object(o)
            },
            plan: { t, s in
                if pabFlags.allSatisfy({ s[$0]?.boolValue == true }) { return [] }
                return [
                    .rest(
                        "s3", t.region, "PutPublicAccessBlock", "PUT", bucket(t), query: [("publicAccessBlock", "")],
                        body: pabXML(Dictionary(uniqueKeysWithValues: pabFlags.map { ($0, true) })))
                ]
            },
            rollback: { t, s, _ in
                if s["configured"]?.boolValue == true {
                    return [
                        .rest(
                            "s3", t.region, "PutPublicAccessBlock", "PUT", bucket(t), query: [("publicAccessBlock", "")],
                            body: pabXML(Dictionary(uniqueKeysWithValues: pabFlags.map { ($0, s[$0]?.boolValue == true) })))
                    ]
                }
                return [.rest("s3", t.region, "DeletePublicAccessBlock", "DELETE", bucket(t), query: [("publicAccessBlock", "")])]
            }),
        FixAction(
            name: "s3.remove_public_acl", title: "Remove the AllUsers and AuthenticatedUsers grants from the bucket ACL", service: "s3",
            resourceType: "aws.s3.bucket", permissions: ["s3:GetBucketAcl", "s3:PutBucketAcl"], rollbackPermissions: ["s3:PutBucketAcl"],
            inspect: { c, t in
                let r = try await c.rest(service: "s3", region: t.region, method: "GET", path: bucket(t), query: [("acl", "")])
                return .object(["acl": .string(r.body), "public_grants": .number(Double(publicGrants(r.body).count))])
            },
            plan: { t, s in
                guard let acl = s["acl"]?.stringValue, !publicGrants(acl).isEmpty else { return [] }
                var kept = acl
                for g in publicGrants(acl) { kept = kept.replacingOccurrences(of: g, with: "") }
                if !kept.contains("<Grant>"), let owner = ownerId(acl), let end = kept.range(of: "</AccessControlList>") {
                    // Nothing left: the bucket becomes private (the owner's full control), as `x-amz-acl: private` does.
                    kept.insert(
                        contentsOf:
                            "<Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\""
                            + " xsi:type=\"CanonicalUser\"><ID>\(owner)</ID></Grantee>"
                            + "<Permission>FULL_CONTROL</Permission></Grant>",
                        at: end.lowerBound)
                }
                return [.rest("s3", t.region, "PutBucketAcl", "PUT", bucket(t), query: [("acl", "")], body: kept, contentType: "application/xml")]
            },
            rollback: { t, s, _ in
                [
                    .rest(
                        "s3", t.region, "PutBucketAcl", "PUT", bucket(t), query: [("acl", "")], body: s["acl"]?.stringValue ?? "",
                        contentType: "application/xml")
                ]
            }),
        FixAction(
            name: "s3.remove_public_policy_statements", title: "Remove the statements that allow everyone from the bucket policy", service: "s3",
            resourceType: "aws.s3.bucket", permissions: ["s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"],
            rollbackPermissions: ["s3:PutBucketPolicy"],
            inspect: { c, t in
                let r = try await optional(["NoSuchBucketPolicy"]) {
                    try await c.rest(service: "s3", region: t.region, method: "GET", path: bucket(t), query: [("policy", "")])
                }
                return .object(["policy": r.map { .string($0.body) } ?? .null])
            },
            plan: { t, s in
                guard let policy = s["policy"]?.stringValue, !PolicyDocuments.publicStatements(policy).isEmpty else { return [] }
                let (kept, _) = PolicyDocuments.withoutPublicStatements(policy)
                if let kept {
                    return [
                        .rest(
                            "s3", t.region, "PutBucketPolicy", "PUT", bucket(t), query: [("policy", "")], body: kept, contentType: "application/json")
                    ]
                }
                return [.rest("s3", t.region, "DeleteBucketPolicy", "DELETE", bucket(t), query: [("policy", "")])]
            },
            rollback: { t, s, _ in
                guard let policy = s["policy"]?.stringValue else { return [] }
                return [
                    .rest("s3", t.region, "PutBucketPolicy", "PUT", bucket(t), query: [("policy", "")], body: policy, contentType: "application/json")
                ]
            }),
        FixAction(
            name: "s3.enable_default_encryption", title: "Turn on default server-side encryption for the bucket", service: "s3",
            resourceType: "aws.s3.bucket", permissions: ["s3:GetEncryptionConfiguration", "s3:PutEncryptionConfiguration"],
            rollbackPermissions: ["s3:PutEncryptionConfiguration"],
            parameters: [
                ActionParameter(name: "algorithm", type: "string", description: "SSE algorithm (default AES256)", allowed: ["AES256", "aws:kms"]),
                ActionParameter(name: "kms_key_id", type: "string", description: "KMS key for aws:kms (default: the AWS managed key)"),
            ],
            rollbackNote: "Rollback removes the default encryption configuration; objects written while it was on stay encrypted.",
            inspect: { c, t in
                let r = try await optional(["ServerSideEncryptionConfigurationNotFoundError"]) {
                    try await c.rest(service: "s3", region: t.region, method: "GET", path: bucket(t), query: [("encryption", "")])
                }
                return .object(["configured": .bool(r != nil), "configuration": r.map { .string($0.body) } ?? .null])
            },
            plan: { t, s in
                if s["configured"]?.boolValue == true { return [] }
                let algorithm = t.parameters["algorithm"]?.stringValue ?? "AES256"
                let key = t.parameters["kms_key_id"]?.stringValue.map { "<KMSMasterKeyID>\(xmlEscape($0))</KMSMasterKeyID>" } ?? ""
                let body =
                    "<ServerSideEncryptionConfiguration xmlns=\"\(s3ns)\"><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>\(algorithm)"
                    + "</SSEAlgorithm>\(key)</ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>"
                return [
                    .rest(
                        "s3", t.region, "PutBucketEncryption", "PUT", bucket(t), query: [("encryption", "")], body: body,
                        contentType: "application/xml")
                ]
            },
            rollback: { t, s, _ in
                if let conf = s["configuration"]?.stringValue {
                    return [
                        .rest(
                            "s3", t.region, "PutBucketEncryption", "PUT", bucket(t), query: [("encryption", "")], body: conf,
                            contentType: "application/xml")
                    ]
                }
                return [.rest("s3", t.region, "DeleteBucketEncryption", "DELETE", bucket(t), query: [("encryption", "")])]
            }),
        FixAction(
            name: "s3.enable_versioning", title: "Turn on versioning for the bucket", service: "s3", resourceType: "aws.s3.bucket",
            permissions: ["s3:GetBucketVersioning", "s3:PutBucketVersioning"], rollbackPermissions: ["s3:PutBucketVersioning"],
            rollbackNote: "S3 cannot turn versioning off once enabled: rollback suspends it, and versions already written are kept.",
            inspect: { c, t in
                let r = try await c.restXML(service: "s3", region: t.region, method: "GET", path: bucket(t), query: [("versioning", "")])
                return .object(["status": .string(r.xml?.first("Status")?.text ?? "Disabled")])
            },
            plan: { t, s in
                if s["status"]?.stringValue == "Enabled" { return [] }
                return [
                    .rest(
                        "s3", t.region, "PutBucketVersioning", "PUT", bucket(t), query: [("versioning", "")],
                        body: "<VersioningConfiguration xmlns=\"\(s3ns)\"><Status>Enabled</Status></VersioningConfiguration>",
                        contentType: "application/xml")
                ]
            },
            rollback: { t, _, _ in
                [
                    .rest(
                        "s3", t.region, "PutBucketVersioning", "PUT", bucket(t), query: [("versioning", "")],
                        body: "<VersioningConfiguration xmlns=\"\(s3ns)\"><Status>Suspended</Status></VersioningConfiguration>",
                        contentType: "application/xml")
                ]
            }),
    ]

    static let pabFlags = ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"]

    static func pabXML(_ flags: [String: Bool]) -> String {
        "<PublicAccessBlockConfiguration xmlns=\"\(s3ns)\">" + pabFlags.map { "<\($0)>\(flags[$0] == true)</\($0)>" }.joined()
            + "</PublicAccessBlockConfiguration>"
    }

    /// The `<Grant>…</Grant>` elements of an ACL document that grant to everyone or to any AWS user.
    static func publicGrants(_ acl: String) -> [String] {
        guard let re = try? Regex("<Grant>(?s:.*?)</Grant>") else { return [] }
        return acl.matches(of: re).map { String(acl[$0.range]) }.filter { g in
            g.contains("http://acs.amazonaws.com/groups/global/AllUsers") || g.contains("http://acs.amazonaws.com/groups/global/AuthenticatedUsers")
        }
    }

    static func ownerId(_ acl: String) -> String? {
        guard let xml = try? XMLNode.parse(Data(acl.utf8)) else { return nil }
        return xml.first("Owner")?.first("ID")?.text
    }

    static func xmlEscape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
