import AWS
import Foundation
import Testing
import VigilTesting

/// Our SigV4 signer against botocore's for a table of requests (EC2 Query GET, STS/IAM POST forms,
/// JSON protocol with X-Amz-Target, S3 REST paths with awkward keys, session tokens, custom ports).
@Suite struct SigV4Tests {
    static let creds = AWSCredentials(accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    static let temp = AWSCredentials(accessKeyId: "ASIAEXAMPLE", secretAccessKey: "secret/with+chars=", sessionToken: "FQoGZXIvYXdzE//token+/=")

    struct Case {
        let req: AWSRequest
        let region: String
        let service: String
        let s3: Bool
        let creds: AWSCredentials
    }

    static let form = ["Content-Type": "application/x-www-form-urlencoded; charset=utf-8"]
    static let cases: [Case] = [
        Case(
            req: AWSRequest(
                method: "GET", host: "ec2.us-east-1.amazonaws.com",
                query: [
                    ("Action", "DescribeInstances"), ("Version", "2016-11-15"), ("Filter.1.Name", "tag:Name"), ("Filter.1.Value.1", "web server*"),
                ]),
            region: "us-east-1", service: "ec2", s3: false, creds: creds),
        Case(
            req: AWSRequest(
                method: "POST", host: "sts.amazonaws.com", headers: form,
                body: Array("Action=GetCallerIdentity&Version=2011-06-15".utf8)),
            region: "us-east-1", service: "sts", s3: false, creds: creds),
        Case(
            req: AWSRequest(
                method: "POST", host: "iam.amazonaws.com", headers: form,
                body: Array("Action=ListUsers&MaxItems=100&Version=2010-05-08".utf8)),
            region: "us-east-1", service: "iam", s3: false, creds: temp),
        Case(
            req: AWSRequest(
                method: "POST", host: "kms.eu-west-1.amazonaws.com",
                headers: ["Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.ListKeys"],
                body: Array(#"{"Limit":100}"#.utf8)),
            region: "eu-west-1", service: "kms", s3: false, creds: creds),
        Case(
            req: AWSRequest(
                method: "GET", host: "my-bucket.s3.us-west-2.amazonaws.com", path: "/photos/2026 trip/ünïcode+plus=eq.jpg",
                query: [("versionId", "a/b+c")]),
            region: "us-west-2", service: "s3", s3: true, creds: creds),
        Case(
            req: AWSRequest(
                method: "GET", scheme: "http", host: "127.0.0.1", port: 5000, path: "/bucket-a",
                query: [("list-type", "2"), ("prefix", "logs/"), ("acl", "")]),
            region: "us-east-1", service: "s3", s3: true, creds: temp),
        Case(
            req: AWSRequest(
                method: "POST", scheme: "http", host: "localhost", port: 4566, path: "/", headers: form,
                body: Array("Action=DescribeDBInstances&Version=2014-10-31".utf8)),
            region: "ap-southeast-2", service: "rds", s3: false, creds: creds),
        Case(
            req: AWSRequest(method: "GET", host: "lambda.us-east-1.amazonaws.com", path: "/2015-03-31/functions/my fn:alias/configuration"),
            region: "us-east-1", service: "lambda", s3: false, creds: creds),
    ]

    @Test func matchesBotocore() throws {
        let date = Date(timeIntervalSince1970: 1_795_341_600)  // 2026-11-22T10:00:00Z
        var input: [[String: Any]] = []
        var ours: [String] = []
        for c in Self.cases {
            var r = c.req
            SigV4.sign(&r, credentials: c.creds, region: c.region, service: c.service, date: date, s3: c.s3)
            ours.append(r.headers["Authorization"]!)
            let q = r.encodedQuery
            var headers = c.req.headers
            if c.s3 { headers["X-Amz-Content-SHA256"] = r.headers["X-Amz-Content-SHA256"] }
            var entry: [String: Any] = [
                "method": r.method, "url": "\(r.scheme)://\(r.hostHeader)\(SigV4.wirePath(r.path))\(q.isEmpty ? "" : "?" + q)",
                "headers": headers, "body": Data(r.body).base64EncodedString(), "region": c.region, "service": c.service,
                "s3": c.s3, "access_key_id": c.creds.accessKeyId, "secret_access_key": c.creds.secretAccessKey,
            ]
            if let t = c.creds.sessionToken { entry["session_token"] = t }
            input.append(entry)
        }
        let dir = NSTemporaryDirectory() + "sigv4-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try JSONSerialization.data(withJSONObject: input).write(to: URL(fileURLWithPath: dir + "/in.json"))
        let status = try TestServers.run([
            "/usr/bin/env", "python3", TestServers.repoRoot + "/scripts/sigv4_reference.py",
            dir + "/in.json", dir + "/out.json",
        ])
        #expect(status == 0)
        let reference = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/out.json"))) as? [[String: String]])
        #expect(reference.count == Self.cases.count)
        for (i, ref) in reference.enumerated() {
            #expect(ours[i] == ref["authorization"], "case \(i): \(Self.cases[i].service)")
            #expect(ref["x_amz_date"] == "20261122T100000Z")
        }
    }
}
