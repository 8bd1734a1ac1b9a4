import AWS
import Foundation
import ScanEngine
import VigilCore

/// EC2 fixes: world-open ingress, EBS default encryption, public snapshots and images, idle addresses and volumes, IMDSv2.
extension FixActions {
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
                let xml = try await c.query(
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
                let x = try await c.query(service: "ec2", region: t.region, action: "GetEbsEncryptionByDefault", version: ec2)
                return .object(["ebs_encryption_by_default": .bool(x.first("ebsEncryptionByDefault")?.text == "true")])
            },
            plan: { t, s in s["ebs_encryption_by_default"]?.boolValue == true ? [] : [ec2Call(t, "EnableEbsEncryptionByDefault", [])] },
            rollback: { t, _, _ in [ec2Call(t, "DisableEbsEncryptionByDefault", [])] }),
        FixAction(
            name: "ec2.make_snapshot_private", title: "Remove the public (all) create-volume permission from the EBS snapshot", service: "ec2",
            resourceType: "aws.ec2.snapshot", permissions: ["ec2:DescribeSnapshotAttribute", "ec2:ModifySnapshotAttribute"],
            rollbackPermissions: ["ec2:ModifySnapshotAttribute"],
            inspect: { c, t in
                let x = try await c.query(
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
                let x = try await c.query(
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
                let x = try await c.query(
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
                let x = try await c.query(
                    service: "ec2", region: t.region, action: "DescribeVolumes", version: ec2, params: [("VolumeId.1", t.nativeId)])
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
                let x = try await c.query(
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
}
