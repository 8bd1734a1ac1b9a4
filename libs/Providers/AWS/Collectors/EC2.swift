import Foundation
import ScanEngine
import VigilCore

enum EC2Collector {
    static let version = "2016-11-15"
    /// Ports whose world exposure rules care about (admin, databases, caches, legacy protocols).
    static let sensitivePorts = [
        20, 21, 22, 23, 25, 135, 137, 138, 139, 445, 1433, 1521, 2375, 3306, 3389, 5432, 5601, 5900, 5984,
        6379, 7000, 8020, 9042, 9092, 9200, 9300, 11211, 27017, 27018,
    ]

    @Sendable static func collect(_ ctx: CollectContext) async throws -> [Resource] {
        let c = ctx.client
        let r = ctx.region
        @Sendable func pages(_ action: String, _ params: [(String, String)] = []) async throws -> [XMLNode] {
            try await c.queryPages(service: "ec2", region: r, action: action, version: version, params: params)
        }
        var out: [Resource] = []

        // Security groups.
        for page in try await pages("DescribeSecurityGroups") {
            for g in page.list("securityGroupInfo") {
                let id = g["groupId"] ?? ""
                var open = Set<Int>()
                var all = false
                for p in g.list("ipPermissions") {
                    let world =
                        p.list("ipRanges").contains { $0["cidrIp"] == "0.0.0.0/0" } || p.list("ipv6Ranges").contains { $0["cidrIpv6"] == "::/0" }
                    guard world else { continue }
                    let proto = p["ipProtocol"] ?? ""
                    let from = Int(p["fromPort"] ?? "") ?? 0
                    let to = Int(p["toPort"] ?? "") ?? 65535
                    if proto == "-1" || proto == "all" {
                        all = true
                        open.formUnion(sensitivePorts)
                        continue
                    }
                    guard proto == "tcp" || proto == "6" || proto == "udp" || proto == "17" else { continue }
                    if from <= 0 && to >= 65535 { all = true }
                    for port in sensitivePorts where from <= port && port <= to { open.insert(port) }
                }
                let ruleCount = g.list("ipPermissions").count + g.list("ipPermissionsEgress").count
                out.append(
                    ctx.resource(
                        "ec2", "aws.ec2.security_group", id: ctx.arn("ec2", "security-group/\(id)"), name: id, tags: tags(g),
                        [
                            "group_name": (g["groupName"]).json, "vpc_id": (g["vpcId"]).json, "is_default": .bool(g["groupName"] == "default"),
                            "world_open_ports": .array(open.sorted().map { .number(Double($0)) }), "world_open_all_traffic": .bool(all),
                            "rule_count": .number(Double(ruleCount)),
                        ]))
            }
        }

        // Volumes (needed by instances and snapshots).
        var volumeSize: [String: Double] = [:]
        for page in try await pages("DescribeVolumes") {
            for v in page.list("volumeSet") {
                let id = v["volumeId"] ?? ""
                let size = Double(v["size"] ?? "") ?? 0
                volumeSize[id] = size
                out.append(
                    ctx.resource(
                        "ec2", "aws.ec2.volume", id: ctx.arn("ec2", "volume/\(id)"), name: id, tags: tags(v),
                        [
                            "state": (v["status"]).json, "encrypted": .bool((v["encrypted"] ?? "").bool), "size_gib": .number(size),
                            "volume_type": (v["volumeType"]).json,
                            "attached_instances": .array(v.list("attachmentSet").compactMap { $0["instanceId"].map { .string($0) } }),
                        ]))
            }
        }

        // Instances, with user data checked for secrets.
        var instances: [XMLNode] = []
        for page in try await pages("DescribeInstances") {
            for res in page.list("reservationSet") { instances += res.list("instancesSet") }
        }
        let sizes = volumeSize
        let instanceResources = try await Concurrently.map(instances, width: ctx.width) { i -> Resource in
            let id = i["instanceId"] ?? ""
            let state = i.path("instanceState/name")?.text ?? "unknown"
            var secrets: [String] = []
            if state != "terminated" {
                let attr = try await c.query(
                    service: "ec2", region: r, action: "DescribeInstanceAttribute", version: version,
                    params: [("InstanceId", id), ("Attribute", "userData")])
                if let b64 = attr.path("userData/value")?.text ?? attr.first("value")?.text, let data = Data(base64Encoded: b64),
                    let text = String(data: data, encoding: .utf8)
                {
                    secrets = SecretScanner.kinds(in: text)
                }
            }
            let volumes = i.list("blockDeviceMapping").compactMap { $0.path("ebs/volumeId")?.text }
            return ctx.resource(
                "ec2", "aws.ec2.instance", id: ctx.arn("ec2", "instance/\(id)"), name: id, tags: tags(i),
                [
                    "state": .string(state), "instance_type": (i["instanceType"]).json,
                    "has_public_ip": .bool(!(i["ipAddress"] ?? "").isEmpty), "public_ip": (i["ipAddress"]).json,
                    "metadata_http_tokens": .string(i.path("metadataOptions/httpTokens")?.text ?? "optional"),
                    "metadata_http_endpoint": .string(i.path("metadataOptions/httpEndpoint")?.text ?? "enabled"),
                    "has_instance_profile": .bool(i.path("iamInstanceProfile/arn") != nil),
                    "user_data_secrets": .array(secrets.map { .string($0) }),
                    "attached_volume_gib": .number(volumes.reduce(0) { $0 + (sizes[$1] ?? 0) }),
                    "subnet_id": (i["subnetId"]).json, "vpc_id": (i["vpcId"]).json, "image_id": (i["imageId"]).json,
                ])
        }
        out += instanceResources
        let imagesInUse = Set(instances.compactMap { $0["imageId"] })
        var instancesByVpc: [String: Int] = [:]
        for i in instances where i.path("instanceState/name")?.text != "terminated" { if let v = i["vpcId"] { instancesByVpc[v, default: 0] += 1 } }

        // Images owned by the account, and the snapshots they use.
        var imageSnapshots = Set<String>()
        for page in try await pages("DescribeImages", [("Owner.1", "self")]) {
            for img in page.list("imagesSet") {
                let id = img["imageId"] ?? ""
                for b in img.list("blockDeviceMapping") { if let s = b.path("ebs/snapshotId")?.text { imageSnapshots.insert(s) } }
                let gib = img.list("blockDeviceMapping").reduce(0.0) { $0 + (Double($1.path("ebs/volumeSize")?.text ?? "") ?? 0) }
                let created = (img["creationDate"]).flatMap(Timestamp.parse)
                out.append(
                    ctx.resource(
                        "ec2", "aws.ec2.image", id: ctx.arn("ec2", "image/\(id)", global: false), name: id, tags: tags(img),
                        [
                            "public": .bool((img["isPublic"] ?? "").bool), "image_name": (img["name"]).json, "state": (img["imageState"]).json,
                            "in_use": .bool(imagesInUse.contains(id)), "snapshot_gib": .number(gib),
                            "age_days": created.map { .number(Double(Int(ctx.now.timeIntervalSince($0) / 86_400))) } ?? .null,
                            "older_than_policy": .bool(
                                created.map { ctx.now.timeIntervalSince($0) / 86_400 >= Double(ctx.policy.thresholds(for: "ec2").ageDays ?? 90) }
                                    ?? false),
                        ]))
            }
        }

        // Snapshots owned by the account.
        var snapshots: [XMLNode] = []
        for page in try await pages("DescribeSnapshots", [("Owner.1", "self")]) { snapshots += page.list("snapshotSet") }
        // Snapshots made for an AMI name it in their description; if that image still exists (whoever
        // owns it), the snapshot backs it and is not an orphan.
        let amiPattern = try NSRegularExpression(pattern: "ami-[0-9a-f]{8,17}")
        var referencedImages: [String: String] = [:]
        for s in snapshots {
            let d = s["description"] ?? ""
            if let m = amiPattern.firstMatch(in: d, range: NSRange(d.startIndex..., in: d)), let r = Range(m.range, in: d) {
                referencedImages[s["snapshotId"] ?? ""] = String(d[r])
            }
        }
        let unknownImages = Array(Set(referencedImages.values)).sorted()
        if !unknownImages.isEmpty {
            @Sendable func describe(_ ids: [String]) async throws -> Set<String>? {
                let params = ids.enumerated().map { ("ImageId.\($0.offset + 1)", $0.element) }
                let found = try await optional(["InvalidAMIID.NotFound", "InvalidAMIID.Unavailable", "InvalidAMIID.Malformed"]) {
                    try await c.query(service: "ec2", region: r, action: "DescribeImages", version: version, params: params)
                }
                return found.map { Set($0.list("imagesSet").compactMap { $0["imageId"] }) }
            }
            // One call for all; if one id is gone AWS refuses the whole call, so then ask one by one.
            var live = try await describe(Array(unknownImages.prefix(200))) ?? []
            if live.isEmpty && unknownImages.count > 1 {
                for id in unknownImages.prefix(50) { live.formUnion(try await describe([id]) ?? []) }
            }
            for (snap, image) in referencedImages where live.contains(image) { imageSnapshots.insert(snap) }
        }

        let snapshotsOfImages = imageSnapshots
        out += try await Concurrently.map(snapshots, width: ctx.width) { s -> Resource in
            let id = s["snapshotId"] ?? ""
            let perms = try await c.query(
                service: "ec2", region: r, action: "DescribeSnapshotAttribute", version: version,
                params: [("SnapshotId", id), ("Attribute", "createVolumePermission")])
            let isPublic = perms.list("createVolumePermission").contains { $0["group"] == "all" }
            let volume = s["volumeId"] ?? ""
            let exists = sizes[volume] != nil || snapshotsOfImages.contains(id)
            return ctx.resource(
                "ec2", "aws.ec2.snapshot", id: ctx.arn("ec2", "snapshot/\(id)"), name: id, tags: tags(s),
                [
                    "public": .bool(isPublic), "encrypted": .bool((s["encrypted"] ?? "").bool), "volume_id": .string(volume),
                    "volume_exists": .bool(exists), "size_gib": .number(Double(s["sizes"] ?? "") ?? 0),
                ])
        }

        // Elastic IPs.
        for page in try await pages("DescribeAddresses") {
            for a in page.list("addressesSet") {
                let id = a["allocationId"] ?? a["publicIp"] ?? ""
                let associated = !(a["associationId"] ?? "").isEmpty || !(a["instanceId"] ?? "").isEmpty || !(a["networkInterfaceId"] ?? "").isEmpty
                out.append(
                    ctx.resource(
                        "ec2", "aws.ec2.address", id: ctx.arn("ec2", "elastic-ip/\(id)"), name: id, tags: tags(a),
                        [
                            "associated": .bool(associated), "public_ip": (a["publicIp"]).json,
                        ]))
            }
        }

        // NAT gateways (priced by the hour whether or not traffic flows).
        for page in try await pages("DescribeNatGateways") {
            for n in page.list("natGatewaySet") {
                let id = n["natGatewayId"] ?? ""
                out.append(
                    ctx.resource(
                        "ec2", "aws.ec2.nat_gateway", id: ctx.arn("ec2", "natgateway/\(id)"), name: id, tags: tags(n),
                        ["state": (n["state"]).json, "vpc_id": (n["vpcId"]).json, "subnet_id": (n["subnetId"]).json]))
            }
        }

        // Regional EBS default encryption.
        let ebs = try await c.query(service: "ec2", region: r, action: "GetEbsEncryptionByDefault", version: version)
        out.append(
            ctx.resource(
                "ec2", "aws.ec2.regional_settings", id: ctx.arn("ec2", "settings/ebs-default-encryption"),
                name: "ec2-settings-\(r)", ["ebs_encryption_by_default": .bool(ebs.first("ebsEncryptionByDefault")?.text == "true")]))

        // VPCs and flow logs.
        var flowLogged = Set<String>()
        for page in try await pages("DescribeFlowLogs") {
            for f in page.list("flowLogSet") { if let id = f["resourceId"] { flowLogged.insert(id) } }
        }
        for page in try await pages("DescribeVpcs") {
            for v in page.list("vpcSet") {
                let id = v["vpcId"] ?? ""
                out.append(
                    ctx.resource(
                        "ec2", "aws.ec2.vpc", id: ctx.arn("ec2", "vpc/\(id)"), name: id, tags: tags(v),
                        [
                            "is_default": .bool((v["isDefault"] ?? "").bool), "flow_logs_enabled": .bool(flowLogged.contains(id)),
                            "instance_count": .number(Double(instancesByVpc[id] ?? 0)),
                            "cidr_block": (v["cidrBlock"]).json,
                        ]))
            }
        }
        for page in try await pages("DescribeSubnets") {
            for s in page.list("subnetSet") {
                let id = s["subnetId"] ?? ""
                out.append(
                    ctx.resource(
                        "ec2", "aws.ec2.subnet", id: ctx.arn("ec2", "subnet/\(id)"), name: id, tags: tags(s),
                        [
                            "map_public_ip_on_launch": .bool((s["mapPublicIpOnLaunch"] ?? "").bool), "vpc_id": (s["vpcId"]).json,
                            "default_for_az": .bool((s["defaultForAz"] ?? "").bool),
                        ]))
            }
        }
        for page in try await pages("DescribeNetworkAcls") {
            for n in page.list("networkAclSet") {
                let id = n["networkAclId"] ?? ""
                out.append(
                    ctx.resource(
                        "ec2", "aws.ec2.network_acl", id: ctx.arn("ec2", "network-acl/\(id)"), name: id, tags: tags(n),
                        [
                            "is_default": .bool((n["default"] ?? "").bool), "vpc_id": (n["vpcId"]).json,
                            "world_open_admin_ports": .bool(naclAdminOpen(n.list("entrySet"))),
                        ]))
            }
        }
        return try await Utilization.enrich(out, ctx: ctx)
    }

    /// First-match evaluation of inbound entries for traffic from anywhere to 22 or 3389.
    static func naclAdminOpen(_ entries: [XMLNode]) -> Bool {
        let inbound = entries.filter { $0["egress"] != "true" && ($0["cidrBlock"] == "0.0.0.0/0" || $0["ipv6CidrBlock"] == "::/0") }
            .sorted { (Int($0["ruleNumber"] ?? "") ?? 32767) < (Int($1["ruleNumber"] ?? "") ?? 32767) }
        for port in [22, 3389] {
            for e in inbound {
                let proto = e["protocol"] ?? ""
                guard proto == "-1" || proto == "6" || proto == "all" || proto == "tcp" else { continue }
                if proto != "-1" && proto != "all" {
                    let from = Int(e.path("portRange/from")?.text ?? "") ?? 0
                    let to = Int(e.path("portRange/to")?.text ?? "") ?? 65535
                    guard from <= port && port <= to else { continue }
                }
                if e["ruleAction"] == "allow" { return true }
                break
            }
        }
        return false
    }
}
