import Foundation

/// On-demand list prices (USD; Linux, shared tenancy, single-AZ) for the regions in `regions`, used by
/// the cost rules; contracts/rules/PRICES.md documents the same table with its date and sources. A region
/// not in the table is priced as us-east-1 and the finding says so (`price_region`).
public enum Prices {
    public static let regions = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1"]
    public static let hoursPerMonth = 730.0
    public static let asOf = "2025-06 list prices"

    /// Per hour, in the order of `regions`.
    static let ec2: [String: [Double]] = [
        "t2.micro": [0.0116, 0.0116, 0.0126, 0.0134], "t2.small": [0.023, 0.023, 0.025, 0.0268], "t2.medium": [0.0464, 0.0464, 0.05, 0.0536],
        "t2.large": [0.0928, 0.0928, 0.1008, 0.1072], "t3.nano": [0.0052, 0.0052, 0.0057, 0.006], "t3.micro": [0.0104, 0.0104, 0.0114, 0.012],
        "t3.small": [0.0208, 0.0208, 0.0228, 0.024], "t3.medium": [0.0416, 0.0416, 0.0456, 0.048], "t3.large": [0.0832, 0.0832, 0.0912, 0.096],
        "t3.xlarge": [0.1664, 0.1664, 0.1824, 0.192], "t3.2xlarge": [0.3328, 0.3328, 0.3648, 0.384],
        "m4.large": [0.10, 0.10, 0.111, 0.12], "m4.xlarge": [0.20, 0.20, 0.222, 0.24], "m4.2xlarge": [0.40, 0.40, 0.444, 0.48],
        "m5.large": [0.096, 0.096, 0.107, 0.115], "m5.xlarge": [0.192, 0.192, 0.214, 0.23], "m5.2xlarge": [0.384, 0.384, 0.428, 0.46],
        "m5.4xlarge": [0.768, 0.768, 0.856, 0.92], "m6i.large": [0.096, 0.096, 0.107, 0.115], "m6i.xlarge": [0.192, 0.192, 0.214, 0.23],
        "m6i.2xlarge": [0.384, 0.384, 0.428, 0.46], "c4.large": [0.10, 0.10, 0.113, 0.114], "c4.xlarge": [0.199, 0.199, 0.226, 0.227],
        "c5.large": [0.085, 0.085, 0.096, 0.097], "c5.xlarge": [0.17, 0.17, 0.192, 0.194], "c5.2xlarge": [0.34, 0.34, 0.384, 0.388],
        "r4.large": [0.133, 0.133, 0.148, 0.16], "r4.xlarge": [0.266, 0.266, 0.296, 0.32], "r5.large": [0.126, 0.126, 0.141, 0.152],
        "r5.xlarge": [0.252, 0.252, 0.282, 0.304], "r5.2xlarge": [0.504, 0.504, 0.564, 0.608],
    ]
    static let rds: [String: [Double]] = [
        "db.t3.micro": [0.017, 0.017, 0.018, 0.02], "db.t3.small": [0.034, 0.034, 0.036, 0.04], "db.t3.medium": [0.068, 0.068, 0.072, 0.08],
        "db.t3.large": [0.136, 0.136, 0.144, 0.16], "db.m5.large": [0.171, 0.171, 0.19, 0.198], "db.m5.xlarge": [0.342, 0.342, 0.38, 0.396],
        "db.r5.large": [0.24, 0.24, 0.265, 0.284], "db.m4.large": [0.175, 0.175, 0.193, 0.21],
    ]
    static let cache: [String: [Double]] = [
        "cache.t3.micro": [0.017, 0.017, 0.018, 0.019], "cache.t3.small": [0.034, 0.034, 0.036, 0.038],
        "cache.t3.medium": [0.068, 0.068, 0.073, 0.076], "cache.m5.large": [0.156, 0.156, 0.171, 0.178],
        "cache.r5.large": [0.216, 0.216, 0.238, 0.247], "cache.t2.micro": [0.017, 0.017, 0.018, 0.019],
    ]
    static let redshift: [String: [Double]] = [
        "dc2.large": [0.25, 0.25, 0.25, 0.324], "ra3.xlplus": [1.086, 1.086, 1.086, 1.298], "ra3.4xlarge": [3.26, 3.26, 3.26, 3.894],
    ]
    /// Per GiB-month.
    static let ebs: [String: [Double]] = [
        "gp2": [0.10, 0.10, 0.11, 0.119], "gp3": [0.08, 0.08, 0.088, 0.0952], "io1": [0.125, 0.125, 0.138, 0.149],
        "io2": [0.125, 0.125, 0.138, 0.149], "st1": [0.045, 0.045, 0.05, 0.054], "sc1": [0.015, 0.015, 0.0168, 0.018],
        "standard": [0.05, 0.05, 0.055, 0.059],
    ]
    static let snapshotGiBMonth = [0.05, 0.05, 0.05, 0.054]
    static let natHour = [0.045, 0.045, 0.048, 0.052]
    static let loadBalancerHour = [0.0225, 0.0225, 0.0252, 0.027]
    static let classicLoadBalancerHour = [0.025, 0.025, 0.028, 0.03]
    /// Provisioned DynamoDB capacity, per unit-hour: read, write.
    static let dynamoRead = [0.00013, 0.00013, 0.000147, 0.000148]
    static let dynamoWrite = [0.00065, 0.00065, 0.000735, 0.000739]
    static let logsGBMonth = [0.03, 0.03, 0.03, 0.0324]
    static let s3GBMonth = [0.023, 0.023, 0.023, 0.0245]

