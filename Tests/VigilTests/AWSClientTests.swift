import Bus
import Foundation
import Net
import ScanEngine
import Testing
import VigilTesting

@testable import AWS

/// Our signed Query-protocol client against a real AWS-compatible endpoint (moto's server).
@Suite(.serialized) struct AWSClientTests {
    static func withMoto(_ body: (String) async throws -> Void) async throws {
        let port = TestServers.freePort()
        let moto = try TestServers.spawn(["/usr/bin/env", "moto_server", "-H", "127.0.0.1", "-p", String(port)])
        defer { TestServers.stop(moto) }
        #expect(await TestServers.waitForPort(port, timeout: .seconds(30)), "moto_server did not start")
        try await body("http://127.0.0.1:\(port)")
    }

    @Test func stsAndIAMThroughTheQueryProtocol() async throws {
        try await Self.withMoto { endpoint in
            let client = AWSClient(
                credentials: AWSCredentials(accessKeyId: "AKIATESTTESTTEST0001", secretAccessKey: "test-secret-key"),
                endpointURL: endpoint, guardrail: SSRFGuard(allowLoopback: true))
            let who = try await client.query(service: "sts", region: "us-east-1", action: "GetCallerIdentity", version: "2011-06-15")
            #expect(who.first("Account")?.text == "123456789012")
            #expect(who.first("Arn")?.text.hasPrefix("arn:aws:") == true)

            _ = try await client.query(
                service: "iam", region: "us-east-1", action: "CreateUser", version: "2010-05-08",
                params: [("UserName", "alice+ops@example"), ("Path", "/team a/")])
            let users = try await client.query(service: "iam", region: "us-east-1", action: "ListUsers", version: "2010-05-08")
            #expect(users.all("UserName").map(\.text).contains("alice+ops@example"))

            // A service error comes back with its code.
            do {
                _ = try await client.query(
                    service: "iam", region: "us-east-1", action: "GetUser", version: "2010-05-08", params: [("UserName", "nobody")])
                Issue.record("expected NoSuchEntity")
            } catch let e as AWSError {
                #expect(e.code == "NoSuchEntity" && e.status == 404)
            }
        }
    }

    @Test func jsonAndRestXMLProtocols() async throws {
        try await Self.withMoto { endpoint in
            let client = AWSClient(
                credentials: AWSCredentials(accessKeyId: "AKIATESTTESTTEST0001", secretAccessKey: "test-secret-key"),
                endpointURL: endpoint, guardrail: SSRFGuard(allowLoopback: true))
            // JSON protocol: KMS.
            let created = try await client.json(
                service: "kms", region: "eu-west-1", target: "TrentService.CreateKey", body: ["Description": "vigil test"])
            let keyId = try #require((created["KeyMetadata"] as? [String: Any])?["KeyId"] as? String)
            let listed = try await client.json(service: "kms", region: "eu-west-1", target: "TrentService.ListKeys")
            #expect((listed["Keys"] as? [[String: Any]])?.contains { $0["KeyId"] as? String == keyId } == true)
            do {
                _ = try await client.json(service: "kms", region: "eu-west-1", target: "TrentService.DescribeKey", body: ["KeyId": "nope"])
                Issue.record("expected NotFoundException")
            } catch let e as AWSError {
                #expect(e.code == "NotFoundException")
            }
            // REST-XML: S3 with path-style addressing, a key with spaces and unicode.
            let bucket = "vigil-test-bucket"
            _ = try await client.restXML(service: "s3", region: "us-east-1", method: "PUT", path: "/\(bucket)")
            _ = try await client.restXML(
                service: "s3", region: "us-east-1", method: "PUT", path: "/\(bucket)/reports/2026 q4 ünï+.txt",
                body: Array("hello".utf8))
            let buckets = try await client.restXML(service: "s3", region: "us-east-1", method: "GET", path: "/")
            #expect(buckets.xml?.all("Name").map(\.text).contains(bucket) == true)
            let objects = try await client.restXML(
                service: "s3", region: "us-east-1", method: "GET", path: "/\(bucket)",
                query: [("list-type", "2"), ("prefix", "reports/")])
            #expect(objects.xml?.all("Key").map(\.text) == ["reports/2026 q4 ünï+.txt"])
        }
    }

    /// Only AWS's own https endpoints skip the SSRF guard; anything else is an override, checked per call.
    @Test(arguments: [
        ("https://sts.amazonaws.com/", false), ("https://ec2.eu-west-1.amazonaws.com/?Action=x", false),
        ("http://ec2.eu-west-1.amazonaws.com/", true), ("https://sts.amazonaws.com:8443/", true),
        ("https://sts.amazonaws.com.attacker.example/", true), ("https://amazonaws.com@attacker.example/", true),
        ("http://127.0.0.1:5000/", true), ("https://localstack:4566/", true),
    ])
    func whichURLsAreOverrides(url: String, override: Bool) {
        #expect(AWSTransport.isOverride(url) == override)
    }

    /// An override is checked on every call, not only when the connection was saved: a guard that refuses
    /// loopback refuses the call before anything is sent.
    @Test func overridesAreCheckedOnEveryCall() async throws {
        try await Self.withMoto { endpoint in
            let client = AWSClient(
                credentials: AWSCredentials(accessKeyId: "AKIATESTTESTTEST0001", secretAccessKey: "test-secret-key"),
                endpointURL: endpoint, guardrail: SSRFGuard(allowLoopback: false))
            do {
                _ = try await client.query(service: "sts", region: "us-east-1", action: "GetCallerIdentity", version: "2011-06-15")
                Issue.record("a loopback endpoint was called although the guard refuses loopback")
            } catch let e as NetError {
                #expect("\(e)".contains("refused"))
            }
            // Allowed: many calls go through the pooled client to the checked address.
            let allowed = AWSClient(
                credentials: AWSCredentials(accessKeyId: "AKIATESTTESTTEST0001", secretAccessKey: "test-secret-key"),
                endpointURL: endpoint, guardrail: SSRFGuard(allowLoopback: true))
            let accounts = try await Concurrently.map(Array(0..<40), width: 8) { _ in
                try await allowed.query(service: "sts", region: "us-east-1", action: "GetCallerIdentity", version: "2011-06-15")
                    .first("Account")?.text
            }
            #expect(Set(accounts) == ["123456789012"])
        }
    }
}
