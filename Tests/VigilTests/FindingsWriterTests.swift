import Contracts
import Foundation
import ScanEngine
import Testing
import VigilCore

@testable import FindingsService

/// Finding pages are written by hand (`JSONWritable`); they must be byte for byte what the
/// JSONEncoder convention (snake_case, sorted keys, ISO-8601 dates) produces.
@Suite struct FindingsWriterTests {
    static func finding(full: Bool) -> FindingView {
        let at = Date(timeIntervalSince1970: 1_795_000_000.123)
        let event = FindingEventView(
            id: "e1", findingId: "f1", connectionId: "c1", ruleCode: "aws.s3.x", severity: "high", eventType: "suppressed",
            fromStatus: full ? "open" : nil, toStatus: "suppressed", actor: full ? "user:\"q\"" : nil,
            reason: full ? "line\nbreak\u{01} é 🙂" : nil, scanId: nil, createdAt: at)
        return FindingView(
            id: "f1", fingerprint: "fp", ruleCode: "aws.s3.x", title: "Public \"bucket\" / ACL", severity: "high", status: "open", provider: "aws",
            service: "s3", resourceId: "arn:aws:s3:::b", resourceType: "aws.s3.bucket", resourceName: "b\\n", region: "us-east-1",
            connectionId: "c1", scanJobId: "s1", category: full ? "public_exposure" : nil, description: full ? "d" : nil,
            rationale: full ? "r" : nil, remediation: full ? .init(console: "S3 → b", cli: "aws s3 … --bucket b") : nil,
            cwe: full ? "CWE-200" : nil,
            evidence: full
                ? [
                    "BlockPublicAcls": .bool(false), "grants": .array([.object(["uri": .string("http://x/AllUsers")]), .null]),
                    "size_gib": .number(3), "ratio": .number(2.5), "tiny": .number(1e-7), "big": .number(1e20), "neg": .number(-4),
                ] : [:],
            compliance: full ? ["soc2": ["CC6.1"], "cis_aws_3_0": ["2.1.4", "2.1.10"]] : [:],
            estimatedMonthlySavings: full ? 12.75 : nil, autoFix: full, fixAction: full ? "s3.remove_public_acl" : nil,
            tags: full ? ["Env": "prod", "a b": "ü"] : [:], firstSeenAt: at, lastSeenAt: at.addingTimeInterval(60.5),
            resolvedAt: full ? at : nil, statusReason: full ? "why" : nil, statusActor: full ? "user:1" : nil,
            statusExpiresAt: full ? at : nil, suppressionRuleId: full ? "sr" : nil, history: full ? [event, event] : nil)
    }

    @Test(arguments: [true, false]) func findingPageMatchesTheEncoder(full: Bool) throws {
        for page in [
            Page(items: [Self.finding(full: full), Self.finding(full: !full)], nextCursor: full ? "Y3Vy" : nil, total: full ? nil : 7),
            Page(items: [FindingView](), nextCursor: nil, total: 0),
            Page(items: [Self.finding(full: full)], nextCursor: "c", total: 1_000, totalCapped: true),
        ] {
            #expect((page as Any) is any JSONWritable, "the page must take the hand-written path")
            let fast = try JSON.encode(page)
            let slow = try JSON.encoder().encode(page)
            #expect(String(decoding: fast, as: UTF8.self) == String(decoding: slow, as: UTF8.self))
        }
    }

    @Test func eventPageMatchesTheEncoder() throws {
        let events = Self.finding(full: true).history!
        let page = Page(items: events, nextCursor: "n", total: nil)
        #expect(String(decoding: try JSON.encode(page), as: UTF8.self) == String(decoding: try JSON.encoder().encode(page), as: UTF8.self))
    }

    @Test func placeholdersAreFilledOnceEach() {
        let v = ["{resource_name}": "b-{region}", "{region}": "eu-west-1"]
        #expect(Remediations.fill("aws s3 --bucket {resource_name} --region {region}", v) == "aws s3 --bucket b-{region} --region eu-west-1")
        #expect(Remediations.fill("{unknown} {region}{ {region}", v) == "{unknown} eu-west-1{ eu-west-1")
        #expect(Remediations.fill("no braces", v) == "no braces")
        #expect(Remediations.fill("{region", v) == "{region")
        #expect(Remediations.fill("é→{region}→ü", v) == "é→eu-west-1→ü")
    }

    /// A result batch's head is read without decoding the results: members in any order, results
    /// with braces, quotes and escapes inside strings; a head with a member missing (or not a string)
    /// is refused.
    @Test func resultBatchHeadIsReadWithoutTheResults() throws {
        let results = #"[{"title": "a } \" { ] [", "evidence": {"x": [1, 2.5e3, null, true, {"y": "\u00e9"}]}}, {"fingerprint": "f"}]"#
        let message =
            #"{"data": {"results": \#(results), "scan_id": "s1", "region": "global", "connection_id": "c1", "service": "s3", "#
            + #""provider": "aws", "batch": 1}, "type": "scan.results", "id": "e1", "tenant_id": "t1"}"#
        let read = try #require(ResultsBatchHead.read(Data(message.utf8)))
        #expect(read.id == "e1" && read.tenantId == "t1")
        #expect(
            [read.head.scanId, read.head.connectionId, read.head.provider, read.head.service, read.head.region] == [
                "s1", "c1", "aws", "s3", "global",
            ])
        #expect(ResultsBatchHead.read(Data(message.replacingOccurrences(of: #""scan_id": "s1", "#, with: "").utf8))?.id == nil)
        #expect(ResultsBatchHead.read(Data(message.replacingOccurrences(of: #""tenant_id": "t1""#, with: #""tenant_id": null"#).utf8))?.id == nil)
        #expect(ResultsBatchHead.read(Data(message.replacingOccurrences(of: #""service": "s3""#, with: #""service": 3"#).utf8))?.id == nil)
        #expect(ResultsBatchHead.read(Data(message.dropLast().utf8))?.id == nil)
    }
}