    /// A price for the region and the region it is the price of.
    static func pick(_ row: [Double], _ region: String) -> (Double, String) {
        if let i = regions.firstIndex(of: region) { return (row[i], region) }
        return (row[0], "us-east-1")
    }

    public static func ec2Monthly(_ type: String, region: String) -> (usd: Double, region: String)? {
        ec2[type].map {
            let (p, r) = pick($0, region)
            return (p * hoursPerMonth, r)
        }
    }
    public static func rdsMonthly(_ cls: String, region: String, multiAZ: Bool) -> (usd: Double, region: String)? {
        rds[cls].map {
            let (p, r) = pick($0, region)
            return (p * hoursPerMonth * (multiAZ ? 2 : 1), r)
        }
    }
    public static func cacheMonthly(_ type: String, region: String) -> (usd: Double, region: String)? {
        cache[type].map {
            let (p, r) = pick($0, region)
            return (p * hoursPerMonth, r)
        }
    }
    public static func redshiftMonthly(_ type: String, nodes: Int, region: String) -> (usd: Double, region: String)? {
        redshift[type].map {
            let (p, r) = pick($0, region)
            return (p * hoursPerMonth * Double(max(1, nodes)), r)
        }
    }
    public static func ebsGiBMonth(_ type: String, region: String) -> (usd: Double, region: String) {
        pick(ebs[type] ?? ebs["gp2"]!, region)
    }
    public static func snapshotGiB(region: String) -> Double { pick(snapshotGiBMonth, region).0 }
    public static func natMonthly(region: String) -> Double { pick(natHour, region).0 * hoursPerMonth }
    public static func loadBalancerMonthly(type: String, region: String) -> Double {
        pick(type == "classic" ? classicLoadBalancerHour : loadBalancerHour, region).0 * hoursPerMonth
    }
    public static func dynamoUnitMonth(write: Bool, region: String) -> Double { pick(write ? dynamoWrite : dynamoRead, region).0 * hoursPerMonth }
    public static func logsGB(region: String) -> Double { pick(logsGBMonth, region).0 }
    public static func s3GB(region: String) -> Double { pick(s3GBMonth, region).0 }

    static let sizes = ["nano", "micro", "small", "medium", "large", "xlarge", "2xlarge", "4xlarge", "8xlarge"]

    /// The next smaller size of the same family that has a price (`m5.xlarge` → `m5.large`).
    public static func oneSizeDown(_ type: String) -> String? {
        let parts = type.split(separator: ".", maxSplits: 1).map(String.init)
        guard parts.count == 2, let i = sizes.firstIndex(of: parts[1]) else { return nil }
        for j in stride(from: i - 1, through: 0, by: -1) where ec2["\(parts[0]).\(sizes[j])"] != nil { return "\(parts[0]).\(sizes[j])" }
        return nil
    }

    /// Families AWS lists as previous generation, and the current one that replaces each.
    public static let successor = ["t2": "t3", "m4": "m5", "c4": "c5", "r4": "r5", "m3": "m5", "c3": "c5", "r3": "r5", "m1": "m5"]

    public static func currentGeneration(of type: String) -> String? {
        let parts = type.split(separator: ".", maxSplits: 1).map(String.init)
        guard parts.count == 2, let next = successor[parts[0]] else { return nil }
        return "\(next).\(parts[1])"
    }
}
