import Contracts
import Foundation
import Testing
import VigilCore

@testable import IdentityService

/// `GET /auth/me` replies are written by hand (`MeReply.writeJSON`); they must be byte for byte what the
/// JSONEncoder convention (snake_case, sorted keys, ISO-8601 dates) makes of the same value.
@Suite struct IdentityWriterTests {
    static let workspace = WorkspaceView(
        id: "w1", slug: "acme-\"q\"", name: "Acme / é 🙂\n", parentId: "p1",
        settings: [
            "webhook_retries": .number(3), "ratio": .number(2.5), "on": .bool(true), "none": .null, "Camel": .string("x"),
            "list": .array([.string("a"), .number(-1)]), "nested": .object(["b": .string("2"), "a": .bool(false)]),
        ],
        createdAt: Date(timeIntervalSince1970: 1_764_000_000.123))

    static let replies: [MeReply] = [
        MeReply(
            kind: "api_key", user: nil, workspace: workspace, role: .analyst, scopes: ["findings:read", "scans:write"],
            apiKeyId: "k1", actingViaParent: nil, memberships: nil),
        MeReply(
            kind: "user",
            user: UserView(id: "u1", email: "a@b.c", fullName: "Ann \\ B", emailVerified: true, createdAt: Date(timeIntervalSince1970: 5)),
            workspace: WorkspaceView(id: "w2", slug: "s", name: "n", parentId: nil, settings: nil, createdAt: nil), role: .owner,
            scopes: [], apiKeyId: nil, actingViaParent: "p9",
            memberships: [MembershipView(workspace: workspace, role: .viewer), MembershipView(workspace: workspace, role: .billing)]),
        MeReply(
            kind: "user", user: UserView(id: "u2", email: "x@y.z", fullName: "", emailVerified: false, createdAt: nil),
            workspace: WorkspaceView(id: "w3", slug: "t", name: "m", parentId: nil, settings: [:], createdAt: nil), role: .admin,
            scopes: ["*"], apiKeyId: nil, actingViaParent: nil, memberships: []),
    ]

    @Test(arguments: replies.indices) func meReplyMatchesTheEncoder(index: Int) throws {
        let reply = Self.replies[index]
        var fast = [UInt8]()
        reply.writeJSON(into: &fast)
        let slow = try JSON.encoder().encode(reply)
        #expect(String(decoding: fast, as: UTF8.self) == String(decoding: slow, as: UTF8.self))
        // JSON.encode (what the bus reply uses) takes the writer.
        #expect(try JSON.encode(reply) == Data(fast))
    }
}
