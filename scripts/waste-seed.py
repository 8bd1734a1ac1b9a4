#!/usr/bin/env python3
"""Seeds an AWS-compatible endpoint (moto's server) with running resources and their CloudWatch
metrics over the last DAYS days (PutMetricData, one datapoint a day): an idle one of each kind, a busy
twin that must not be flagged, and resources with no metrics at all (unknown, never idle). Prints a
JSON manifest: {"account", "region", "idle": {kind: name}, "busy": {kind: name}, "unknown": [name],
"types": {name: instance or node type}}.

Usage: waste-seed.py ENDPOINT [--region us-east-1] [--days 14] [--scale N]
(--scale adds N more idle/busy instance pairs, for the benchmark)."""
import argparse
import datetime
import json

import boto3
from botocore.config import Config

KEY, SECRET = "AKIAVIGILWASTE000001", "vigil/waste/secret/key/00000000000000000"
AMI = "ami-0a1b2c3d4e5f60718"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("endpoint")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--days", type=int, default=14)
    p.add_argument("--scale", type=int, default=0)
    a = p.parse_args()
    # botocore gzips PutMetricData bodies; moto's server does not take them compressed.
    c = lambda svc: boto3.client(svc, endpoint_url=a.endpoint, region_name=a.region, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                                 config=Config(disable_request_compression=True))
    ec2, cw, rds, elb, ddb, cache, rs, logs = (c("ec2"), c("cloudwatch"), c("rds"), c("elbv2"), c("dynamodb"), c("elasticache"), c("redshift"),
                                               c("logs"))
    # One datapoint a day for the last DAYS days, today included (00:30 UTC is always in the past).
    today = datetime.datetime.now(datetime.timezone.utc).replace(hour=0, minute=30, second=0, microsecond=0)
    days = [today - datetime.timedelta(days=d) for d in range(a.days)]
    out = {"account": boto3.client("sts", endpoint_url=a.endpoint, region_name=a.region, aws_access_key_id=KEY,
                                   aws_secret_access_key=SECRET).get_caller_identity()["Account"],
           "region": a.region, "idle": {}, "busy": {}, "unknown": [], "types": {}}
    batch = []

    def metric(ns, name, dims, values, unit="None"):
        for ts, v in zip(days, values if isinstance(values, list) else [values] * len(days)):
            batch.append((ns, {"MetricName": name, "Dimensions": [{"Name": k, "Value": v2} for k, v2 in dims.items()],
                               "Timestamp": ts, "Value": float(v), "Unit": unit}))

    # EC2: idle, busy, underused (rightsizing), previous generation and unknown instances.
    def instance(itype):
        return ec2.run_instances(ImageId=AMI, InstanceType=itype, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]

    pairs = [("idle", "t3.large", 1.0, 3.0, 50_000), ("busy", "t3.large", 45.0, 80.0, 5_000_000_000)]
    pairs += [(f"idle-{i}", "t3.large", 1.0, 3.0, 50_000) for i in range(a.scale)]
    pairs += [(f"busy-{i}", "t3.large", 45.0, 80.0, 5_000_000_000) for i in range(a.scale)]
    for role, itype, avg, peak, net in pairs:
        iid = instance(itype)
        out["types"][iid] = itype
        (out["idle"] if role.startswith("idle") else out["busy"]).setdefault("ec2" if "-" not in role else f"ec2-{role}", iid)
        metric("AWS/EC2", "CPUUtilization", {"InstanceId": iid}, [avg + (peak - avg) * (i % 2) for i in range(a.days)], "Percent")
        metric("AWS/EC2", "NetworkIn", {"InstanceId": iid}, net / 2, "Bytes")
        metric("AWS/EC2", "NetworkOut", {"InstanceId": iid}, net / 2, "Bytes")
    under = instance("m5.xlarge")
    out["types"][under] = "m5.xlarge"
    out["busy"]["ec2_underused"] = under
    metric("AWS/EC2", "CPUUtilization", {"InstanceId": under}, [8.0 + (i % 3) for i in range(a.days)], "Percent")
    metric("AWS/EC2", "NetworkIn", {"InstanceId": under}, 3_000_000_000, "Bytes")
    metric("AWS/EC2", "NetworkOut", {"InstanceId": under}, 3_000_000_000, "Bytes")
    old = instance("m4.large")
    out["types"][old] = "m4.large"
    out["idle"]["ec2_previous_generation"] = old
    metric("AWS/EC2", "CPUUtilization", {"InstanceId": old}, 50.0, "Percent")
    metric("AWS/EC2", "NetworkIn", {"InstanceId": old}, 9_000_000_000, "Bytes")
    metric("AWS/EC2", "NetworkOut", {"InstanceId": old}, 9_000_000_000, "Bytes")
    unknown = instance("t3.large")
    out["types"][unknown] = "t3.large"
    out["unknown"].append(unknown)

    # EBS: an attached volume nobody reads or writes, a busy one (gp3), both on the busy instance.
    az = ec2.describe_instances(InstanceIds=[out["busy"]["ec2"]])["Reservations"][0]["Instances"][0]["Placement"]["AvailabilityZone"]
    for role, vtype, ops, dev in (("idle", "gp3", 0, "/dev/sdf"), ("busy", "gp3", 500_000, "/dev/sdg")):
        vid = ec2.create_volume(AvailabilityZone=az, Size=100, VolumeType=vtype)["VolumeId"]
        ec2.attach_volume(VolumeId=vid, InstanceId=out["busy"]["ec2"], Device=dev)
        out[role]["ebs"] = vid
        metric("AWS/EBS", "VolumeReadOps", {"VolumeId": vid}, ops, "Count")
        metric("AWS/EBS", "VolumeWriteOps", {"VolumeId": vid}, ops, "Count")

    # NAT gateways.
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
    for role, bytes_ in (("idle", 1_000), ("busy", 2_000_000_000)):
        eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
        nat = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=eip)["NatGateway"]["NatGatewayId"]
        out[role]["nat"] = nat
        metric("AWS/NATGateway", "BytesOutToDestination", {"NatGatewayId": nat}, bytes_ / 2, "Bytes")
        metric("AWS/NATGateway", "BytesInFromSource", {"NatGatewayId": nat}, bytes_ / 2, "Bytes")

    # RDS.
    for role, conns, cpu in (("idle", 0, 1.0), ("busy", 25, 30.0)):
        name = f"waste-db-{role}"
        rds.create_db_instance(DBInstanceIdentifier=name, DBInstanceClass="db.t3.medium", Engine="postgres", AllocatedStorage=20,
                               MasterUsername="vigil", MasterUserPassword="vigil-waste-pw1")
        out[role]["rds"] = name
        metric("AWS/RDS", "CPUUtilization", {"DBInstanceIdentifier": name}, cpu, "Percent")
        metric("AWS/RDS", "DatabaseConnections", {"DBInstanceIdentifier": name}, conns, "Count")

    # Application load balancers with a target each.
    subnet2 = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.2.0/24", AvailabilityZone=az[:-1] + ("b" if az.endswith("a") else "a"))["Subnet"]["SubnetId"]
    for role, requests in (("idle", 0), ("busy", 20_000)):
        lb = elb.create_load_balancer(Name=f"waste-lb-{role}", Subnets=[subnet, subnet2], Type="application")["LoadBalancers"][0]
        tg = elb.create_target_group(Name=f"waste-tg-{role}", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="instance")["TargetGroups"][0]
        elb.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": out["busy"]["ec2"]}])
        elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
                            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
        out[role]["elbv2"] = lb["LoadBalancerName"]
        dim = lb["LoadBalancerArn"].split(":loadbalancer/")[1]
        metric("AWS/ApplicationELB", "RequestCount", {"LoadBalancer": dim}, requests, "Count")

    # DynamoDB: 100 provisioned units, one table using about 2 a second, its twin about 90.
    for role, used in (("idle", 2.0), ("busy", 90.0)):
        name = f"waste-table-{role}"
        ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                         ProvisionedThroughput={"ReadCapacityUnits": 100, "WriteCapacityUnits": 100})
        out[role]["dynamodb"] = name
        metric("AWS/DynamoDB", "ConsumedReadCapacityUnits", {"TableName": name}, used * 86_400, "Count")
        metric("AWS/DynamoDB", "ConsumedWriteCapacityUnits", {"TableName": name}, used * 86_400, "Count")

    # ElastiCache and Redshift.
    for role, conns, cpu in (("idle", 0, 0.5), ("busy", 40, 20.0)):
        cid = f"waste-cache-{role}"
        cache.create_cache_cluster(CacheClusterId=cid, Engine="redis", CacheNodeType="cache.t3.medium", NumCacheNodes=1)
        out[role]["elasticache"] = cid
        metric("AWS/ElastiCache", "CPUUtilization", {"CacheClusterId": cid}, cpu, "Percent")
        metric("AWS/ElastiCache", "CurrConnections", {"CacheClusterId": cid}, conns, "Count")
        rid = f"waste-dw-{role}"
        rs.create_cluster(ClusterIdentifier=rid, NodeType="dc2.large", MasterUsername="vigil", MasterUserPassword="VigilWaste1",
                          ClusterType="single-node")
        out[role]["redshift"] = rid
        metric("AWS/Redshift", "CPUUtilization", {"ClusterIdentifier": rid}, cpu, "Percent")

    # Log groups: one keeps everything, its twin has a retention period.
    logs.create_log_group(logGroupName="/waste/forever")
    logs.create_log_group(logGroupName="/waste/rotated")
    logs.put_retention_policy(logGroupName="/waste/rotated", retentionInDays=30)
    out["idle"]["logs"], out["busy"]["logs"] = "/waste/forever", "/waste/rotated"

    by_ns = {}
    for ns, d in batch:
        by_ns.setdefault(ns, []).append(d)
    for ns, data in by_ns.items():
        for i in range(0, len(data), 500):
            cw.put_metric_data(Namespace=ns, MetricData=data[i:i + 500])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
