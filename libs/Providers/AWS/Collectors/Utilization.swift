import Foundation
import ScanEngine
import VigilCore

/// Adds what cost rules decide on to collected resources: CloudWatch utilisation over the policy's
/// lookback (`utilization`: the figures, `idle` / `underused` judged by the workspace's thresholds,
/// a sentence quoting them and the policy used) and the resource's monthly price from `Prices`.
/// A resource whose metrics have no datapoints gets `utilization.known = false` and no verdict.
public enum Utilization {
    struct Plan {
        var index: Int
        var service: String
        var queries: [String: MetricQuery]
    }

    public static func enrich(_ given: [Resource], ctx: CollectContext) async throws -> [Resource] {
        let resources = given.map { priced($0, region: ctx.region) }
        var plans: [Plan] = []
        for (i, r) in resources.enumerated() {
            if let q = queries(for: r) { plans.append(Plan(index: i, service: q.service, queries: q.queries)) }
        }
        guard !plans.isEmpty else { return resources }
        let days = plans.map { ctx.policy.thresholds(for: $0.service).lookbackDays ?? 14 }.max() ?? 14
        let data = try await CloudWatchMetrics.fetch(plans.flatMap { $0.queries.values }, ctx: ctx, days: days)
        var out = resources
        for p in plans {
            let t = ctx.policy.thresholds(for: p.service)
            let n = t.lookbackDays ?? 14
            var series: [String: [Double]] = [:]
            for (name, q) in p.queries { series[name] = Array((data[q] ?? []).suffix(n)) }
            out[p.index] = judge(out[p.index], series: series, thresholds: t, service: p.service, region: ctx.region)
        }
        return out
    }

    /// The resource's list price a month (`monthly_cost_usd`, `price_region`) and the cheaper choices
    /// cost rules suggest (one size down, the current generation, gp3).
    static func priced(_ r: Resource, region: String) -> Resource {
        var r = r
        var a = r.attributes
        func set(_ p: (usd: Double, region: String)?) {
            guard let p else { return }
            a["monthly_cost_usd"] = .number(money(p.usd))
            a["price_region"] = .string(p.region)
        }
        switch r.type {
        case "aws.ec2.instance":
            guard let type = a["instance_type"]?.stringValue else { break }
            let cost = Prices.ec2Monthly(type, region: region)
            set(cost)
            if let down = Prices.oneSizeDown(type), let c = cost, let d = Prices.ec2Monthly(down, region: region) {
                a["rightsize_to"] = .string(down)
                a["rightsize_savings_usd"] = .number(money(c.usd - d.usd))
            }
            let next = Prices.currentGeneration(of: type)
            a["previous_generation"] = .bool(next != nil)
            if let next, let c = cost, let n = Prices.ec2Monthly(next, region: region) {
                a["current_generation_type"] = .string(next)
                a["generation_savings_usd"] = .number(money(max(0, c.usd - n.usd)))
            }
        case "aws.ec2.volume":
            let type = a["volume_type"]?.stringValue ?? "gp2"
            let gib = a["size_gib"]?.numberValue ?? 0
            let p = Prices.ebsGiBMonth(type, region: region)
            set((p.usd * gib, p.region))
            if type == "gp2" { a["gp3_savings_usd"] = .number(money(gib * (p.usd - Prices.ebsGiBMonth("gp3", region: region).usd))) }
        case "aws.ec2.nat_gateway": set((Prices.natMonthly(region: region), Prices.pick(Prices.natHour, region).1))
        case "aws.ec2.image":
            a["monthly_cost_usd"] = .number(money((a["snapshot_gib"]?.numberValue ?? 0) * Prices.snapshotGiB(region: region)))
        case "aws.rds.instance":
            if let cls = a["instance_class"]?.stringValue {
                set(Prices.rdsMonthly(cls, region: region, multiAZ: a["multi_az"]?.boolValue ?? false))
            }
        case "aws.elbv2.load_balancer":
            set(
                (
                    Prices.loadBalancerMonthly(type: a["type"]?.stringValue ?? "application", region: region),
                    Prices.pick(Prices.loadBalancerHour, region).1
                ))
        case "aws.elasticache.cluster":
            if let t = a["node_type"]?.stringValue, let p = Prices.cacheMonthly(t, region: region) {
                set((p.usd * (a["nodes"]?.numberValue ?? 1), p.region))
            }
        case "aws.redshift.cluster":
            if let t = a["node_type"]?.stringValue { set(Prices.redshiftMonthly(t, nodes: Int(a["nodes"]?.numberValue ?? 1), region: region)) }
        default:
            break
        }
        r.attributes = a
        return r
    }

