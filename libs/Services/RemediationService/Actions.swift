import AWS
import Foundation
import ScanEngine
import VigilCore

/// The AWS fix actions (rules name them in `fix_action`). Each reads the state it changes, plans the
/// exact calls, and plans the calls that put the recorded state back.
enum FixActions {
    static let ec2 = "2016-11-15", iam = "2010-05-08", rds = "2014-10-31", sqs = "2012-11-05", sns = "2010-03-31"
    static let s3ns = "http://s3.amazonaws.com/doc/2006-03-01/"
    static let trail = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101"

    static let all: [FixAction] = s3Actions + ec2Actions + identityActions + messagingActions + dataActions
    static let byName: [String: FixAction] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

    // MARK: S3

    static func bucket(_ t: FixTarget) -> String { "/" + t.resourceName }

    static let s3Actions: [FixAction] = [
        FixAction(
            name: "s3.block_public_access", title: "Turn on all four S3 Block Public Access settings for the bucket", service: "s3",
            resourceType: "aws.s3.bucket", permissions: ["s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock"],
            rollbackPermissions: ["s3:PutBucketPublicAccessBlock", "s3:DeleteBucketPublicAccessBlock"],
            inspect: { c, t in
                let r = try optional(["NoSuchPublicAccessBlockConfiguration"]) {
                    try c.restXML(service: "s3", region: t.region, method: "GET", path: bucket(t), query: [("publicAccessBlock", "")])
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
                let r = try c.rest(service: "s3", region: t.region, method: "GET", path: bucket(t), query: [("acl", "")])
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
                            "<Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"CanonicalUser\"><ID>\(owner)</ID></Grantee><Permission>FULL_CONTROL</Permission></Grant>",
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
                let r = try optional(["NoSuchBucketPolicy"]) {
                    try c.rest(service: "s3", region: t.region, method: "GET", path: bucket(t), query: [("policy", "")])
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
                let r = try optional(["ServerSideEncryptionConfigurationNotFoundError"]) {
                    try c.rest(service: "s3", region: t.region, method: "GET", path: bucket(t), query: [("encryption", "")])
                }
                return .object(["configured": .bool(r != nil), "configuration": r.map { .string($0.body) } ?? .null])
            },
            plan: { t, s in
                if s["configured"]?.boolValue == true { return [] }
                let algorithm = t.parameters["algorithm"]?.stringValue ?? "AES256"
                let key = t.parameters["kms_key_id"]?.stringValue.map { "<KMSMasterKeyID>\(xmlEscape($0))</KMSMasterKeyID>" } ?? ""
                let body =
                    "<ServerSideEncryptionConfiguration xmlns=\"\(s3ns)\"><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>\(algorithm)</SSEAlgorithm>\(key)</ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>"
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
                let r = try c.restXML(service: "s3", region: t.region, method: "GET", path: bucket(t), query: [("versioning", "")])
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

    // MARK: EC2

    static func ec2Call(
        _ t: FixTarget, _ action: String, _ params: [(String, String)], capture: [String: String]? = nil,
        okErrors: [String]? = nil
    ) -> APICall {
        .query("ec2", t.region, action, version: ec2, params, capture: capture, okErrors: okErrors)
    }

    /// The ports a security-group rule is about, from its condition (`contains 22`, `contains_any [...]`).
    static func rulePorts(_ ruleId: String) -> [Int]? {
        guard let rule = BuiltinRules.all.first(where: { $0.id == ruleId }) else { return nil }
        let text = String(decoding: (try? JSONEncoder().encode(rule.failIf)) ?? Data(), as: UTF8.self)
        guard text.contains("world_open_ports") else { return nil }
        let numbers = text.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }.filter { $0 > 0 && $0 < 65536 }
        return numbers.isEmpty ? nil : numbers
    }

    /// The recorded world-open rules this fix revokes: all-traffic ones, and those covering the
    /// `ports` parameter or the rule's ports.
    static func worldRules(_ t: FixTarget, _ s: JSONValue) -> [JSONValue] {
        let ports = t.parameters["ports"]?.arrayValue?.compactMap { $0.numberValue.map(Int.init) } ?? rulePorts(t.ruleId)
        return (s["world_open_rules"]?.arrayValue ?? []).filter { r in
            let proto = r["protocol"]?.stringValue ?? "-1"
            if proto == "-1" { return true }
            guard let ports else { return false }
            let from = Int(r["from"]?.stringValue ?? "") ?? 0
            let to = Int(r["to"]?.stringValue ?? "") ?? 65535
            return ports.contains { (from...max(from, to)).contains($0) }
        }
    }

    static func permissionParams(_ rules: [JSONValue]) -> [(String, String)] {
        var p: [(String, String)] = []
        for (i, r) in rules.enumerated() {
            let n = "IpPermissions.\(i + 1)"
            p.append(("\(n).IpProtocol", r["protocol"]?.stringValue ?? "-1"))
            if let from = r["from"]?.stringValue, !from.isEmpty { p.append(("\(n).FromPort", from)) }
            if let to = r["to"]?.stringValue, !to.isEmpty { p.append(("\(n).ToPort", to)) }
            let cidr = r["cidr"]?.stringValue ?? "0.0.0.0/0"
            if cidr.contains(":") { p.append(("\(n).Ipv6Ranges.1.CidrIpv6", cidr)) } else { p.append(("\(n).IpRanges.1.CidrIp", cidr)) }
        }
        return p
    }

    static let ec2Actions: [FixAction] = [
        FixAction(
            name: "ec2.revoke_world_ingress", title: "Revoke the security group's ingress rules open to 0.0.0.0/0 or ::/0 on the finding's ports",
            service: "ec2", resourceType: "aws.ec2.security_group",
            permissions: ["ec2:DescribeSecurityGroups", "ec2:RevokeSecurityGroupIngress"], rollbackPermissions: ["ec2:AuthorizeSecurityGroupIngress"],
            parameters: [
                ActionParameter(
                    name: "ports", type: "array<integer>",
                    description: "only revoke world-open rules covering these ports (default: the rule's ports; all traffic rules always)")
            ],
            inspect: { c, t in
                let xml = try c.query(
                    service: "ec2", region: t.region, action: "DescribeSecurityGroups", version: ec2, params: [("GroupId.1", t.nativeId)])
                var rules: [JSONValue] = []
                for g in xml.list("securityGroupInfo") {
                    for perm in g.list("ipPermissions") {
                        let proto = perm["ipProtocol"] ?? "-1"
                        let from = perm["fromPort"] ?? ""
                        let to = perm["toPort"] ?? ""
                        let v4 = perm.list("ipRanges").compactMap { $0["cidrIp"] }.filter { $0 == "0.0.0.0/0" }
                        let v6 = perm.list("ipv6Ranges").compactMap { $0["cidrIpv6"] }.filter { $0 == "::/0" }
                        for cidr in v4 + v6 {
                            rules.append(.object(["protocol": .string(proto), "from": .string(from), "to": .string(to), "cidr": .string(cidr)]))
                        }
                    }
                }
                return .object(["group_id": .string(t.nativeId), "world_open_rules": .array(rules)])
            },
            plan: { t, s in
                let chosen = worldRules(t, s)
                if chosen.isEmpty { return [] }
                return [
                    ec2Call(
                        t, "RevokeSecurityGroupIngress", [("GroupId", t.nativeId)] + permissionParams(chosen),
                        okErrors: ["InvalidPermission.NotFound"])
                ]
            },
            rollback: { t, s, _ in
                let chosen = worldRules(t, s)
                if chosen.isEmpty { return [] }
                return [
                    ec2Call(
                        t, "AuthorizeSecurityGroupIngress", [("GroupId", t.nativeId)] + permissionParams(chosen),
                        okErrors: ["InvalidPermission.Duplicate"])
                ]
            }),
        FixAction(
            name: "ec2.enable_ebs_default_encryption", title: "Turn on EBS encryption by default in the region", service: "ec2",
            resourceType: "aws.ec2.regional_settings", permissions: ["ec2:GetEbsEncryptionByDefault", "ec2:EnableEbsEncryptionByDefault"],
            rollbackPermissions: ["ec2:DisableEbsEncryptionByDefault"],
            inspect: { c, t in
                let x = try c.query(service: "ec2", region: t.region, action: "GetEbsEncryptionByDefault", version: ec2)
                return .object(["ebs_encryption_by_default": .bool(x.first("ebsEncryptionByDefault")?.text == "true")])
            },
            plan: { t, s in s["ebs_encryption_by_default"]?.boolValue == true ? [] : [ec2Call(t, "EnableEbsEncryptionByDefault", [])] },
            rollback: { t, _, _ in [ec2Call(t, "DisableEbsEncryptionByDefault", [])] }),
        FixAction(
            name: "ec2.make_snapshot_private", title: "Remove the public (all) create-volume permission from the EBS snapshot", service: "ec2",
            resourceType: "aws.ec2.snapshot", permissions: ["ec2:DescribeSnapshotAttribute", "ec2:ModifySnapshotAttribute"],
            rollbackPermissions: ["ec2:ModifySnapshotAttribute"],
            inspect: { c, t in
                let x = try c.query(
                    service: "ec2", region: t.region, action: "DescribeSnapshotAttribute", version: ec2,
                    params: [("SnapshotId", t.nativeId), ("Attribute", "createVolumePermission")])
                return .object(["public": .bool(x.list("createVolumePermission").contains { $0["group"] == "all" })])
            },
            plan: { t, s in
                s["public"]?.boolValue == true
                    ? [
                        ec2Call(
                            t, "ModifySnapshotAttribute",
                            [
                                ("SnapshotId", t.nativeId), ("Attribute", "createVolumePermission"),
                                ("OperationType", "remove"), ("UserGroup.1", "all"),
                            ])
                    ] : []
            },
            rollback: { t, _, _ in
                [
                    ec2Call(
                        t, "ModifySnapshotAttribute",
                        [("SnapshotId", t.nativeId), ("Attribute", "createVolumePermission"), ("OperationType", "add"), ("UserGroup.1", "all")])
                ]
            }),
        FixAction(
            name: "ec2.make_image_private", title: "Remove the public (all) launch permission from the AMI", service: "ec2",
            resourceType: "aws.ec2.image", permissions: ["ec2:DescribeImageAttribute", "ec2:ModifyImageAttribute"],
            rollbackPermissions: ["ec2:ModifyImageAttribute"],
            inspect: { c, t in
                let x = try c.query(
                    service: "ec2", region: t.region, action: "DescribeImageAttribute", version: ec2,
                    params: [("ImageId", t.nativeId), ("Attribute", "launchPermission")])
                return .object(["public": .bool(x.list("launchPermission").contains { $0["group"] == "all" })])
            },
            plan: { t, s in
                s["public"]?.boolValue == true
                    ? [ec2Call(t, "ModifyImageAttribute", [("ImageId", t.nativeId), ("LaunchPermission.Remove.1.Group", "all")])] : []
            },
            rollback: { t, _, _ in [ec2Call(t, "ModifyImageAttribute", [("ImageId", t.nativeId), ("LaunchPermission.Add.1.Group", "all")])] }),
        FixAction(
            name: "ec2.release_address", title: "Release the unassociated Elastic IP address", service: "ec2", resourceType: "aws.ec2.address",
            permissions: ["ec2:DescribeAddresses", "ec2:ReleaseAddress"], rollbackPermissions: ["ec2:AllocateAddress"],
            rollbackNote:
                "Rollback recovers the same public IP with AllocateAddress (possible while no other account took it); it gets a new allocation id.",
            inspect: { c, t in
                let x = try c.query(
                    service: "ec2", region: t.region, action: "DescribeAddresses", version: ec2, params: [("AllocationId.1", t.nativeId)])
                guard let a = x.list("addressesSet").first else { return .object(["exists": false]) }
                let associated = !(a["associationId"] ?? "").isEmpty || !(a["instanceId"] ?? "").isEmpty
                return .object([
                    "exists": true, "public_ip": .string(a["publicIp"] ?? ""), "domain": .string(a["domain"] ?? "vpc"),
                    "associated": .bool(associated),
                ])
            },
            plan: { t, s in
                guard s["exists"]?.boolValue == true else { return [] }
                guard s["associated"]?.boolValue != true else {
                    throw ServiceError(status: 409, error: "resource_in_use", message: "the address is associated now; it is not released")
                }
                return [ec2Call(t, "ReleaseAddress", [("AllocationId", t.nativeId)], okErrors: ["InvalidAllocationID.NotFound"])]
            },
            rollback: { t, s, _ in
                [
                    ec2Call(
                        t, "AllocateAddress", [("Domain", s["domain"]?.stringValue ?? "vpc"), ("Address", s["public_ip"]?.stringValue ?? "")],
                        capture: ["allocation_id": "allocationId"])
                ]
            },
            recreatedResource: { t, out in out["allocation_id"].map { t.arn("ec2", "elastic-ip/\($0)") } }),
        FixAction(
            name: "ec2.delete_unattached_volume", title: "Snapshot the unattached EBS volume, then delete it", service: "ec2",
            resourceType: "aws.ec2.volume",
            permissions: ["ec2:DescribeVolumes", "ec2:CreateSnapshot", "ec2:CreateTags", "ec2:DeleteVolume"],
            rollbackPermissions: ["ec2:CreateVolume"],
            rollbackNote: "Rollback creates a new volume from the snapshot taken before deletion (same zone, type and size); it has a new volume id.",
            inspect: { c, t in
                let x = try c.query(service: "ec2", region: t.region, action: "DescribeVolumes", version: ec2, params: [("VolumeId.1", t.nativeId)])
                guard let v = x.list("volumeSet").first else { return .object(["exists": false]) }
                return .object([
                    "exists": true, "state": .string(v["status"] ?? ""), "availability_zone": .string(v["availabilityZone"] ?? ""),
                    "size": .string(v["size"] ?? ""), "volume_type": .string(v["volumeType"] ?? "gp3"), "encrypted": .bool(v["encrypted"] == "true"),
                ])
            },
            plan: { t, s in
                guard s["exists"]?.boolValue == true else { return [] }
                guard s["state"]?.stringValue == "available" else {
                    throw ServiceError(
                        status: 409, error: "resource_in_use",
                        message: "the volume is \(s["state"]?.stringValue ?? "in use"), not available; it is not deleted")
                }
                return [
                    ec2Call(
                        t, "CreateSnapshot",
                        [
                            ("VolumeId", t.nativeId), ("Description", "Vigil remediation \(t.actionId): before deleting \(t.nativeId)"),
                            ("TagSpecification.1.ResourceType", "snapshot"), ("TagSpecification.1.Tag.1.Key", "vigil:remediation"),
                            ("TagSpecification.1.Tag.1.Value", t.actionId),
                        ], capture: ["snapshot_id": "snapshotId"]),
                    ec2Call(t, "DeleteVolume", [("VolumeId", t.nativeId)], okErrors: ["InvalidVolume.NotFound"]),
                ]
            },
            rollback: { t, s, out in
                guard let snap = out["snapshot_id"] else {
                    throw ServiceError(status: 409, error: "rollback_impossible", message: "no snapshot was recorded for this deletion")
                }
                return [
                    ec2Call(
                        t, "CreateVolume",
                        [
                            ("AvailabilityZone", s["availability_zone"]?.stringValue ?? ""), ("SnapshotId", snap),
                            ("VolumeType", s["volume_type"]?.stringValue ?? "gp3"),
                        ], capture: ["volume_id": "volumeId"])
                ]
            },
            recreatedResource: { t, out in out["volume_id"].map { t.arn("ec2", "volume/\($0)") } }),
        FixAction(
            name: "ec2.require_imdsv2", title: "Require IMDSv2 session tokens on the instance", service: "ec2", resourceType: "aws.ec2.instance",
            permissions: ["ec2:DescribeInstances", "ec2:ModifyInstanceMetadataOptions"], rollbackPermissions: ["ec2:ModifyInstanceMetadataOptions"],
            inspect: { c, t in
                let x = try c.query(
                    service: "ec2", region: t.region, action: "DescribeInstances", version: ec2, params: [("InstanceId.1", t.nativeId)])
                let m = x.first("metadataOptions")
                return .object(["http_tokens": .string(m?["httpTokens"] ?? "optional"), "http_endpoint": .string(m?["httpEndpoint"] ?? "enabled")])
            },
            plan: { t, s in
                s["http_tokens"]?.stringValue == "required"
                    ? [] : [ec2Call(t, "ModifyInstanceMetadataOptions", [("InstanceId", t.nativeId), ("HttpTokens", "required")])]
            },
            rollback: { t, s, _ in
                [
                    ec2Call(
                        t, "ModifyInstanceMetadataOptions", [("InstanceId", t.nativeId), ("HttpTokens", s["http_tokens"]?.stringValue ?? "optional")])
                ]
            }),
    ]

    // MARK: IAM, KMS, CloudTrail

    static func iamCall(_ action: String, _ params: [(String, String)], okErrors: [String]? = nil) -> APICall {
        .query("iam", "us-east-1", action, version: iam, params, okErrors: okErrors)
    }

    static func grantsAdmin(_ c: AWSClient, policyArn: String) throws -> Bool {
        if policyArn.hasSuffix(":policy/AdministratorAccess") { return true }
        let p = try c.query(service: "iam", region: "us-east-1", action: "GetPolicy", version: iam, params: [("PolicyArn", policyArn)])
        guard let v = p.first("DefaultVersionId")?.text else { return false }
        let doc = try c.query(
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
                let keys = try c.query(service: "iam", region: "us-east-1", action: "ListAccessKeys", version: iam, params: [("UserName", user)])
                    .list("AccessKeyMetadata")
                var out: [JSONValue] = []
                for k in keys where k["Status"] == "Active" {
                    let id = k["AccessKeyId"] ?? ""
                    let used = try c.query(
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
                func q(_ a: String, _ p: [(String, String)]) throws -> XMLNode {
                    try c.query(service: "iam", region: "us-east-1", action: a, version: iam, params: p)
                }
                var attached: [JSONValue] = []
                var inline: [JSONValue] = []
                var groups: [JSONValue] = []
                for p in try q("ListAttachedUserPolicies", [("UserName", user)]).list("AttachedPolicies") {
                    if let arn = p["PolicyArn"], try grantsAdmin(c, policyArn: arn) { attached.append(.string(arn)) }
                }
                for name in try q("ListUserPolicies", [("UserName", user)]).list("PolicyNames").map(\.text) {
                    let doc = try q("GetUserPolicy", [("UserName", user), ("PolicyName", name)]).first("PolicyDocument")?.text
                    let text = doc.map { $0.removingPercentEncoding ?? $0 }
                    if PolicyFacts(document: text).grantsFullAdmin {
                        inline.append(.object(["name": .string(name), "document": .string(text ?? "")]))
                    }
                }
                for g in try q("ListGroupsForUser", [("UserName", user)]).list("Groups").compactMap({ $0["GroupName"] }) {
                    var admin = false
                    for p in try q("ListAttachedGroupPolicies", [("GroupName", g)]).list("AttachedPolicies") where !admin {
                        if let arn = p["PolicyArn"] { admin = try grantsAdmin(c, policyArn: arn) }
                    }
                    for name in try q("ListGroupPolicies", [("GroupName", g)]).list("PolicyNames").map(\.text) where !admin {
                        admin =
                            PolicyFacts(document: try q("GetGroupPolicy", [("GroupName", g), ("PolicyName", name)]).first("PolicyDocument")?.text)
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
                let r = try c.json(service: "kms", region: t.region, target: "TrentService.GetKeyRotationStatus", body: ["KeyId": t.resourceId])
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
                let r = try c.json(
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

    // MARK: SQS, SNS, Lambda

    static let messagingActions: [FixAction] = [
        FixAction(
            name: "sqs.remove_public_policy_statements", title: "Remove the statements that allow everyone from the queue policy", service: "sqs",
            resourceType: "aws.sqs.queue", permissions: ["sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:SetQueueAttributes"],
            rollbackPermissions: ["sqs:SetQueueAttributes"],
            inspect: { c, t in
                let url =
                    try c.query(service: "sqs", region: t.region, action: "GetQueueUrl", version: sqs, params: [("QueueName", t.resourceName)]).first(
                        "QueueUrl")?.text ?? ""
                let x = try c.query(
                    service: "sqs", region: t.region, action: "GetQueueAttributes", version: sqs,
                    params: [("QueueUrl", url), ("AttributeName.1", "Policy")])
                let policy = x.all("Attribute").first { $0["Name"] == "Policy" }?["Value"]
                return .object(["queue_url": .string(url), "policy": policy.map { .string($0) } ?? .null])
            },
            plan: { t, s in
                guard let policy = s["policy"]?.stringValue, !PolicyDocuments.publicStatements(policy).isEmpty else { return [] }
                let kept = PolicyDocuments.withoutPublicStatements(policy).0 ?? ""
                return [
                    .query(
                        "sqs", t.region, "SetQueueAttributes", version: sqs,
                        [
                            ("QueueUrl", s["queue_url"]?.stringValue ?? ""),
                            ("Attribute.1.Name", "Policy"), ("Attribute.1.Value", kept),
                        ])
                ]
            },
            rollback: { t, s, _ in
                [
                    .query(
                        "sqs", t.region, "SetQueueAttributes", version: sqs,
                        [
                            ("QueueUrl", s["queue_url"]?.stringValue ?? ""), ("Attribute.1.Name", "Policy"),
                            ("Attribute.1.Value", s["policy"]?.stringValue ?? ""),
                        ])
                ]
            }),
        FixAction(
            name: "sns.remove_public_policy_statements", title: "Remove the statements that allow everyone from the topic policy", service: "sns",
            resourceType: "aws.sns.topic", permissions: ["sns:GetTopicAttributes", "sns:SetTopicAttributes"],
            rollbackPermissions: ["sns:SetTopicAttributes"],
            inspect: { c, t in
                let x = try c.query(
                    service: "sns", region: t.region, action: "GetTopicAttributes", version: sns, params: [("TopicArn", t.resourceId)])
                let policy = x.all("entry").first { $0["key"] == "Policy" }?["value"]
                return .object(["policy": policy.map { .string($0) } ?? .null])
            },
            plan: { t, s in
                guard let policy = s["policy"]?.stringValue, !PolicyDocuments.publicStatements(policy).isEmpty else { return [] }
                let kept = PolicyDocuments.withoutPublicStatements(policy).0 ?? ownerOnlyTopicPolicy(t)
                return [
                    .query(
                        "sns", t.region, "SetTopicAttributes", version: sns,
                        [("TopicArn", t.resourceId), ("AttributeName", "Policy"), ("AttributeValue", kept)])
                ]
            },
            rollback: { t, s, _ in
                [
                    .query(
                        "sns", t.region, "SetTopicAttributes", version: sns,
                        [
                            ("TopicArn", t.resourceId), ("AttributeName", "Policy"),
                            ("AttributeValue", s["policy"]?.stringValue ?? ""),
                        ])
                ]
            }),
        FixAction(
            name: "lambda.remove_public_permission", title: "Remove the resource-policy statements that let anyone invoke the function",
            service: "lambda",
            resourceType: "aws.lambda.function", permissions: ["lambda:GetPolicy", "lambda:RemovePermission"],
            rollbackPermissions: ["lambda:AddPermission"],
            inspect: { c, t in
                let r = try optional(["ResourceNotFoundException"]) {
                    try c.restJSON(service: "lambda", region: t.region, path: "/2015-03-31/functions/\(t.resourceName)/policy")
                }
                return .object(["policy": (r?["Policy"] as? String).map { .string($0) } ?? .null])
            },
            plan: { t, s in
                PolicyDocuments.publicStatements(s["policy"]?.stringValue).compactMap { $0["Sid"] as? String }.map {
                    .rest(
                        "lambda", t.region, "RemovePermission", "DELETE", "/2015-03-31/functions/\(t.resourceName)/policy/\($0)",
                        okErrors: ["HTTP404"])
                }
            },
            rollback: { t, s, _ in
                PolicyDocuments.publicStatements(s["policy"]?.stringValue).compactMap { st -> APICall? in
                    guard let sid = st["Sid"] as? String else { return nil }
                    let action = (st["Action"] as? String) ?? (st["Action"] as? [String])?.first ?? "lambda:InvokeFunction"
                    let body: [String: Any] = ["StatementId": sid, "Action": action, "Principal": "*"]
                    let text = String(decoding: (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data(), as: UTF8.self)
                    return .rest(
                        "lambda", t.region, "AddPermission", "POST", "/2015-03-31/functions/\(t.resourceName)/policy", body: text,
                        contentType: "application/json")
                }
            }),
    ]

    static func ownerOnlyTopicPolicy(_ t: FixTarget) -> String {
        let doc: [String: Any] = [
            "Version": "2008-10-17",
            "Statement": [
                [
                    "Sid": "__default_statement_ID", "Effect": "Allow", "Principal": ["AWS": "*"],
                    "Action": [
                        "SNS:GetTopicAttributes", "SNS:SetTopicAttributes", "SNS:AddPermission", "SNS:RemovePermission", "SNS:DeleteTopic",
                        "SNS:Subscribe", "SNS:ListSubscriptionsByTopic", "SNS:Publish",
                    ],
                    "Resource": t.resourceId, "Condition": ["StringEquals": ["AWS:SourceOwner": t.account]],
                ]
            ],
        ]
        return String(decoding: (try? JSONSerialization.data(withJSONObject: doc, options: [.sortedKeys])) ?? Data(), as: UTF8.self)
    }

    // MARK: RDS

    static let dataActions: [FixAction] = [
        FixAction(
            name: "rds.disable_public_access", title: "Make the RDS instance not publicly accessible", service: "rds",
            resourceType: "aws.rds.instance",
            permissions: ["rds:DescribeDBInstances", "rds:ModifyDBInstance"], rollbackPermissions: ["rds:ModifyDBInstance"],
            inspect: { c, t in
                let x = try c.query(
                    service: "rds", region: t.region, action: "DescribeDBInstances", version: rds, params: [("DBInstanceIdentifier", t.resourceName)])
                return .object(["publicly_accessible": .bool(x.first("PubliclyAccessible")?.text == "true")])
            },
            plan: { t, s in
                s["publicly_accessible"]?.boolValue == true
                    ? [
                        .query(
                            "rds", t.region, "ModifyDBInstance", version: rds,
                            [("DBInstanceIdentifier", t.resourceName), ("PubliclyAccessible", "false"), ("ApplyImmediately", "true")])
                    ] : []
            },
            rollback: { t, _, _ in
                [
                    .query(
                        "rds", t.region, "ModifyDBInstance", version: rds,
                        [("DBInstanceIdentifier", t.resourceName), ("PubliclyAccessible", "true"), ("ApplyImmediately", "true")])
                ]
            }),
        FixAction(
            name: "rds.make_snapshot_private", title: "Remove the public (all) restore permission from the RDS snapshot", service: "rds",
            resourceType: "aws.rds.snapshot", permissions: ["rds:DescribeDBSnapshotAttributes", "rds:ModifyDBSnapshotAttribute"],
            rollbackPermissions: ["rds:ModifyDBSnapshotAttribute"],
            inspect: { c, t in
                let x = try c.query(
                    service: "rds", region: t.region, action: "DescribeDBSnapshotAttributes", version: rds,
                    params: [("DBSnapshotIdentifier", t.resourceName)])
                let restore = x.all("DBSnapshotAttribute").first { $0["AttributeName"] == "restore" }
                return .object(["public": .bool(restore?.all("AttributeValue").contains { $0.text == "all" } ?? false)])
            },
            plan: { t, s in
                s["public"]?.boolValue == true
                    ? [
                        .query(
                            "rds", t.region, "ModifyDBSnapshotAttribute", version: rds,
                            [("DBSnapshotIdentifier", t.resourceName), ("AttributeName", "restore"), ("ValuesToRemove.AttributeValue.1", "all")])
                    ] : []
            },
            rollback: { t, _, _ in
                [
                    .query(
                        "rds", t.region, "ModifyDBSnapshotAttribute", version: rds,
                        [
                            ("DBSnapshotIdentifier", t.resourceName), ("AttributeName", "restore"),
                            ("ValuesToAdd.AttributeValue.1", "all"),
                        ])
                ]
            }),
    ]
}
