import Foundation
import ScanEngine
import VigilCore

enum KMSCollector {
    @Sendable static func collect(_ ctx: CollectContext) async throws -> [Resource] {
        let c = ctx.client
        @Sendable func call(_ action: String, _ body: [String: Any] = [:]) async throws -> AWSJSON {
            try await c.json(service: "kms", region: ctx.region, target: "TrentService.\(action)", body: body)
        }
        let keys = try await c.jsonPages(
            service: "kms", region: ctx.region, target: "TrentService.ListKeys", inToken: "Marker", outToken: "NextMarker"
        )
        .flatMap { ($0["Keys"] as? [[String: Any]] ?? []).compactMap { $0["KeyId"] as? String } }
        var aliases: [String: String] = [:]
        for page in try await c.jsonPages(
            service: "kms", region: ctx.region, target: "TrentService.ListAliases", inToken: "Marker", outToken: "NextMarker")
        {
            for a in page["Aliases"] as? [[String: Any]] ?? [] {
                if let k = a["TargetKeyId"] as? String, let n = a["AliasName"] as? String { aliases[k] = n }
            }
        }
        let keyAliases = aliases
        return try await Concurrently.map(keys, width: ctx.width) { id -> Resource in
            let meta = (try await call("DescribeKey", ["KeyId": id])["KeyMetadata"] as? [String: Any]) ?? [:]
            let manager = meta["KeyManager"] as? String ?? "CUSTOMER"
            let state = meta["KeyState"] as? String ?? "Enabled"
            let spec = (meta["KeySpec"] ?? meta["CustomerMasterKeySpec"]) as? String ?? "SYMMETRIC_DEFAULT"
            var a: [String: JSONValue] = [
                "key_manager": .string(manager), "key_state": .string(state), "key_spec": .string(spec),
                "description": .string(meta["Description"] as? String ?? ""),
            ]
            if manager == "CUSTOMER" && spec == "SYMMETRIC_DEFAULT" && state == "Enabled" {
                a["rotation_enabled"] = .bool(try await call("GetKeyRotationStatus", ["KeyId": id])["KeyRotationEnabled"] as? Bool ?? false)
            }
            if let policy = try await optional(["NotFoundException"], { try await call("GetKeyPolicy", ["KeyId": id, "PolicyName": "default"]) }) {
                a["policy_public"] = .bool(PolicyFacts(document: policy["Policy"] as? String, ownAccount: ctx.account).allowsPublicPrincipal)
            }
            let arn = meta["Arn"] as? String ?? ctx.arn("kms", "key/\(id)")
            return ctx.resource("kms", "aws.kms.key", id: arn, name: keyAliases[id] ?? id, a)
        }
    }
}

enum CloudTrailCollector {
    static let prefix = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101"
    @Sendable static func collect(_ ctx: CollectContext) async throws -> [Resource] {
        let c = ctx.client
        let trails =
            try await c.json(
                service: "cloudtrail", region: ctx.region, target: "\(prefix).DescribeTrails",
                body: ["includeShadowTrails": true])["trailList"] as? [[String: Any]] ?? []
        var multiRegionLogging = false
        var out: [Resource] = []
        for t in trails {
            let arn = t["TrailARN"] as? String ?? ""
            let status = try await c.json(service: "cloudtrail", region: ctx.region, target: "\(prefix).GetTrailStatus", body: ["Name": arn])
            let logging = status["IsLogging"] as? Bool ?? false
            let multi = t["IsMultiRegionTrail"] as? Bool ?? false
            if multi && logging { multiRegionLogging = true }
            guard (t["HomeRegion"] as? String ?? ctx.region) == ctx.region else { continue }
            out.append(
                ctx.resource(
                    "cloudtrail", "aws.cloudtrail.trail", id: arn, name: t["Name"] as? String ?? arn,
                    [
                        "is_multi_region": .bool(multi), "is_logging": .bool(logging),
                        "log_file_validation": .bool(t["LogFileValidationEnabled"] as? Bool ?? false),
                        "kms_encrypted": .bool(!((t["KmsKeyId"] as? String) ?? "").isEmpty),
                        "cloudwatch_logs": .bool(!((t["CloudWatchLogsLogGroupArn"] as? String) ?? "").isEmpty),
                        "s3_bucket": .string(t["S3BucketName"] as? String ?? ""),
                    ]))
        }
        out.append(
            ctx.resource(
                "cloudtrail", "aws.cloudtrail.region", id: ctx.arn("cloudtrail", "region-summary"), name: "cloudtrail-\(ctx.region)",
                ["multi_region_logging_trail": .bool(multiRegionLogging), "trail_count": .number(Double(trails.count))]))
        return out
    }
}

