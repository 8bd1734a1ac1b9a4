import AWS
import Foundation
import ScanEngine
import Testing
import VigilCore

@testable import RemediationService

@Suite struct RemediationTests {
    func target(rule: String, type: String, params: [String: JSONValue] = [:]) -> FixTarget {
        FixTarget(
            resourceId: "arn:aws:ec2:us-east-1:123456789012:security-group/sg-1", resourceName: "sg-1", resourceType: type,
            region: "us-east-1", account: "123456789012", ruleId: rule, actionId: "a1", parameters: params)
    }

    @Test func everyRuleActionExistsAndFixesTheRulesResourceType() {
        let withActions = BuiltinRules.all.filter { $0.fixAction != nil }
        #expect(withActions.count >= 27)
        for r in withActions {
            let a = FixActions.byName[r.fixAction!]
            #expect(a != nil, "\(r.id) names \(r.fixAction!)")
            #expect(a?.resourceType == r.resourceType, "\(r.id)")
            #expect(AWSCollectors.named(a?.service ?? "") != nil, "\(r.fixAction!) verifies with a collector")
        }
        #expect(FixActions.all.count >= 15)
        #expect(Set(FixActions.all.map(\.name)).count == FixActions.all.count)
        for a in FixActions.all { #expect(!a.permissions.isEmpty && !a.rollbackPermissions.isEmpty, "\(a.name)") }
    }

    @Test func publicStatementsAreRemovedAndConditionalOnesKept() throws {
        let policy = """
            {"Version":"2012-10-17","Statement":[
              {"Sid":"Public","Effect":"Allow","Principal":"*","Action":"sqs:SendMessage","Resource":"*"},
              {"Sid":"FromTopic","Effect":"Allow","Principal":"*","Action":"sqs:SendMessage","Resource":"*",\
              "Condition":{"ArnEquals":{"aws:SourceArn":"arn:aws:sns:us-east-1:1:t"}}},
              {"Sid":"Deny","Effect":"Deny","Principal":{"AWS":"*"},"Action":"*","Resource":"*"}]}
            """
        let (kept, removed) = PolicyDocuments.withoutPublicStatements(policy)
        #expect(removed == 1)
        let doc = try #require(PolicyFacts.parse(kept))
        #expect(PolicyFacts.statements(doc).compactMap { $0["Sid"] as? String } == ["FromTopic", "Deny"])
        #expect(
            PolicyDocuments.withoutPublicStatements(#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:GetObject"}}"#).0 == nil)
        #expect(
            PolicyDocuments.publicStatements("%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%22*%22%7D%5D%7D").count == 1)
    }

    @Test func removingTheOnlyGrantsLeavesTheOwnerInControl() throws {
        let acl = """
            <AccessControlPolicy><Owner><ID>owner-1</ID></Owner><AccessControlList>\
            <Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"\
             xsi:type="Group"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI>\
            </Grantee><Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>
            """
        let action = try #require(FixActions.byName["s3.remove_public_acl"])
        let calls = try action.plan(target(rule: "aws.s3.bucket_acl_public_read", type: "aws.s3.bucket"), .object(["acl": .string(acl)]))
        let body = try #require(calls.first?.body)
        #expect(!body.contains("AllUsers") && body.contains("<ID>owner-1</ID></Grantee><Permission>FULL_CONTROL</Permission>"))
        #expect(calls.first?.headers?["x-amz-checksum-sha256"] != nil)
        // Nothing public: nothing to do.
        #expect(
            try action.plan(
                target(rule: "aws.s3.bucket_acl_public_read", type: "aws.s3.bucket"),
                .object(["acl": .string(body)])
            ).isEmpty)
    }

