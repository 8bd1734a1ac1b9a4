import AWS
import Foundation
import ScanEngine
import VigilCore

/// SQS, SNS and Lambda fixes: public policy statements and public function permissions.
extension FixActions {
    static let messagingActions: [FixAction] = [
        FixAction(
            name: "sqs.remove_public_policy_statements", title: "Remove the statements that allow everyone from the queue policy", service: "sqs",
            resourceType: "aws.sqs.queue", permissions: ["sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:SetQueueAttributes"],
            rollbackPermissions: ["sqs:SetQueueAttributes"],
            inspect: { c, t in
                let url =
                    try await c.query(service: "sqs", region: t.region, action: "GetQueueUrl", version: sqs, params: [("QueueName", t.resourceName)])
                    .first(
                        "QueueUrl")?.text ?? ""
                let x = try await c.query(
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
                let x = try await c.query(
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
                let r = try await optional(["ResourceNotFoundException"]) {
                    try await c.restJSON(service: "lambda", region: t.region, path: "/2015-03-31/functions/\(t.resourceName)/policy")
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
}