enum RDSCollector {
    static let version = "2014-10-31"
    @Sendable static func collect(_ ctx: CollectContext) async throws -> [Resource] {
        let c = ctx.client
        @Sendable func pages(_ action: String, _ params: [(String, String)] = []) async throws -> [XMLNode] {
            try await c.queryPages(
                service: "rds", region: ctx.region, action: action, version: version, params: params, inToken: "Marker", outToken: "Marker")
        }
        var out: [Resource] = []
        for page in try await pages("DescribeDBInstances") {
            for d in page.list("DBInstances") {
                let name = d["DBInstanceIdentifier"] ?? ""
                out.append(
                    ctx.resource(
                        "rds", "aws.rds.instance", id: d["DBInstanceArn"] ?? ctx.arn("rds", "db:\(name)"), name: name,
                        tags: tags(d, list: "TagList", key: "Key", value: "Value"),
                        [
                            "publicly_accessible": .bool((d["PubliclyAccessible"] ?? "").bool),
                            "storage_encrypted": .bool((d["StorageEncrypted"] ?? "").bool),
                            "backup_retention_days": .number(Double(d["BackupRetentionPeriod"] ?? "") ?? 0),
                            "multi_az": .bool((d["MultiAZ"] ?? "").bool),
                            "deletion_protection": .bool((d["DeletionProtection"] ?? "").bool),
                            "auto_minor_version_upgrade": .bool((d["AutoMinorVersionUpgrade"] ?? "").bool),
                            "engine": (d["Engine"]).json, "status": (d["DBInstanceStatus"]).json, "instance_class": (d["DBInstanceClass"]).json,
                        ]))
            }
        }
        let snapshots = try await pages("DescribeDBSnapshots", [("SnapshotType", "manual")]).flatMap { $0.list("DBSnapshots") }
        out += try await Concurrently.map(snapshots, width: ctx.width) { s -> Resource in
            let name = s["DBSnapshotIdentifier"] ?? ""
            let attrs = try await c.query(
                service: "rds", region: ctx.region, action: "DescribeDBSnapshotAttributes", version: version,
                params: [("DBSnapshotIdentifier", name)])
            let isPublic = attrs.all("DBSnapshotAttribute").contains { a in
                a["AttributeName"] == "restore" && a.list("AttributeValues").contains { $0.text == "all" }
            }
            return ctx.resource(
                "rds", "aws.rds.snapshot", id: s["DBSnapshotArn"] ?? ctx.arn("rds", "snapshot:\(name)"), name: name,
                [
                    "public": .bool(isPublic), "encrypted": .bool((s["Encrypted"] ?? "").bool), "db_instance": (s["DBInstanceIdentifier"]).json,
                ])
        }
        return try await Utilization.enrich(out, ctx: ctx)
    }
}

enum LambdaCollector {
    /// Lambda's `2024-01-15T10:00:00.000+0000`.
    static func parseDate(_ s: String) -> Date? {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "yyyy-MM-dd'T'HH:mm:ss.SSSZ"
        return f.date(from: s) ?? Timestamp.parse(s)
    }

    @Sendable static func collect(_ ctx: CollectContext) async throws -> [Resource] {
        let c = ctx.client
        var functions: [[String: Any]] = []
        var marker: String? = nil
        for _ in 0..<500 {
            let page = try await c.restJSON(
                service: "lambda", region: ctx.region, path: "/2015-03-31/functions/",
                query: marker.map { [("Marker", $0)] } ?? [])
            functions += page["Functions"] as? [[String: Any]] ?? []
            marker = page["NextMarker"] as? String
            if marker?.isEmpty ?? true { break }
        }
        let found = try await Concurrently.map(functions.map { AWSJSON(object: $0) }, width: ctx.width) { f -> Resource in
            let name = f["FunctionName"] as? String ?? ""
            let env = ((f["Environment"] as? [String: Any])?["Variables"] as? [String: Any] ?? [:]).compactMapValues { $0 as? String }
            let policy = try await optional(["ResourceNotFoundException"]) {
                try await c.restJSON(service: "lambda", region: ctx.region, path: "/2015-03-31/functions/\(name)/policy")
            }
            return ctx.resource(
                "lambda", "aws.lambda.function", id: f["FunctionArn"] as? String ?? ctx.arn("lambda", "function:\(name)"), name: name,
                [
                    "runtime": .string(f["Runtime"] as? String ?? ""),
                    "secret_env_vars": .array(SecretScanner.secretVariables(env).map { .string($0) }),
                    "policy_public": .bool(PolicyFacts(document: policy?["Policy"] as? String, ownAccount: ctx.account).allowsPublicPrincipal),
                    "role": .string(f["Role"] as? String ?? ""),
                    "last_modified_days": (f["LastModified"] as? String).flatMap(Self.parseDate).map {
                        .number(Double(Int(ctx.now.timeIntervalSince($0) / 86_400)))
                    } ?? .null,
                ])
        }
        return try await Utilization.enrich(found, ctx: ctx)
    }
}

