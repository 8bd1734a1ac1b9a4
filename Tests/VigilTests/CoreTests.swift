import Foundation
import Testing
import VigilAPIClient

@testable import GatewayService
@testable import Store
@testable import VigilCore

@Suite struct CoreTests {
    struct Sample: Codable {
        var fullName: String
        var count: Int
        var tags: [String]
    }

    /// Identifiers are random version-4 UUIDs, lowercase, and never repeat.
    @Test func identifiersAreLowercaseVersion4UUIDs() throws {
        var seen = Set<String>()
        var bits = [Int](repeating: 0, count: 32)
        for _ in 0..<2000 {
            let id = ID.make()
            let uuid = try #require(UUID(uuidString: id), "\(id)")
            #expect(id == uuid.uuidString.lowercased())
            #expect(Array(id.utf8)[14] == UInt8(ascii: "4"))
            #expect("89ab".utf8.contains(Array(id.utf8)[19]))
            #expect(seen.insert(id).inserted)
            for (i, c) in id.replacingOccurrences(of: "-", with: "").utf8.enumerated() where c != UInt8(ascii: "0") { bits[i] += 1 }
        }
        // Every hex digit but the version varies (a digit stuck at 0 would be a shifting bug).
        #expect(bits.enumerated().allSatisfy { $0.offset == 12 || $0.element > 1000 })
    }

