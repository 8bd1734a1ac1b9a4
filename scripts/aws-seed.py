#!/usr/bin/env python3
"""Seeds an AWS-compatible endpoint (moto's server) with a deliberately misconfigured account: planted
misconfigurations, and a correctly configured twin of each. Prints a JSON manifest:

  {"account": ..., "regions": [...], "planted": [[rule_id, resource_name], ...], "twins": [resource_name, ...]}

Every planted pair must be reported FAIL by a scan; no rule may fail on a twin.
Usage: aws-seed.py ENDPOINT [--regions us-east-1,us-west-2] [--scale N]
Start moto with MOTO_IAM_LOAD_MANAGED_POLICIES=true and MOTO_AMIS_PATH=scripts/moto-amis.json."""
import argparse
import base64
import io
import json
import sys
import zipfile

import boto3

KEY, SECRET = "AKIAVIGILDEMO0000001", "vigil/demo/secret/key/000000000000000000"
AMI = "ami-0a1b2c3d4e5f60718"
OTHER_ACCOUNT = "111122223333"


def client(endpoint, service, region):
    return boto3.client(service, endpoint_url=endpoint, region_name=region, aws_access_key_id=KEY, aws_secret_access_key=SECRET)


class Seeder:
    def __init__(self, endpoint, regions, scale):
        self.endpoint, self.regions, self.scale = endpoint, regions, scale
        self.main = regions[0]
        self.planted, self.twins = [], []
        self.account = client(endpoint, "sts", self.main).get_caller_identity()["Account"]

    def c(self, service, region=None):
        return client(self.endpoint, service, region or self.main)

    def plant(self, name, *rules):
        self.planted += [[r, name] for r in rules]

    def twin(self, name):
        self.twins.append(name)

    # ---- S3 -------------------------------------------------------------------------------
    def s3(self):
        s3 = self.c("s3")
        pab = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
        s3.create_bucket(Bucket="vigil-twin-logs")
        s3.put_bucket_acl(Bucket="vigil-twin-logs", ACL="log-delivery-write")

        def good(name):
            s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=pab)
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
            s3.put_bucket_logging(Bucket=name, BucketLoggingStatus={"LoggingEnabled": {"TargetBucket": "vigil-twin-logs", "TargetPrefix": name + "/"}})
            s3.put_bucket_policy(Bucket=name, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))

        good("vigil-twin-logs")
        self.twin("vigil-twin-logs")
        s3.create_bucket(Bucket="vigil-twin-bucket")
        good("vigil-twin-bucket")
        self.twin("vigil-twin-bucket")

        s3.create_bucket(Bucket="vigil-bad-public-read")
        s3.put_bucket_acl(Bucket="vigil-bad-public-read", ACL="public-read")
        self.plant("vigil-bad-public-read", "aws.s3.bucket_acl_public_read", "aws.s3.bucket_public_access_block_disabled",
                   "aws.s3.bucket_default_encryption_disabled", "aws.s3.bucket_versioning_disabled", "aws.s3.bucket_access_logging_disabled",
                   "aws.s3.bucket_insecure_transport_allowed")
        s3.create_bucket(Bucket="vigil-bad-public-write")
        all_users = 'uri="http://acs.amazonaws.com/groups/global/AllUsers"'
        s3.put_bucket_acl(Bucket="vigil-bad-public-write", GrantRead=all_users, GrantWrite=all_users)
        self.plant("vigil-bad-public-write", "aws.s3.bucket_acl_public_write", "aws.s3.bucket_acl_public_read")
        s3.create_bucket(Bucket="vigil-bad-public-policy")
        s3.put_bucket_policy(Bucket="vigil-bad-public-policy", Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::vigil-bad-public-policy/*"}]}))
        self.plant("vigil-bad-public-policy", "aws.s3.bucket_policy_public", "aws.s3.bucket_insecure_transport_allowed")
        for i in range(self.scale):
            s3.create_bucket(Bucket=f"vigil-bulk-{i:03d}")
            good(f"vigil-bulk-{i:03d}")

    # ---- IAM ------------------------------------------------------------------------------
    def iam(self):
        iam = self.c("iam")
        iam.create_user(UserName="vigil-bad-admin")
        iam.create_login_profile(UserName="vigil-bad-admin", Password="Corr3ct-Horse-Battery!")
        iam.attach_user_policy(UserName="vigil-bad-admin", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
        iam.create_access_key(UserName="vigil-bad-admin")
        iam.create_access_key(UserName="vigil-bad-admin")
        self.plant("vigil-bad-admin", "aws.iam.user_console_without_mfa", "aws.iam.user_admin_privileges", "aws.iam.user_direct_policies",
                   "aws.iam.user_multiple_active_keys")

        star = iam.create_policy(PolicyName="vigil-bad-star", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))["Policy"]["Arn"]
        self.plant("vigil-bad-star", "aws.iam.policy_full_admin")
        iam.create_group(GroupName="vigil-bad-group")
        iam.attach_group_policy(GroupName="vigil-bad-group", PolicyArn=star)
        iam.create_user(UserName="vigil-bad-via-group")
        iam.add_user_to_group(GroupName="vigil-bad-group", UserName="vigil-bad-via-group")
        self.plant("vigil-bad-via-group", "aws.iam.user_admin_privileges")

        ro = iam.create_policy(PolicyName="vigil-twin-readonly", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::vigil-twin-bucket/*"}]}))["Policy"]["Arn"]
        self.twin("vigil-twin-readonly")
        iam.create_group(GroupName="vigil-twin-group")
        iam.attach_group_policy(GroupName="vigil-twin-group", PolicyArn=ro)
        iam.create_user(UserName="vigil-twin-user")
        iam.add_user_to_group(GroupName="vigil-twin-group", UserName="vigil-twin-user")
        iam.create_access_key(UserName="vigil-twin-user")
        self.twin("vigil-twin-user")

        def role(name, principal, condition=None):
            st = {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}
            if condition:
                st["Condition"] = condition
            return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [st]}))["Role"]["Arn"]

        role("vigil-bad-role-public", {"AWS": "*"})
        self.plant("vigil-bad-role-public", "aws.iam.role_trusts_any_principal")
        role("vigil-bad-role-xacct", {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"})
        self.plant("vigil-bad-role-xacct", "aws.iam.role_cross_account_without_external_id")
        role("vigil-twin-role-xacct", {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"}, {"StringEquals": {"sts:ExternalId": "vigil-7f3a"}})
        self.twin("vigil-twin-role-xacct")
        self.ec2_role = role("vigil-twin-role-ec2", {"Service": "ec2.amazonaws.com"})
        self.twin("vigil-twin-role-ec2")
        self.lambda_role = role("vigil-twin-role-lambda", {"Service": "lambda.amazonaws.com"})
        self.twin("vigil-twin-role-lambda")
        iam.create_instance_profile(InstanceProfileName="vigil-twin-profile")
        iam.add_role_to_instance_profile(InstanceProfileName="vigil-twin-profile", RoleName="vigil-twin-role-ec2")
        # The account: no password policy, root without MFA (moto's defaults).
        self.plant(self.account, "aws.iam.password_policy_weak_length", "aws.iam.password_policy_reuse_allowed", "aws.iam.root_mfa_disabled")

    # ---- EC2, EBS, VPC ---------------------------------------------------------------------
    def ec2(self, region, twin_region):
        ec2 = self.c("ec2", region)
        sfx = "" if region == self.main else "-" + region
        if twin_region:
            ec2.enable_ebs_encryption_by_default()
            self.twin(f"ec2-settings-{region}")
            return
        self.plant(f"ec2-settings-{region}", "aws.ebs.default_encryption_disabled")
        default_vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
        self.plant(default_vpc, "aws.vpc.flow_logs_disabled")
        default_sg = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [default_vpc]}, {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]["GroupId"]
        self.plant(default_sg, "aws.ec2.default_sg_allows_traffic")
        default_subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [default_vpc]}])["Subnets"]
        for sn in default_subnets:
            if sn.get("MapPublicIpOnLaunch"):
                self.plant(sn["SubnetId"], "aws.vpc.subnet_auto_assigns_public_ip")
        default_nacl = ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [default_vpc]}])["NetworkAcls"][0]["NetworkAclId"]
        self.plant(default_nacl, "aws.vpc.nacl_admin_ports_open_to_world")

        def sg(name, vpc, perms):
            gid = ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc)["GroupId"]
            if perms:
                ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=perms)
            return gid

        world = [{"CidrIp": "0.0.0.0/0"}]
        for name, perms, rules in [
            ("vigil-bad-ssh", [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": world}], ["aws.ec2.sg_ssh_open_to_world"]),
            ("vigil-bad-rdp", [{"IpProtocol": "tcp", "FromPort": 3389, "ToPort": 3389, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}], ["aws.ec2.sg_rdp_open_to_world"]),
            ("vigil-bad-all", [{"IpProtocol": "-1", "IpRanges": world}], ["aws.ec2.sg_all_traffic_open_to_world", "aws.ec2.sg_ssh_open_to_world",
                                                                          "aws.ec2.sg_database_port_open_to_world"]),
            ("vigil-bad-db", [{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": world}], ["aws.ec2.sg_database_port_open_to_world"]),
            ("vigil-bad-telnet", [{"IpProtocol": "tcp", "FromPort": 23, "ToPort": 23, "IpRanges": world}], ["aws.ec2.sg_insecure_protocol_open_to_world"]),
        ]:
            gid = sg(name, default_vpc, perms)
            self.plant(gid, *rules)

        # The twin network: its default security group and NACL locked down, flow logs on, no public IPs.
        vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
        self.twin(vpc)
        ec2.create_flow_logs(ResourceIds=[vpc], ResourceType="VPC", TrafficType="ALL", LogDestinationType="s3",
                             LogDestination="arn:aws:s3:::vigil-twin-logs")
        twin_default_sg = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]
        if twin_default_sg.get("IpPermissions"):
            ec2.revoke_security_group_ingress(GroupId=twin_default_sg["GroupId"], IpPermissions=twin_default_sg["IpPermissions"])
        if twin_default_sg.get("IpPermissionsEgress"):
            ec2.revoke_security_group_egress(GroupId=twin_default_sg["GroupId"], IpPermissions=twin_default_sg["IpPermissionsEgress"])
        self.twin(twin_default_sg["GroupId"])
        nacl = ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["NetworkAcls"][0]["NetworkAclId"]
        for e in ec2.describe_network_acls(NetworkAclIds=[nacl])["NetworkAcls"][0]["Entries"]:
            if not e["Egress"] and e["RuleNumber"] < 32767:
                ec2.delete_network_acl_entry(NetworkAclId=nacl, RuleNumber=e["RuleNumber"], Egress=False)
        ec2.create_network_acl_entry(NetworkAclId=nacl, RuleNumber=100, Protocol="6", RuleAction="allow", Egress=False,
                                     CidrBlock="0.0.0.0/0", PortRange={"From": 443, "To": 443})
        self.twin(nacl)
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
        self.twin(subnet)
        web = sg("vigil-twin-web", vpc, [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": world}])
        self.twin(web)

        user_data = "#!/bin/bash\nexport AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nexport DB_PASSWORD='hunter2hunter2'\n"
        bad = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro", UserData=user_data,
                                MetadataOptions={"HttpTokens": "optional", "HttpEndpoint": "enabled"},
                                NetworkInterfaces=[{"DeviceIndex": 0, "AssociatePublicIpAddress": True, "Groups": [default_sg],
                                                    "SubnetId": ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [default_vpc]}])["Subnets"][0]["SubnetId"]}],
                                )["Instances"][0]["InstanceId"]
        self.plant(bad, "aws.ec2.instance_imdsv1_enabled", "aws.ec2.instance_public_ip", "aws.ec2.instance_user_data_secrets",
                   "aws.ec2.instance_without_iam_role")
        stopped = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                    MetadataOptions={"HttpTokens": "required"}, IamInstanceProfile={"Name": "vigil-twin-profile"},
                                    SubnetId=subnet)["Instances"][0]["InstanceId"]
        ec2.stop_instances(InstanceIds=[stopped])
        self.plant(stopped, "aws.ec2.instance_stopped")
        good_inst = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                      NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet, "Groups": [web], "AssociatePublicIpAddress": False}],
                                      MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled"},
                                      IamInstanceProfile={"Name": "vigil-twin-profile"}, UserData="#!/bin/bash\ndnf -y update\n",
                                      BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8, "Encrypted": True}}],
                                      )["Instances"][0]["InstanceId"]
        self.twin(good_inst)
        self.instance_for_targets = good_inst
        self.twin_vpc, self.twin_subnet, self.default_vpc = vpc, subnet, default_vpc

        az = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
        bad_vol = ec2.create_volume(AvailabilityZone=az, Size=50, VolumeType="gp3")["VolumeId"]
        self.plant(bad_vol, "aws.ebs.volume_unencrypted", "aws.ebs.volume_unattached")
        good_vol = ec2.create_volume(AvailabilityZone=az, Size=20, VolumeType="gp3", Encrypted=True)["VolumeId"]
        ec2.attach_volume(VolumeId=good_vol, InstanceId=good_inst, Device="/dev/sdf")
        self.twin(good_vol)

        pub_snap = ec2.create_snapshot(VolumeId=bad_vol, Description="public")["SnapshotId"]
        ec2.modify_snapshot_attribute(SnapshotId=pub_snap, Attribute="createVolumePermission", OperationType="add", GroupNames=["all"])
        self.plant(pub_snap, "aws.ebs.snapshot_public", "aws.ebs.snapshot_unencrypted")
        gone = ec2.create_volume(AvailabilityZone=az, Size=30, Encrypted=True)["VolumeId"]
        orphan = ec2.create_snapshot(VolumeId=gone, Description="orphan")["SnapshotId"]
        ec2.delete_volume(VolumeId=gone)
        self.plant(orphan, "aws.ebs.snapshot_orphaned")
        good_snap = ec2.create_snapshot(VolumeId=good_vol, Description="twin")["SnapshotId"]
        self.twin(good_snap)

        img = ec2.create_image(InstanceId=bad, Name="vigil-bad-image")["ImageId"]
        ec2.modify_image_attribute(ImageId=img, LaunchPermission={"Add": [{"Group": "all"}]})
        self.plant(img, "aws.ec2.ami_public")
        good_img = ec2.create_image(InstanceId=good_inst, Name="vigil-twin-image")["ImageId"]
        self.twin(good_img)

        bad_eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
        self.plant(bad_eip, "aws.ec2.eip_unassociated")
        good_eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
        ec2.associate_address(AllocationId=good_eip, InstanceId=bad)
        self.twin(good_eip)

        for i in range(self.scale):
            sg(f"vigil-bulk-sg-{i:03d}", vpc, [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": world}])

    # ---- KMS ------------------------------------------------------------------------------
    def kms(self):
        kms = self.c("kms")
        good = kms.create_key(Description="vigil twin key")["KeyMetadata"]["KeyId"]
        kms.enable_key_rotation(KeyId=good)
        kms.create_alias(AliasName="alias/vigil-twin-key", TargetKeyId=good)
        self.twin("alias/vigil-twin-key")
        self.twin_key = good
        norot = kms.create_key(Description="no rotation")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName="alias/vigil-bad-norotation", TargetKeyId=norot)
        self.plant("alias/vigil-bad-norotation", "aws.kms.key_rotation_disabled")
        public_policy = json.dumps({"Version": "2012-10-17", "Statement": [
            {"Sid": "Everyone", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"}]})
        pub = kms.create_key(Description="public", Policy=public_policy)["KeyMetadata"]["KeyId"]
        kms.enable_key_rotation(KeyId=pub)
        kms.create_alias(AliasName="alias/vigil-bad-public", TargetKeyId=pub)
        self.plant("alias/vigil-bad-public", "aws.kms.key_policy_public")
        dis = kms.create_key(Description="disabled")["KeyMetadata"]["KeyId"]
        kms.disable_key(KeyId=dis)
        kms.create_alias(AliasName="alias/vigil-bad-disabled", TargetKeyId=dis)
        self.plant("alias/vigil-bad-disabled", "aws.kms.key_disabled")
        dele = kms.create_key(Description="pending deletion")["KeyMetadata"]["KeyId"]
        kms.schedule_key_deletion(KeyId=dele, PendingWindowInDays=7)
        kms.create_alias(AliasName="alias/vigil-bad-deleting", TargetKeyId=dele)
        self.plant("alias/vigil-bad-deleting", "aws.kms.key_pending_deletion")

    # ---- CloudTrail, Config -----------------------------------------------------------------
    def cloudtrail(self, region, twin_region):
        ct = self.c("cloudtrail", region)
        self.plant(f"cloudtrail-{region}", "aws.cloudtrail.no_multi_region_trail")
        if twin_region:
            return
        ct.create_trail(Name="vigil-bad-trail", S3BucketName="vigil-twin-logs")
        self.plant("vigil-bad-trail", "aws.cloudtrail.trail_not_logging", "aws.cloudtrail.log_file_validation_disabled",
                   "aws.cloudtrail.not_encrypted_with_kms", "aws.cloudtrail.no_cloudwatch_logs")
        ct.create_trail(Name="vigil-twin-trail", S3BucketName="vigil-twin-logs", EnableLogFileValidation=True,
                        KmsKeyId=self.twin_key,
                        CloudWatchLogsLogGroupArn=f"arn:aws:logs:{region}:{self.account}:log-group:vigil-trail:*",
                        CloudWatchLogsRoleArn=self.ec2_role)
        ct.start_logging(Name="vigil-twin-trail")
        self.twin("vigil-twin-trail")

    def config(self, region, twin_region):
        if not twin_region:
            self.plant(f"config-{region}", "aws.config.recorder_disabled")
            return
        cfg = self.c("config", region)
        cfg.put_configuration_recorder(ConfigurationRecorder={"name": "default", "roleARN": self.ec2_role,
                                                              "recordingGroup": {"allSupported": True, "includeGlobalResourceTypes": True}})
        cfg.put_delivery_channel(DeliveryChannel={"name": "default", "s3BucketName": "vigil-twin-logs"})
        cfg.start_configuration_recorder(ConfigurationRecorderName="default")
        self.twin(f"config-{region}")

    # ---- RDS ------------------------------------------------------------------------------
    def rds(self):
        rds = self.c("rds")
        rds.create_db_instance(DBInstanceIdentifier="vigil-bad-db", DBInstanceClass="db.t3.micro", Engine="postgres",
                               MasterUsername="vigil", MasterUserPassword="not-a-real-pass-1", AllocatedStorage=20,
                               PubliclyAccessible=True, StorageEncrypted=False, BackupRetentionPeriod=0, MultiAZ=False,
                               DeletionProtection=False, AutoMinorVersionUpgrade=False)
        self.plant("vigil-bad-db", "aws.rds.instance_publicly_accessible", "aws.rds.instance_storage_unencrypted",
                   "aws.rds.instance_backup_retention_short", "aws.rds.instance_not_multi_az", "aws.rds.instance_deletion_protection_disabled",
                   "aws.rds.instance_auto_minor_upgrade_disabled")
        rds.create_db_instance(DBInstanceIdentifier="vigil-twin-db", DBInstanceClass="db.t3.micro", Engine="postgres",
                               MasterUsername="vigil", MasterUserPassword="not-a-real-pass-2", AllocatedStorage=20,
                               PubliclyAccessible=False, StorageEncrypted=True, BackupRetentionPeriod=7, MultiAZ=True,
                               DeletionProtection=True, AutoMinorVersionUpgrade=True)
        self.twin("vigil-twin-db")
        rds.create_db_snapshot(DBInstanceIdentifier="vigil-bad-db", DBSnapshotIdentifier="vigil-bad-db-snap")
        rds.modify_db_snapshot_attribute(DBSnapshotIdentifier="vigil-bad-db-snap", AttributeName="restore", ValuesToAdd=["all"])
        self.plant("vigil-bad-db-snap", "aws.rds.snapshot_public", "aws.rds.snapshot_unencrypted")
        rds.create_db_snapshot(DBInstanceIdentifier="vigil-twin-db", DBSnapshotIdentifier="vigil-twin-db-snap")
        self.twin("vigil-twin-db-snap")

    # ---- Lambda ---------------------------------------------------------------------------
    def lam(self):
        lam = self.c("lambda")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("handler.py", "def handler(event, context):\n    return {'ok': True}\n")
        code = {"ZipFile": buf.getvalue()}
        lam.create_function(FunctionName="vigil-bad-fn", Runtime="python3.7", Role=self.lambda_role, Handler="handler.handler", Code=code,
                            Environment={"Variables": {"DB_PASSWORD": "Sup3rS3cretPassw0rd", "AWS_KEY": "AKIAIOSFODNN7EXAMPLE", "STAGE": "prod"}})
        lam.add_permission(FunctionName="vigil-bad-fn", StatementId="public", Action="lambda:InvokeFunction", Principal="*")
        self.plant("vigil-bad-fn", "aws.lambda.env_secrets", "aws.lambda.runtime_deprecated", "aws.lambda.function_public")
        lam.create_function(FunctionName="vigil-twin-fn", Runtime="python3.12", Role=self.lambda_role, Handler="handler.handler", Code=code,
                            Environment={"Variables": {"STAGE": "prod", "LOG_LEVEL": "info",
                                                       "DB_PASSWORD_SECRET_ARN": f"arn:aws:secretsmanager:{self.main}:{self.account}:secret:db"}})
        lam.add_permission(FunctionName="vigil-twin-fn", StatementId="s3", Action="lambda:InvokeFunction", Principal="s3.amazonaws.com",
                           SourceArn="arn:aws:s3:::vigil-twin-bucket", SourceAccount=self.account)
        self.twin("vigil-twin-fn")

    # ---- SQS, SNS, Secrets Manager -----------------------------------------------------------
    def messaging(self):
        sqs, sns = self.c("sqs"), self.c("sns")
        q = sqs.create_queue(QueueName="vigil-bad-queue", Attributes={"SqsManagedSseEnabled": "false"})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sqs.set_queue_attributes(QueueUrl=q, Attributes={"Policy": json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage", "Resource": arn}]})})
        self.plant("vigil-bad-queue", "aws.sqs.queue_policy_public", "aws.sqs.queue_unencrypted")
        q = sqs.create_queue(QueueName="vigil-twin-queue", Attributes={"SqsManagedSseEnabled": "true"})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sqs.set_queue_attributes(QueueUrl=q, Attributes={"Policy": json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{self.account}:root"}, "Action": "sqs:SendMessage", "Resource": arn}]})})
        self.twin("vigil-twin-queue")

        t = sns.create_topic(Name="vigil-bad-topic")["TopicArn"]
        sns.set_topic_attributes(TopicArn=t, AttributeName="Policy", AttributeValue=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "SNS:Publish", "Resource": t}]}))
        self.plant("vigil-bad-topic", "aws.sns.topic_policy_public", "aws.sns.topic_unencrypted")
        sns.create_topic(Name="vigil-twin-topic", Attributes={"KmsMasterKeyId": "alias/aws/sns"})
        self.twin("vigil-twin-topic")

        sm = self.c("secretsmanager")
        bad = sm.create_secret(Name="vigil-bad-secret", SecretString="s3cr3t-value")["ARN"]
        sm.put_resource_policy(SecretId=bad, ResourcePolicy=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]}))
        self.plant("vigil-bad-secret", "aws.secretsmanager.rotation_disabled", "aws.secretsmanager.policy_public")
        good = sm.create_secret(Name="vigil-twin-secret", SecretString="s3cr3t-value-2")["ARN"]
        try:
            sm.rotate_secret(SecretId=good, RotationRules={"AutomaticallyAfterDays": 30},
                             RotationLambdaARN=f"arn:aws:lambda:{self.main}:{self.account}:function:vigil-twin-fn")
        except Exception:
            pass
        if sm.describe_secret(SecretId=good).get("RotationEnabled"):
            self.twin("vigil-twin-secret")

    # ---- ELBv2 ----------------------------------------------------------------------------
    def elb(self):
        elb, ec2 = self.c("elbv2"), self.c("ec2")
        subnets = [s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [self.default_vpc]}])["Subnets"]][:2]
        bad = elb.create_load_balancer(Name="vigil-bad-alb", Subnets=subnets, Type="application", Scheme="internet-facing")["LoadBalancers"][0]["LoadBalancerArn"]
        tg = elb.create_target_group(Name="vigil-bad-tg", Protocol="HTTP", Port=80, VpcId=self.default_vpc, TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
        elb.create_listener(LoadBalancerArn=bad, Protocol="HTTP", Port=80, DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
        cert = self.c("acm").request_certificate(DomainName="bad.vigil.test")["CertificateArn"]
        elb.create_listener(LoadBalancerArn=bad, Protocol="HTTPS", Port=443, SslPolicy="ELBSecurityPolicy-2016-08",
                            Certificates=[{"CertificateArn": cert}], DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
        self.plant("vigil-bad-alb", "aws.elbv2.http_without_https_redirect", "aws.elbv2.outdated_tls_policy", "aws.elbv2.access_logs_disabled",
                   "aws.elbv2.deletion_protection_disabled", "aws.elbv2.idle_load_balancer")
        twin_subnets = [s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [self.default_vpc]}])["Subnets"]][:2]
        good = elb.create_load_balancer(Name="vigil-twin-alb", Subnets=twin_subnets, Type="application", Scheme="internal")["LoadBalancers"][0]["LoadBalancerArn"]
        tg2 = elb.create_target_group(Name="vigil-twin-tg", Protocol="HTTP", Port=80, VpcId=self.default_vpc, TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
        elb.register_targets(TargetGroupArn=tg2, Targets=[{"Id": self.instance_for_targets}])
        elb.create_listener(LoadBalancerArn=good, Protocol="HTTP", Port=80, DefaultActions=[
            {"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}])
        cert2 = self.c("acm").request_certificate(DomainName="twin.vigil.test")["CertificateArn"]
        elb.create_listener(LoadBalancerArn=good, Protocol="HTTPS", Port=443, SslPolicy="ELBSecurityPolicy-TLS13-1-2-2021-06",
                            Certificates=[{"CertificateArn": cert2}], DefaultActions=[{"Type": "forward", "TargetGroupArn": tg2}])
        elb.modify_load_balancer_attributes(LoadBalancerArn=good, Attributes=[
            {"Key": "access_logs.s3.enabled", "Value": "true"}, {"Key": "access_logs.s3.bucket", "Value": "vigil-twin-logs"},
            {"Key": "deletion_protection.enabled", "Value": "true"}])
        self.twin("vigil-twin-alb")

    def run(self):
        self.s3()
        self.iam()
        for i, region in enumerate(self.regions):
            self.ec2(region, twin_region=i > 0)
        self.kms()
        for i, region in enumerate(self.regions):
            self.cloudtrail(region, twin_region=i > 0)
            self.config(region, twin_region=i > 0)
        self.rds()
        self.lam()
        self.messaging()
        self.elb()
        return {"account": self.account, "regions": self.regions, "access_key_id": KEY, "secret_access_key": SECRET,
                "planted": self.planted, "twins": self.twins}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("endpoint")
    ap.add_argument("--regions", default="us-east-1")
    ap.add_argument("--scale", type=int, default=0, help="extra correctly configured buckets and security groups")
    a = ap.parse_args()
    json.dump(Seeder(a.endpoint, a.regions.split(","), a.scale).run(), sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