    /// Which series judge a resource type: the state it must be in, the policy's service, the
    /// namespace, the dimension naming the resource, and (name, metric, statistic) per series.
    struct Series {
        var type: String
        var state: (attribute: String, value: String)?
        var service: String
        var namespace: String
        var dimension: String
        var metrics: [(name: String, metric: String, stat: String)]
    }

    static let series: [Series] = [
        Series(
            type: "aws.ec2.instance", state: ("state", "running"), service: "ec2", namespace: "AWS/EC2", dimension: "InstanceId",
            metrics: [
                ("cpu", "CPUUtilization", "Average"), ("cpu_max", "CPUUtilization", "Maximum"), ("net_in", "NetworkIn", "Sum"),
                ("net_out", "NetworkOut", "Sum"),
            ]),
        Series(
            type: "aws.ec2.volume", state: ("state", "in-use"), service: "ebs", namespace: "AWS/EBS", dimension: "VolumeId",
            metrics: [("read", "VolumeReadOps", "Sum"), ("write", "VolumeWriteOps", "Sum")]),
        Series(
            type: "aws.ec2.nat_gateway", state: ("state", "available"), service: "nat", namespace: "AWS/NATGateway", dimension: "NatGatewayId",
            metrics: [("out", "BytesOutToDestination", "Sum"), ("in", "BytesInFromSource", "Sum")]),
        Series(
            type: "aws.rds.instance", state: ("status", "available"), service: "rds", namespace: "AWS/RDS", dimension: "DBInstanceIdentifier",
            metrics: [
                ("cpu", "CPUUtilization", "Average"), ("cpu_max", "CPUUtilization", "Maximum"), ("connections", "DatabaseConnections", "Maximum"),
            ]),
        Series(
            type: "aws.elbv2.load_balancer", state: nil, service: "elbv2", namespace: "AWS/ApplicationELB", dimension: "LoadBalancer",
            metrics: [("requests", "RequestCount", "Sum")]),
        Series(
            type: "aws.lambda.function", state: nil, service: "lambda", namespace: "AWS/Lambda", dimension: "FunctionName",
            metrics: [("invocations", "Invocations", "Sum")]),
        Series(
            type: "aws.dynamodb.table", state: ("billing_mode", "PROVISIONED"), service: "dynamodb", namespace: "AWS/DynamoDB",
            dimension: "TableName", metrics: [("read", "ConsumedReadCapacityUnits", "Sum"), ("write", "ConsumedWriteCapacityUnits", "Sum")]),
        Series(
            type: "aws.elasticache.cluster", state: ("status", "available"), service: "elasticache", namespace: "AWS/ElastiCache",
            dimension: "CacheClusterId", metrics: [("cpu", "CPUUtilization", "Average"), ("connections", "CurrConnections", "Maximum")]),
        Series(
            type: "aws.redshift.cluster", state: ("status", "available"), service: "redshift", namespace: "AWS/Redshift",
            dimension: "ClusterIdentifier", metrics: [("cpu", "CPUUtilization", "Average")]),
    ]

    /// The CloudWatch series a resource is judged on, or nil when it has none.
    static func queries(for r: Resource) -> (service: String, queries: [String: MetricQuery])? {
        guard var s = series.first(where: { $0.type == r.type }) else { return nil }
        if let (attribute, value) = s.state, r.attributes[attribute]?.stringValue != value { return nil }
        var name = r.name
        if r.type == "aws.elbv2.load_balancer" {
            // CloudWatch names a load balancer by the end of its ARN: app/<name>/<id> or net/<name>/<id>;
            // network load balancers count new flows instead of requests.
            guard let range = r.id.range(of: ":loadbalancer/") else { return nil }
            name = String(r.id[range.upperBound...])
            if r.attributes["type"]?.stringValue == "network" {
                s.namespace = "AWS/NetworkELB"
                s.metrics = [("requests", "NewFlowCount", "Sum")]
            }
        }
        var out: [String: MetricQuery] = [:]
        for m in s.metrics { out[m.name] = MetricQuery(s.namespace, m.metric, [s.dimension: name], m.stat) }
        return (s.service, out)
    }