    @Test func decodingErrorsBecomeValidationIssuesWithPaths() throws {
        #expect(throws: ServiceError.validation("body.full_name", "field required")) {
            try JSON.decodeRequest(Sample.self, from: Data(#"{"count":1,"tags":[]}"#.utf8))
        }
        #expect(throws: ServiceError.validation("body.count", "expected integer")) {
            try JSON.decodeRequest(Sample.self, from: Data(#"{"full_name":"a","count":"x","tags":[]}"#.utf8))
        }
        do {
            _ = try JSON.decodeRequest(Sample.self, from: Data("{oops".utf8))
            Issue.record("expected an error")
        } catch let e as ServiceError {
            #expect(e.status == 400)
            #expect(e.error == "invalid_json")
        }
    }

    @Test func rowDecodingOfPostgresTextFormats() throws {
        let row = Row(
            columns: ["t": 0, "b": 1, "a": 2, "n": 3, "x": 4],
            values: ["2026-11-22 09:19:57.123456+00", "t", #"{"a b","c\"d",e}"#, nil, "\\x00ff10"])
        let d = try row.date("t")
        #expect(Timestamp.format(d) == "2026-11-22T09:19:57.123Z")
        #expect(try row.bool("b"))
        #expect(try row.stringArray("a") == ["a b", "c\"d", "e"])
        #expect(row.isNull("n"))
        #expect(try row.bytes("x") == Data([0, 255, 16]))
        #expect(Row.parseTimestamp("2026-01-02 03:04:05+00") != nil)
        #expect(throws: StoreError.self) { try row.int("b") }
    }

    @Test func textArrayParameterEscapes() {
        #expect(["a", "b\"c", "d\\e"].sqlText == #"{"a","b\"c","d\\e"}"#)
    }

    @Test func arrayParameterKeepsNullsAndUnicode() {
        #expect(ArrayParameter(["é\"ü", nil, "", "x\\"]).sqlText == #"{"é\"ü",NULL,"","x\\"}"#)
    }

    @Test func fastJSONEscapesLikeJSONSerializationReadsIt() throws {
        let samples = ["plain", "q\"uote", "back\\slash", "nl\nret\rtab\t", "ctl\u{01}\u{1f}", "ünï😀códe", "", "\"\\"]
        for s in samples {
            let json = FastJSON.object([("k", .string(s)), ("n", .int(nil))])
            let back = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
            #expect(back["k"] as? String == s)
            #expect(back["n"] is NSNull)
        }
        #expect(FastJSON.quote("a\u{01}") == #""a\u0001""#)
    }

    /// Large arrays are mapped in parts at once: same order as the serial map, and an error thrown by any part
    /// reaches the caller.
    @Test func parallelMapKeepsOrderAndErrors() throws {
        struct Odd: Error {}
        for count in [0, 1, Parallel.minimum - 1, Parallel.minimum, 501, 1000] {
            let v = Array(0..<count)
            #expect(try Parallel.map(v) { $0 * 2 } == v.map { $0 * 2 })
        }
        #expect(throws: Odd.self) { try Parallel.map(Array(0..<500)) { if $0 == 377 { throw Odd() } else { return $0 } } }
        var empty = [UInt8]()
        FastJSON.map([String: Int](), into: &empty) { $1.append(contentsOf: String($0).utf8) }
        #expect(empty == Array("{}".utf8))
    }

    @Test func jsonHeadReadsWhatJSONSerializationReads() throws {
        let keys = ["id", "type", "tenant_id"]
        let inner = ["actor", "user_id"]
        let valid = [
            #"{"id":"a","type":"t","tenant_id":"x","data":{"actor":"me","user_id":"u"}}"#,
            #" { "data" : { "n" : [1, -2.5e3, true, false, null, {"actor":"deep"}], "actor" : "q\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00" } , "id" : "é😀", "type":"t" } "#,
            #"{"id":null,"type":7,"tenant_id":{"id":"no"},"data":"not an object","x":[[],{}]}"#,
            #"{}"#,
            #"{"type":"t","data":{},"id":"last"}"#,
        ]
        for text in valid {
            let head = try #require(JSONHead.read(Data(text.utf8), keys: keys, nested: "data", nestedKeys: inner), "\(text)")
            let obj = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
            #expect(head.top == keys.map { obj[$0] as? String }, "\(text)")
            let data = obj["data"] as? [String: Any]
            #expect(head.inner == inner.map { data?[$0] as? String }, "\(text)")
        }
        let malformed = [
            #""#, #"[]"#, #"{"id":"a""#, #"{"id":"a",}"#, #"{"id":"a"} x"#, #"{"id":"a\q"}"#, #"{"id":"\ud83d"}"#,
            "{\"id\":\"a\u{01}\"}", #"{"id":tru}"#, #"{"n":[1,]}"#, #"{"id" "a"}"#, #"{"data":{"actor":"x"}"#,
        ]
        for text in malformed {
            #expect(JSONHead.read(Data(text.utf8), keys: keys, nested: "data", nestedKeys: inner) == nil, "\(text)")
        }
    }

    @Test func configReaderFlagsOverrideEnvironment() {
        let r = ConfigReader(environment: ["VIGIL_HTTP_PORT": "1"], arguments: ["--http-port", "2", "--health"])
        #expect(r.int("VIGIL_HTTP_PORT", default: 0) == 2)
        #expect(r.bool("VIGIL_HEALTH", default: false))
    }

    @Test func rateLimiterBurstAndSteadyWindows() {
        let l = RateLimiter(burst: .init(limit: 3, seconds: 1), steady: .init(limit: 5, seconds: 60))
        let t0 = 1000.0
        #expect((0..<3).allSatisfy { _ in l.check("k", now: t0).allowed })
        let blocked = l.check("k", now: t0 + 0.1)
        #expect(!blocked.allowed)
        #expect(blocked.resetSeconds == 1)
        #expect(l.check("other", now: t0 + 0.1).allowed)
        #expect(l.check("k", now: t0 + 1.1).allowed)
        #expect(l.check("k", now: t0 + 1.2).allowed)
        let steady = l.check("k", now: t0 + 2.5)
        #expect(!steady.allowed)
        #expect(steady.limit == 5)
        #expect(steady.resetSeconds > 50)
    }

    @Test func routeTableShapes() {
        let r = RouteTable.all.first { $0.path == "/api/v1/users/team/{membership_id}/role" }!
        #expect(r.routerPath == "api/v1/users/team/:membership_id/role")
        #expect(r.pathParameters == ["membership_id"])
        // Every route names a subject of the form vigil.<service>.<resource>.<action>.
        for route in RouteTable.all { #expect(route.subject.split(separator: ".").count == 4) }
    }
}

@Suite struct TimestampTests {
    @Test(arguments: [
        ("2026-11-22T09:19:57.123Z", 1_795_339_197.123),
        ("2026-11-22 09:19:57.123456+00", 1_795_339_197.123456),
        ("2026-11-22T10:19:57+01:00", 1_795_339_197),
        ("2026-11-22T04:19:57-0500", 1_795_339_197),
        ("1970-01-01T00:00:00Z", 0),
    ])
    func parses(_ text: String, _ epoch: Double) throws {
        let d = try #require(Timestamp.parse(text))
        #expect(abs(d.timeIntervalSince1970 - epoch) < 0.0005)
    }

    @Test(arguments: [
        "", "2026-13-01T00:00:00Z", "2026-11-22", "2026-11-22T09:19:57", "2026-11-22T09:19:57.Z", "x026-11-22T09:19:57Z",
        "2026-11-22T09:19:57Zjunk",
    ])
    func rejects(_ text: String) { #expect(Timestamp.parse(text) == nil) }

    @Test func formatsMillisecondsUTC() {
        #expect(Timestamp.format(Date(timeIntervalSince1970: 1_795_339_197.1239)) == "2026-11-22T09:19:57.123Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        let now = Date()
        #expect(abs(Timestamp.parse(Timestamp.format(now))!.timeIntervalSince(now)) < 0.001)
    }
}

@Suite struct PageSplitterTests {
    /// The CLI asks for the next page from the cursor at a page's tail before splitting it: the tail must
    /// agree with the full split whenever it answers, also when an item's text looks like the key.
    @Test func trailingCursorAgreesWithTheSplit() throws {
        let pages = [
            #"{"items":[{"a":1},{"b":"x"}],"next_cursor":"Y3JlYXRlZF9hdA==","total":2}"#,
            #"{"items":[{"t":"\"next_cursor\":\"fake\""},{"next_cursor":"inner"}],"next_cursor":null}"#,
            #"{"items":[],"next_cursor":"abc"}"#,
            #"{"items":[{"a":1}]}"#,
            #"{"items":[],"next_cursor":"a\"b"}"#,
        ]
        for text in pages {
            let data = Data(text.utf8)
            let split = try PageSplitter.split(data)
            if let tail = PageSplitter.trailingCursor(data) {
                #expect(tail == split.nextCursor, "\(text)")
            }
        }
        #expect(PageSplitter.trailingCursor(Data(pages[0].utf8)) == .some("Y3JlYXRlZF9hdA=="))
        #expect(PageSplitter.trailingCursor(Data(pages[1].utf8)) == .some(nil))
        #expect(PageSplitter.trailingCursor(Data(pages[3].utf8)) == nil)
        #expect(PageSplitter.trailingCursor(Data(pages[4].utf8)) == nil)
    }
}

@Suite struct ChildPipeTests {
    /// A child gets the pipe end it is handed and no other: pipes made for other children at the same time
    /// are not inherited (with Foundation's Pipe they were, and a reader waited for end-of-file forever).
    @Test func childrenInheritOnlyTheirOwnEnds() throws {
        let other = try ChildPipe()
        for h in [other.read, other.write] { #expect(fcntl(h.fileDescriptor, F_GETFD) & FD_CLOEXEC != 0) }
        let out = try ChildPipe()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        let (r, w) = (other.read.fileDescriptor, other.write.fileDescriptor)
        p.arguments = ["-c", "for n in \(r) \(w); do [ -e /proc/$$/fd/$n ] && echo leaked $n; done; echo done"]
        p.standardOutput = out.write
        try p.run()
        out.closeChildEnd(childReads: false)
        let text = String(decoding: out.read.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(text == "done\n")
    }
}