enum SQSCollector {
    @Sendable static func collect(_ ctx: CollectContext) async throws -> [Resource] {
        let c = ctx.client
        let urls = try await c.queryPages(service: "sqs", region: ctx.region, action: "ListQueues", version: "2012-11-05")
            .flatMap { $0.all("QueueUrl").map(\.text) }
        return try await Concurrently.map(urls, width: ctx.width) { url -> Resource in
            let xml = try await c.query(
                service: "sqs", region: ctx.region, action: "GetQueueAttributes", version: "2012-11-05",
                params: [("QueueUrl", url), ("AttributeName.1", "All")])
            var attrs: [String: String] = [:]
            for a in xml.all("Attribute") { if let n = a["Name"] { attrs[n] = a["Value"] ?? "" } }
            let name = String(url.split(separator: "/").last ?? "")
            let encrypted = !(attrs["KmsMasterKeyId"] ?? "").isEmpty || attrs["SqsManagedSseEnabled"] == "true"
            return ctx.resource(
                "sqs", "aws.sqs.queue", id: attrs["QueueArn"] ?? ctx.arn("sqs", name), name: name,
                [
                    "policy_public": .bool(PolicyFacts(document: attrs["Policy"], ownAccount: ctx.account).allowsPublicPrincipal),
                    "encrypted": .bool(encrypted), "url": .string(url),
                ])
        }
    }
}

enum SNSCollector {
    @Sendable static func collect(_ ctx: CollectContext) async throws -> [Resource] {
        let c = ctx.client
        let arns = try await c.queryPages(service: "sns", region: ctx.region, action: "ListTopics", version: "2010-03-31")
            .flatMap { $0.all("TopicArn").map(\.text) }
        return try await Concurrently.map(arns, width: ctx.width) { arn -> Resource in
            let xml = try await c.query(
                service: "sns", region: ctx.region, action: "GetTopicAttributes", version: "2010-03-31", params: [("TopicArn", arn)])
            var attrs: [String: String] = [:]
            for e in xml.all("entry") { if let k = e["key"] { attrs[k] = e["value"] ?? "" } }
            return ctx.resource(
                "sns", "aws.sns.topic", id: arn, name: String(arn.split(separator: ":").last ?? ""),
                [
                    "policy_public": .bool(PolicyFacts(document: attrs["Policy"], ownAccount: ctx.account).allowsPublicPrincipal),
                    "encrypted": .bool(!(attrs["KmsMasterKeyId"] ?? "").isEmpty),
                ])
        }
    }
}

enum SecretsManagerCollector {
    @Sendable static func collect(_ ctx: CollectContext) async throws -> [Resource] {
        let c = ctx.client
        let secrets = try await c.jsonPages(service: "secretsmanager", region: ctx.region, target: "secretsmanager.ListSecrets")
            .flatMap { $0["SecretList"] as? [[String: Any]] ?? [] }
        return try await Concurrently.map(secrets.map { AWSJSON(object: $0) }, width: ctx.width) { s -> Resource in
            let arn = s["ARN"] as? String ?? ""
            let policy = try await optional(["ResourceNotFoundException"]) {
                try await c.json(service: "secretsmanager", region: ctx.region, target: "secretsmanager.GetResourcePolicy", body: ["SecretId": arn])
            }
            var a: [String: JSONValue] = [
                "rotation_enabled": .bool(s["RotationEnabled"] as? Bool ?? false),
                "policy_public": .bool(PolicyFacts(document: policy?["ResourcePolicy"] as? String, ownAccount: ctx.account).allowsPublicPrincipal),
            ]
            if let last = s["LastAccessedDate"] as? Double {
                a["days_since_last_access"] = .number(Dates.days(since: Date(timeIntervalSince1970: last), now: ctx.now) ?? 0)
            }
            var t: [String: String] = [:]
            for tag in s["Tags"] as? [[String: Any]] ?? [] { if let k = tag["Key"] as? String { t[k] = tag["Value"] as? String ?? "" } }
            return ctx.resource("secretsmanager", "aws.secretsmanager.secret", id: arn, name: s["Name"] as? String ?? arn, tags: t, a)
        }
    }
}

