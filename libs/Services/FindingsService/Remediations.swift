import Foundation
import ScanEngine
import Store
import VigilCore

/// Resource-specific remediation: console steps, CLI commands and a Terraform snippet with the
/// finding's real identifiers, generated from the rule's data (no external model needed).
struct RemediationGuide: Codable, Sendable {
    var findingId: String
    var ruleCode: String
    var title: String
    var severity: String
    var resource: String
    var region: String
    var summary: String
    var consoleSteps: [String]
    var cliCommands: [String]
    var terraform: String
    var verification: String
    var references: [String]
    var generatedBy: String
    var cached: Bool
}

enum Remediations {
    static func placeholders(_ r: Row) -> [String: String] {
        let name = r.optionalString("resource_name") ?? ""
        return ["{resource_name}": name, "{resource_id}": r.optionalString("resource_id") ?? name, "{region}": r.optionalString("region") ?? ""]
    }

    /// Replaces each `{placeholder}` in one pass: a value is never scanned again, so a resource
    /// name that itself contains `{region}` stays as it is.
    static func fill(_ text: String, _ values: [String: String]) -> String {
        let open = UInt8(ascii: "{")
        let close = UInt8(ascii: "}")
        let utf8 = text.utf8
        guard utf8.contains(open) else { return text }
        var out = ""
        out.reserveCapacity(utf8.count + 64)
        var copied = utf8.startIndex
        var i = utf8.startIndex
        while let start = utf8[i...].firstIndex(of: open) {
            guard let end = utf8[start...].firstIndex(of: close) else { break }
            let after = utf8.index(after: end)
            if let value = values[String(text[start..<after])] {
                out.append(contentsOf: text[copied..<start])
                out.append(value)
                copied = after
                i = after
            } else {
                i = utf8.index(after: start)
            }
        }
        out.append(contentsOf: text[copied...])
        return out
    }

    static func fill(_ r: Rule.Remediation, row: Row) -> Rule.Remediation {
        let open = UInt8(ascii: "{")
        guard r.console.utf8.contains(open) || r.cli?.utf8.contains(open) == true else { return r }
        let v = placeholders(row)
        return Rule.Remediation(console: fill(r.console, v), cli: r.cli.map { fill($0, v) })
    }

