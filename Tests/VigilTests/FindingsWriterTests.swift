import Contracts
import Foundation
import ScanEngine
import Testing
import VigilCore

@testable import FindingsService
@testable import Store

/// Finding pages are written by hand, straight from the rows (`FindingStore.writeJSON`); they must be byte
/// for byte what the JSONEncoder convention (snake_case, sorted keys, ISO-8601 dates) makes of the
/// Codable `FindingView` of the same row.
@Suite struct FindingsWriterTests {
    /// A findings row as PostgreSQL sends it (text format): every column filled, or only the required ones.
    static func row(full: Bool, rule: String) -> Row {
        let values: [(String, String?)] = [
            ("id", "0192f3a4-0000-7000-8000-000000000001"), ("fingerprint", "fp"), ("connection_id", "c1"), ("rule_id", rule),
            ("provider", "aws"), ("service", "s3"), ("resource_id", "arn:aws:s3:::b"), ("resource_type", "aws.s3.bucket"),
            ("resource_name", "b\\n{region}"), ("region", "us-east-1"), ("severity", "high"), ("severity_rank", "1"),
            ("title", "Public \"bucket\" / ACL \u{01} é 🙂"), ("status", full ? "suppressed" : "open"),
            ("status_reason", full ? "line\nbreak" : nil),
            ("status_actor", full ? "user:\"q\"" : nil), ("status_expires_at", full ? "2026-12-03 15:05:20.1239+00" : nil),
            ("suppression_rule_id", full ? "sr" : nil),
            (
                "evidence",
                full
                    ? #"{"grants": [{"uri": "http://x/AllUsers"}, null], "BlockPublicAcls": false, "size_gib": 3, "ratio": 2.5, "#
                        + #""tiny": 1e-7, "big": 1e20, "neg": -4}"#
                    : "{}"
            ),
            ("tags", full ? #"{"Env": "prod", "a b": "ü"}"# : "{}"), ("savings", full ? "12.75" : nil), ("last_scan_id", "s1"),
            ("first_seen_at", "2026-11-22 09:19:57.123456+00"), ("last_seen_at", "2026-11-22T10:19:57Z"),
            ("resolved_at", full ? "2026-11-23 09:19:57.5+01" : nil), ("created_at", "2026-11-22 09:19:57.123456+00"),
        ]
        return Row(columns: Dictionary(uniqueKeysWithValues: values.enumerated().map { ($1.0, $0) }), values: values.map(\.1))
    }

    @Test(arguments: [true, false]) func findingRowMatchesTheEncoder(full: Bool) throws {
        var custom = try #require(RuleCatalog.builtinById["aws.s3.bucket_acl_public_read"])
        custom.id = "custom.x"
        custom.description = "d \"quoted\""
        custom.remediation = .init(console: "S3 → {resource_name} in {region}", cli: full ? "aws s3 … --bucket {resource_name}" : nil)
        custom.compliance = full ? ["soc2": ["CC6.1"], "cis_aws_3_0": ["2.1.4", "2.1.10"]] : [:]
        custom.cwe = full ? "CWE-200" : nil
        custom.fixAction = full ? "s3.remove_public_acl" : nil
        let rules = RuleCatalog.builtinById.merging([custom.id: custom]) { a, _ in a }
        for rule in ["aws.s3.bucket_acl_public_read", custom.id, "gone.rule"] {
            let r = Self.row(full: full, rule: rule)
            var fast = [UInt8]()
            try FindingStore.writeJSON(r, rules: rules, into: &fast)
            let slow = try JSON.encoder().encode(try FindingStore.view(r, rules: rules))
            #expect(String(decoding: fast, as: UTF8.self) == String(decoding: slow, as: UTF8.self), "rule \(rule)")
        }
    }

    /// A page of rendered rows is the page of their models.
    @Test func renderedPageMatchesTheEncoder() throws {
        let rules = RuleCatalog.builtinById
        let items = try [true, false].map { full in
            var json = [UInt8]()
            try FindingStore.writeJSON(Self.row(full: full, rule: "aws.s3.bucket_acl_public_read"), rules: rules, into: &json)
            return RenderedJSON<FindingView>(bytes: json)
        }
        for page in [Page(items: items, nextCursor: "Y3Vy", total: nil), Page(items: [], nextCursor: nil, total: 0, totalCapped: true)] {
            #expect(String(decoding: try JSON.encode(page), as: UTF8.self) == String(decoding: try JSON.encoder().encode(page), as: UTF8.self))
            let back = try JSON.decode(Page<RenderedJSON<FindingView>>.self, from: JSON.encode(page))
            #expect(back.items.map(\.bytes) == page.items.map(\.bytes))
        }
    }

    @Test func eventPageMatchesTheEncoder() throws {
        let at = Date(timeIntervalSince1970: 1_795_000_000.123)
        let events = [true, false].map { full in
            FindingEventView(
                id: "e1", findingId: "f1", connectionId: "c1", ruleCode: "aws.s3.x", severity: "high", eventType: "suppressed",
                fromStatus: full ? "open" : nil, toStatus: "suppressed", actor: full ? "user:\"q\"" : nil,
                reason: full ? "line\nbreak\u{01} é 🙂" : nil, scanId: nil, createdAt: at)
        }
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