enum ELBv2Collector {
    static let version = "2015-12-01"
    @Sendable static func collect(_ ctx: CollectContext) async throws -> [Resource] {
        let c = ctx.client
        @Sendable func q(_ action: String, _ params: [(String, String)]) async throws -> XMLNode {
            try await c.query(service: "elasticloadbalancing", region: ctx.region, action: action, version: version, params: params)
        }
        let lbs = try await c.queryPages(
            service: "elasticloadbalancing", region: ctx.region, action: "DescribeLoadBalancers", version: version,
            inToken: "Marker", outToken: "NextMarker"
        ).flatMap { $0.list("LoadBalancers") }
        let found = try await Concurrently.map(lbs, width: ctx.width) { lb -> Resource in
            let arn = lb["LoadBalancerArn"] ?? ""
            let listeners = try await q("DescribeListeners", [("LoadBalancerArn", arn)]).list("Listeners")
            let httpNoRedirect = listeners.contains { l in
                l["Protocol"] == "HTTP" && !l.list("DefaultActions").contains { $0["Type"] == "redirect" }
            }
            // Only TLS listeners negotiate with a security policy (some endpoints echo one on HTTP listeners).
            let policies = listeners.filter { ["HTTPS", "TLS"].contains($0["Protocol"] ?? "") }.compactMap { $0["SslPolicy"] }.filter { !$0.isEmpty }
            var attrs: [String: String] = [:]
            for a in try await q("DescribeLoadBalancerAttributes", [("LoadBalancerArn", arn)]).list("Attributes") {
                if let k = a["Key"] { attrs[k] = a["Value"] ?? "" }
            }
            var targets = 0
            for tg in try await q("DescribeTargetGroups", [("LoadBalancerArn", arn)]).list("TargetGroups") {
                targets += try await q("DescribeTargetHealth", [("TargetGroupArn", tg["TargetGroupArn"] ?? "")]).list("TargetHealthDescriptions")
                    .count
            }
            return ctx.resource(
                "elbv2", "aws.elbv2.load_balancer", id: arn, name: lb["LoadBalancerName"] ?? arn,
                [
                    "type": .string(lb["Type"] ?? "application"), "scheme": (lb["Scheme"]).json,
                    "http_listener_without_redirect": .bool(httpNoRedirect), "ssl_policies": .array(policies.map { .string($0) }),
                    "access_logs_enabled": .bool(attrs["access_logs.s3.enabled"] == "true"),
                    "deletion_protection": .bool(attrs["deletion_protection.enabled"] == "true"),
                    "registered_target_count": .number(Double(targets)), "listener_count": .number(Double(listeners.count)),
                ])
        }
        return try await Utilization.enrich(found, ctx: ctx)
    }
}

enum ConfigCollector {
    @Sendable static func collect(_ ctx: CollectContext) async throws -> [Resource] {
        let c = ctx.client
        let recorders =
            try await c.json(service: "config", region: ctx.region, target: "StarlingDoveService.DescribeConfigurationRecorders")[
                "ConfigurationRecorders"]
            as? [Any] ?? []
        let status =
            try await c.json(service: "config", region: ctx.region, target: "StarlingDoveService.DescribeConfigurationRecorderStatus")[
                "ConfigurationRecordersStatus"] as? [[String: Any]] ?? []
        return [
            ctx.resource(
                "config", "aws.config.region", id: ctx.arn("config", "region-summary"), name: "config-\(ctx.region)",
                [
                    "recorder_present": .bool(!recorders.isEmpty), "recording": .bool(status.contains { $0["recording"] as? Bool == true }),
                ])
        ]
    }
}