    /// Terraform for the common fixes; otherwise an import block to bring the resource under management.
    static let terraform: [String: String] = [
        "aws.s3.bucket_public_access_block_disabled": """
        resource "aws_s3_bucket_public_access_block" "{tf}" {
          bucket                  = "{resource_name}"
          block_public_acls       = true
          ignore_public_acls      = true
          block_public_policy     = true
          restrict_public_buckets = true
        }
        """,
        "aws.s3.bucket_acl_public_read": """
        resource "aws_s3_bucket_acl" "{tf}" {
          bucket = "{resource_name}"
          acl    = "private"
        }
        """,
        "aws.s3.bucket_acl_public_write": """
        resource "aws_s3_bucket_acl" "{tf}" {
          bucket = "{resource_name}"
          acl    = "private"
        }
        """,
        "aws.s3.bucket_default_encryption_disabled": """
        resource "aws_s3_bucket_server_side_encryption_configuration" "{tf}" {
          bucket = "{resource_name}"
          rule {
            apply_server_side_encryption_by_default {
              sse_algorithm = "aws:kms"
            }
          }
        }
        """,
        "aws.s3.bucket_versioning_disabled": """
        resource "aws_s3_bucket_versioning" "{tf}" {
          bucket = "{resource_name}"
          versioning_configuration {
            status = "Enabled"
          }
        }
        """,
        "aws.s3.bucket_insecure_transport_allowed": """
        resource "aws_s3_bucket_policy" "{tf}" {
          bucket = "{resource_name}"
          policy = jsonencode({
            Version = "2012-10-17"
            Statement = [{
              Sid       = "DenyInsecureTransport"
              Effect    = "Deny"
              Principal = "*"
              Action    = "s3:*"
              Resource  = ["arn:aws:s3:::{resource_name}", "arn:aws:s3:::{resource_name}/*"]
              Condition = { Bool = { "aws:SecureTransport" = "false" } }
            }]
          })
        }
        """,
        "aws.ebs.default_encryption_disabled": """
        resource "aws_ebs_encryption_by_default" "{tf}" {
          enabled = true
        }
        """,
        "aws.kms.key_rotation_disabled": """
        # in the aws_kms_key resource that manages {resource_name}:
        resource "aws_kms_key" "{tf}" {
          enable_key_rotation = true
        }
        """,
        "aws.cloudtrail.log_file_validation_disabled": """
        resource "aws_cloudtrail" "{tf}" {
          name                       = "{resource_name}"
          enable_log_file_validation = true
          # keep the trail's other arguments as they are
        }
        """,
        "aws.rds.instance_publicly_accessible": """
        resource "aws_db_instance" "{tf}" {
          identifier          = "{resource_name}"
          publicly_accessible = false
          # keep the instance's other arguments as they are
        }
        """,
        "aws.ec2.instance_imdsv1_enabled": """
        resource "aws_instance" "{tf}" {
          # …
          metadata_options {
            http_tokens   = "required"
            http_endpoint = "enabled"
          }
        }
        """,
        "aws.iam.password_policy_weak_length": """
        resource "aws_iam_account_password_policy" "strict" {
          minimum_password_length        = 14
          password_reuse_prevention      = 24
          require_lowercase_characters   = true
          require_uppercase_characters   = true
          require_numbers                = true
          require_symbols                = true
          allow_users_to_change_password = true
        }
        """,
        "aws.vpc.flow_logs_disabled": """
        resource "aws_flow_log" "{tf}" {
          vpc_id               = "{resource_name}"
          traffic_type         = "ALL"
          log_destination_type = "s3"
          log_destination      = "arn:aws:s3:::<flow-log-bucket>"
        }
        """,
        "aws.sqs.queue_unencrypted": """
        resource "aws_sqs_queue" "{tf}" {
          name                    = "{resource_name}"
          sqs_managed_sse_enabled = true
        }
        """,
        "aws.sns.topic_unencrypted": """
        resource "aws_sns_topic" "{tf}" {
          name              = "{resource_name}"
          kms_master_key_id = "alias/aws/sns"
        }
        """,
    ]
    static let terraformTypes: [String: String] = [
        "aws.s3.bucket": "aws_s3_bucket", "aws.ec2.security_group": "aws_security_group", "aws.ec2.instance": "aws_instance",
        "aws.ec2.volume": "aws_ebs_volume", "aws.ec2.snapshot": "aws_ebs_snapshot", "aws.ec2.image": "aws_ami", "aws.ec2.address": "aws_eip",
        "aws.ec2.vpc": "aws_vpc", "aws.ec2.subnet": "aws_subnet", "aws.ec2.network_acl": "aws_network_acl", "aws.iam.user": "aws_iam_user",
        "aws.iam.role": "aws_iam_role", "aws.iam.policy": "aws_iam_policy", "aws.kms.key": "aws_kms_key", "aws.cloudtrail.trail": "aws_cloudtrail",
        "aws.rds.instance": "aws_db_instance", "aws.rds.snapshot": "aws_db_snapshot", "aws.lambda.function": "aws_lambda_function",
        "aws.sqs.queue": "aws_sqs_queue", "aws.sns.topic": "aws_sns_topic", "aws.secretsmanager.secret": "aws_secretsmanager_secret",
        "aws.elbv2.load_balancer": "aws_lb",
    ]

    static func guide(rule: Rule, row: Row) -> RemediationGuide {
        var v = placeholders(row)
        let name = v["{resource_name}"] ?? ""
        v["{tf}"] = name.lowercased().map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined().prefix(60).description
        let tf: String
        if let t = terraform[rule.id] {
            tf = fill(t, v)
        } else if let type = terraformTypes[rule.resourceType] {
            tf = fill(
                """
                # Bring {resource_name} under Terraform, then change the argument the rule checks:
                # \(rule.title.lowercased()).
                import {
                  to = \(type).{tf}
                  id = "{resource_name}"
                }
                """, v)
        } else {
            tf = "# This setting is account- or region-wide; apply the CLI command above (no single Terraform resource)."
        }
        let steps = fill(rule.remediation.console, v).components(separatedBy: " → ").map { $0.trimmingCharacters(in: .whitespaces) }
        let cli = (rule.remediation.cli.map { fill($0, v) } ?? "").components(separatedBy: " && ").filter { !$0.isEmpty }
        return RemediationGuide(
            findingId: row.optionalString("id") ?? "", ruleCode: rule.id, title: rule.title,
            severity: row.optionalString("severity") ?? rule.severity.rawValue,
            resource: row.optionalString("resource_id") ?? name, region: v["{region}"] ?? "",
            summary: "\(rule.title) — \(name) in \(v["{region}"] ?? ""). \(rule.description) Why it matters: \(rule.rationale)",
            consoleSteps: steps,
            cliCommands: cli.map { $0.contains("--region") || v["{region}"] == "global" ? $0 : $0 + " --region \(v["{region}"] ?? "")" },
            terraform: tf,
            verification: "Run a new scan of this connection (POST /api/v1/scans/trigger); the finding resolves when \(rule.id) passes on \(name).",
            references: rule.references ?? [], generatedBy: "rule-template", cached: false)
    }
}