    /// 2, 1.9, 250 (no trailing .0; one decimal under 100).
    static func f(_ v: Double) -> String {
        let r = v >= 100 ? v.rounded() : round1(v)
        return r == r.rounded() ? String(Int(r)) : String(r)
    }

    static func policyText(_ t: ScanPolicy.Thresholds, _ keys: [String]) -> String {
        var parts: [String] = []
        for k in keys {
            switch k {
            case "cpu": parts.append("CPU ≤ \(f(t.cpuPercent ?? 5)) %")
            case "network": parts.append("network ≤ \(f(t.networkMb ?? 5)) MB/day")
            case "connections": parts.append("connections ≤ \(f(t.connections ?? 0))")
            case "requests": parts.append("≤ \(f(t.requests ?? 0)) a day")
            default: break
            }
        }
        return parts.joined(separator: ", ") + ", over \(t.lookbackDays ?? 14) days"
    }

    /// The verdict and the figures it rests on, written into the resource.
    static func judge(_ r: Resource, series s: [String: [Double]], thresholds t: ScanPolicy.Thresholds, service: String, region: String) -> Resource {
        var r = r
        var u: [String: JSONValue] = ["known": .bool(false)]
        let cpuLimit = t.cpuPercent ?? 5
        let netLimit = t.networkMb ?? 5
        let connLimit = t.connections ?? 0
        let reqLimit = t.requests ?? 0
        func verdict(_ idle: Bool, _ summary: String, _ policy: String, _ extra: [String: JSONValue] = [:]) {
            u["known"] = .bool(true)
            u["idle"] = .bool(idle)
            u["summary"] = .string(summary)
            u["policy"] = .string(policy)
            u.merge(extra) { $1 }
        }
        switch r.type {
        case "aws.ec2.instance":
            if let cpu = SeriesSummary(averages: s["cpu"] ?? [], maxima: s["cpu_max"]), let inn = SeriesSummary.perDay(s["net_in"]),
                let out = SeriesSummary.perDay(s["net_out"])
            {
                let mb = (inn + out) / 1_000_000
                let idle = cpu.average <= cpuLimit && mb <= netLimit
                let underused = !idle && cpu.p95 <= cpuLimit * 4
                verdict(
                    idle,
                    "CPU avg \(f(cpu.average)) %, max \(f(cpu.maximum)) %, p95 of daily peaks \(f(cpu.p95)) %; "
                        + "network \(f(mb)) MB/day over \(cpu.days) days",
                    policyText(t, ["cpu", "network"]),
                    [
                        "underused": .bool(underused), "cpu_avg": .number(round1(cpu.average)), "cpu_max": .number(round1(cpu.maximum)),
                        "cpu_p95": .number(round1(cpu.p95)), "network_mb_per_day": .number(round1(mb)), "days": .number(Double(cpu.days)),
                    ])
            }
        case "aws.ec2.volume":
            if let read = SeriesSummary.perDay(s["read"]), let write = SeriesSummary.perDay(s["write"]) {
                let ops = read + write
                verdict(
                    ops <= reqLimit, "\(f(ops)) read and write operations a day over \(s["read"]?.count ?? 0) days",
                    "I/O " + policyText(t, ["requests"]))
            }
        case "aws.ec2.nat_gateway":
            if let o = SeriesSummary.perDay(s["out"]), let i = SeriesSummary.perDay(s["in"]) {
                let mb = (o + i) / 1_000_000
                verdict(mb <= netLimit, "\(f(mb)) MB/day through the gateway over \(s["out"]?.count ?? 0) days", policyText(t, ["network"]))
            }
        case "aws.rds.instance":
            if let cpu = SeriesSummary(averages: s["cpu"] ?? [], maxima: s["cpu_max"]), let conns = s["connections"], !conns.isEmpty {
                let peak = conns.max() ?? 0
                verdict(
                    cpu.average <= cpuLimit && peak <= connLimit,
                    "CPU avg \(f(cpu.average)) %, max \(f(cpu.maximum)) %; at most \(f(peak)) connections over \(cpu.days) days",
                    policyText(t, ["cpu", "connections"]), ["cpu_avg": .number(round1(cpu.average)), "connections_max": .number(peak)])
            }
        case "aws.elbv2.load_balancer":
            if let req = SeriesSummary.perDay(s["requests"]) {
                verdict(req <= reqLimit, "\(f(req)) requests a day over \(s["requests"]?.count ?? 0) days", "requests " + policyText(t, ["requests"]))
            }
        case "aws.lambda.function":
            if let inv = s["invocations"], !inv.isEmpty {
                let total = inv.reduce(0, +)
                verdict(
                    total <= reqLimit * Double(inv.count), "\(f(total)) invocations in \(inv.count) days",
                    "invocations " + policyText(t, ["requests"]))
            } else if let age = r.attributes["last_modified_days"]?.numberValue, age >= Double(t.lookbackDays ?? 14) {
                // Lambda publishes no datapoint for a day without calls; for a function unchanged over the
                // whole window, no datapoint at all means no call. A newer one stays unknown.
                verdict(
                    true, "no invocations recorded in \(t.lookbackDays ?? 14) days; unchanged for \(Int(age)) days",
                    "invocations " + policyText(t, ["requests"]))
            }
        case "aws.dynamodb.table":
            if let read = SeriesSummary.perDay(s["read"]), let write = SeriesSummary.perDay(s["write"]) {
                let rcu = r.attributes["read_capacity"]?.numberValue ?? 0
                let wcu = r.attributes["write_capacity"]?.numberValue ?? 0
                let usedR = read / 86_400
                let usedW = write / 86_400
                // Keep 25 % headroom over the average use, and at least one unit.
                let needR = max(1, (usedR * 1.25).rounded(.up))
                let needW = max(1, (usedW * 1.25).rounded(.up))
                let spareR = max(0, rcu - needR)
                let spareW = max(0, wcu - needW)
                let saving =
                    spareR * Prices.dynamoUnitMonth(write: false, region: region) + spareW * Prices.dynamoUnitMonth(write: true, region: region)
                let over = (rcu > 0 && usedR < rcu * 0.2 && spareR >= 1) || (wcu > 0 && usedW < wcu * 0.2 && spareW >= 1)
                verdict(
                    false,
                    "reads \(f(usedR)) of \(f(rcu)) provisioned units, writes \(f(usedW)) of \(f(wcu)) (averages over \(s["read"]?.count ?? 0) days)",
                    "over-provisioned below 20 % use, over \(t.lookbackDays ?? 14) days",
                    ["over_provisioned": .bool(over), "savings_usd": .number(money(saving))])
            }
        case "aws.elasticache.cluster":
            if let cpu = SeriesSummary(averages: s["cpu"] ?? []), let conns = s["connections"], !conns.isEmpty {
                let peak = conns.max() ?? 0
                verdict(
                    cpu.average <= cpuLimit && peak <= connLimit,
                    "CPU avg \(f(cpu.average)) %; at most \(f(peak)) connections over \(cpu.days) days", policyText(t, ["cpu", "connections"]))
            }
        case "aws.redshift.cluster":
            if let cpu = SeriesSummary(averages: s["cpu"] ?? []) {
                verdict(cpu.average <= cpuLimit, "CPU avg \(f(cpu.average)) % over \(cpu.days) days", policyText(t, ["cpu"]))
            }
        default:
            break
        }
        // Findings saving less than the policy's minimum are not raised (the verdict says why).
        if let min = t.minMonthlySavings, min > 0, let cost = r.attributes["monthly_cost_usd"]?.numberValue, cost < min {
            u["idle"] = .bool(false)
            u["below_min_savings"] = .bool(true)
        }
        r.attributes["utilization"] = .object(u)
        return r
    }
}