    @Test func worldIngressRevocationStaysOnTheRulesPorts() throws {
        let action = try #require(FixActions.byName["ec2.revoke_world_ingress"])
        #expect(FixActions.rulePorts("aws.ec2.sg_ssh_open_to_world") == [22])
        let state: JSONValue = .object([
            "world_open_rules": .array([
                .object(["protocol": "tcp", "from": "22", "to": "22", "cidr": "0.0.0.0/0"]),
                .object(["protocol": "tcp", "from": "443", "to": "443", "cidr": "0.0.0.0/0"]),
                .object(["protocol": "tcp", "from": "0", "to": "1000", "cidr": "::/0"]),
            ])
        ])
        let calls = try action.plan(target(rule: "aws.ec2.sg_ssh_open_to_world", type: "aws.ec2.security_group"), state)
        let params = Dictionary(uniqueKeysWithValues: (calls.first?.params ?? []).map { ($0[0], $0[1]) })
        #expect(calls.first?.operation == "RevokeSecurityGroupIngress")
        #expect(params["IpPermissions.1.FromPort"] == "22" && params["IpPermissions.2.Ipv6Ranges.1.CidrIpv6"] == "::/0")
        #expect(params["IpPermissions.3.FromPort"] == nil, "443 is not the SSH rule's business")
        let rollback = try action.rollback(target(rule: "aws.ec2.sg_ssh_open_to_world", type: "aws.ec2.security_group"), state, [:])
        #expect(rollback.first?.operation == "AuthorizeSecurityGroupIngress" && rollback.first?.params == calls.first?.params)
        let wide = try action.plan(target(rule: "aws.ec2.sg_ssh_open_to_world", type: "aws.ec2.security_group", params: ["ports": [443]]), state)
        #expect(wide.first?.params?.contains(["IpPermissions.1.FromPort", "443"]) == true)
    }

    @Test func staleKeysKeepTheMostRecentlyUsedOne() {
        let state: JSONValue = .object([
            "active_keys": .array([
                .object(["access_key_id": "AKIAOLD", "age_days": 10, "last_used_days": 9, "created": "2026-11-01"]),
                .object(["access_key_id": "AKIANEW", "age_days": 2, "last_used_days": 1, "created": "2026-11-20"]),
                .object(["access_key_id": "AKIAANCIENT", "age_days": 400, "last_used_days": .null, "created": "2025-10-01"]),
            ])
        ])
        #expect(FixActions.staleKeys(target(rule: "aws.iam.access_key_not_rotated", type: "aws.iam.user"), state) == ["AKIAANCIENT"])
        #expect(
            Set(FixActions.staleKeys(target(rule: "aws.iam.user_multiple_active_keys", type: "aws.iam.user"), state)) == ["AKIAOLD", "AKIAANCIENT"])
    }

    @Test func parametersAreValidatedAgainstTheActionsSchema() throws {
        let enc = try #require(FixActions.byName["s3.enable_default_encryption"])
        #expect(throws: ServiceError.self) { try RequestHandlers.validate(["algorithm": "DES"], for: enc) }
        #expect(throws: ServiceError.self) { try RequestHandlers.validate(["nope": true], for: enc) }
        #expect(try RequestHandlers.validate(["algorithm": "aws:kms"], for: enc)["algorithm"] == "aws:kms")
        let sg = try #require(FixActions.byName["ec2.revoke_world_ingress"])
        #expect(throws: ServiceError.self) { try RequestHandlers.validate(["ports": [70000]], for: sg) }
        #expect(throws: ServiceError.self) { try RequestHandlers.validate(["ports": ["22"]], for: sg) }
    }

    @Test func policyAutoApprovesUpToItsCap() {
        var p = RemediationPolicy.standard
        #expect(!p.autoApproves(severity: "low"))
        p.mode = "auto"
        p.autoMaxSeverity = "medium"
        #expect(p.autoApproves(severity: "low") && p.autoApproves(severity: "medium") && !p.autoApproves(severity: "high"))
        p.allowedActions = ["kms.enable_key_rotation"]
        #expect(p.allows("kms.enable_key_rotation") && !p.allows("s3.enable_versioning"))
    }
}
