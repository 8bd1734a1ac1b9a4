import Foundation
import ScanEngine
import VigilCore

/// What a collector gets: a signed client for the connection's account and one region.
public struct CollectContext: Sendable {
    public let client: AWSClient
    public let account: String
    public let region: String
    public let now: Date
    /// Per-resource calls in one part run on at most this many threads.
    public let width: Int
    /// The workspace's utilisation thresholds (idle and underused resources).
    public let policy: ScanPolicy

    public init(client: AWSClient, account: String, region: String, now: Date = Date(), width: Int = 8, policy: ScanPolicy = .standard) {
        self.client = client
        self.account = account
        self.region = region
        self.now = now
        self.width = width
        self.policy = policy
    }

    @Sendable func resource(
        _ service: String, _ type: String, id: String, name: String, region: String? = nil,
        tags: [String: String] = [:], _ attributes: [String: JSONValue]
    ) -> Resource {
        Resource(
            account: account, region: region ?? self.region, service: service, type: type, id: id, name: name,
            tags: tags, attributes: attributes)
    }

    @Sendable func arn(_ service: String, _ rest: String, global: Bool = false) -> String {
        "arn:aws:\(service):\(global ? "" : region):\(account):\(rest)"
    }
}

/// Collects one AWS service in one region (or once per account for global services).
public struct AWSCollector: Sendable {
    public let service: String
    /// Global services (IAM, S3's bucket list) run once per scan, as region "global".
    public let global: Bool
    public let collect: @Sendable (CollectContext) async throws -> [Resource]
}

public enum AWSCollectors {
    public static let all: [AWSCollector] = [
        AWSCollector(service: "s3", global: true, collect: S3Collector.collect),
        AWSCollector(service: "iam", global: true, collect: IAMCollector.collect),
        AWSCollector(service: "ec2", global: false, collect: EC2Collector.collect),
        AWSCollector(service: "kms", global: false, collect: KMSCollector.collect),
        AWSCollector(service: "cloudtrail", global: false, collect: CloudTrailCollector.collect),
        AWSCollector(service: "rds", global: false, collect: RDSCollector.collect),
        AWSCollector(service: "lambda", global: false, collect: LambdaCollector.collect),
        AWSCollector(service: "sqs", global: false, collect: SQSCollector.collect),
        AWSCollector(service: "sns", global: false, collect: SNSCollector.collect),
        AWSCollector(service: "secretsmanager", global: false, collect: SecretsManagerCollector.collect),
        AWSCollector(service: "elbv2", global: false, collect: ELBv2Collector.collect),
        AWSCollector(service: "config", global: false, collect: ConfigCollector.collect),
        AWSCollector(service: "dynamodb", global: false, collect: DynamoDBCollector.collect),
        AWSCollector(service: "elasticache", global: false, collect: ElastiCacheCollector.collect),
        AWSCollector(service: "redshift", global: false, collect: RedshiftCollector.collect),
        AWSCollector(service: "logs", global: false, collect: LogsCollector.collect),
    ]
    public static let names: [String] = all.map(\.service)
    public static func named(_ s: String) -> AWSCollector? { all.first { $0.service == s } }
}

/// Tags from EC2 `tagSet` or IAM/RDS `Tags`/`TagList` member lists.
func tags(_ node: XMLNode?, list: String = "tagSet", key: String = "key", value: String = "value") -> [String: String] {
    var out: [String: String] = [:]
    for t in node?.list(list) ?? [] { if let k = t[key] { out[k] = t[value] ?? "" } }
    return out
}

extension String {
    var bool: Bool { self == "true" }
}

extension Optional where Wrapped == String {
    var json: JSONValue { self.map { .string($0) } ?? .null }
}

/// Treats "not found" style errors as an absent configuration (e.g. no bucket policy).
public func optional<T>(_ codes: Set<String>, _ body: () async throws -> T) async throws -> T? {
    do { return try await body() } catch let e as AWSError where codes.contains(e.code) || e.status == 404 { return nil }
}

extension AWSCollector {
    /// Collects one part and evaluates it (blocking; run it on its own thread).
    public func run(
        context: CollectContext, rules: [String: [Rule]], tenantId: String,
        connectionId: String
    ) async throws -> PartOutcome {
        let resources = try await collect(context)
        return PartOutcome(resources: resources, results: Scanner.evaluate(resources, rules: rules, tenantId: tenantId, connectionId: connectionId))
    }
}