enum DynamoDBCollector {
    @Sendable static func collect(_ ctx: CollectContext) async throws -> [Resource] {
        let c = ctx.client
        let names = try await c.jsonPages(
            service: "dynamodb", region: ctx.region, target: "DynamoDB_20120810.ListTables", inToken: "ExclusiveStartTableName",
            outToken: "LastEvaluatedTableName", contentType: "application/x-amz-json-1.0"
        ).flatMap { $0["TableNames"] as? [String] ?? [] }
        let found = try await Concurrently.map(names, width: ctx.width) { name -> Resource in
            let t = try await c.json(
                service: "dynamodb", region: ctx.region, target: "DynamoDB_20120810.DescribeTable", body: ["TableName": name],
                contentType: "application/x-amz-json-1.0")
            let table = t["Table"] as? [String: Any] ?? [:]
            let throughput = table["ProvisionedThroughput"] as? [String: Any] ?? [:]
            let mode = ((table["BillingModeSummary"] as? [String: Any])?["BillingMode"] as? String) ?? "PROVISIONED"
            return ctx.resource(
                "dynamodb", "aws.dynamodb.table", id: table["TableArn"] as? String ?? ctx.arn("dynamodb", "table/\(name)"), name: name,
                [
                    "billing_mode": .string(mode), "status": .string(table["TableStatus"] as? String ?? ""),
                    "read_capacity": .number((throughput["ReadCapacityUnits"] as? NSNumber)?.doubleValue ?? 0),
                    "write_capacity": .number((throughput["WriteCapacityUnits"] as? NSNumber)?.doubleValue ?? 0),
                ])
        }
        return try await Utilization.enrich(found, ctx: ctx)
    }
}

enum ElastiCacheCollector {
    static let version = "2015-02-02"
    @Sendable static func collect(_ ctx: CollectContext) async throws -> [Resource] {
        var out: [Resource] = []
        for page in try await ctx.client.queryPages(
            service: "elasticache", region: ctx.region, action: "DescribeCacheClusters", version: version, inToken: "Marker", outToken: "Marker")
        {
            for cl in page.list("CacheClusters") {
                let id = cl["CacheClusterId"] ?? ""
                out.append(
                    ctx.resource(
                        "elasticache", "aws.elasticache.cluster", id: cl["ARN"] ?? ctx.arn("elasticache", "cluster:\(id)"), name: id,
                        [
                            "status": (cl["CacheClusterStatus"]).json, "engine": (cl["Engine"]).json, "node_type": (cl["CacheNodeType"]).json,
                            "nodes": .number(Double(cl["NumCacheNodes"] ?? "") ?? 1),
                        ]))
            }
        }
        return try await Utilization.enrich(out, ctx: ctx)
    }
}

enum RedshiftCollector {
    static let version = "2012-12-01"
    @Sendable static func collect(_ ctx: CollectContext) async throws -> [Resource] {
        var out: [Resource] = []
        for page in try await ctx.client.queryPages(
            service: "redshift", region: ctx.region, action: "DescribeClusters", version: version, inToken: "Marker", outToken: "Marker")
        {
            for cl in page.list("Clusters") {
                let id = cl["ClusterIdentifier"] ?? ""
                out.append(
                    ctx.resource(
                        "redshift", "aws.redshift.cluster", id: ctx.arn("redshift", "cluster:\(id)"), name: id,
                        [
                            "status": (cl["ClusterStatus"]).json, "node_type": (cl["NodeType"]).json,
                            "nodes": .number(Double(cl["NumberOfNodes"] ?? "") ?? 1), "encrypted": .bool((cl["Encrypted"] ?? "").bool),
                            "publicly_accessible": .bool((cl["PubliclyAccessible"] ?? "").bool),
                        ]))
            }
        }
        return try await Utilization.enrich(out, ctx: ctx)
    }
}

enum LogsCollector {
    @Sendable static func collect(_ ctx: CollectContext) async throws -> [Resource] {
        let groups = try await ctx.client.jsonPages(service: "logs", region: ctx.region, target: "Logs_20140328.DescribeLogGroups").flatMap {
            $0["logGroups"] as? [[String: Any]] ?? []
        }
        return groups.map { g in
            let name = g["logGroupName"] as? String ?? ""
            let gib = ((g["storedBytes"] as? NSNumber)?.doubleValue ?? 0) / 1_073_741_824
            return ctx.resource(
                "logs", "aws.logs.log_group", id: ctx.arn("logs", "log-group:\(name)"), name: name,
                [
                    "retention_days": (g["retentionInDays"] as? NSNumber).map { .number($0.doubleValue) } ?? .null,
                    "retention_set": .bool(g["retentionInDays"] is NSNumber),
                    "stored_gib": .number(round1(gib)), "monthly_cost_usd": .number(money(gib * Prices.logsGB(region: ctx.region))),
                ])
        }
    }
}
