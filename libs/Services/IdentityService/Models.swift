import Contracts
import Foundation
import VigilCore

// Requests and replies of the identity subjects (snake_case on the wire).

struct SignupRequest: Codable, Sendable {
    var email: String
    var password: String
    var fullName: String
    var workspaceName: String
}
struct LoginRequest: Codable, Sendable {
    var email: String
    var password: String
}
struct RefreshRequest: Codable, Sendable { var refreshToken: String }
struct ForgotPasswordRequest: Codable, Sendable { var email: String }
struct ResetPasswordRequest: Codable, Sendable {
    var token: String
    var newPassword: String
}
struct ChangePasswordRequest: Codable, Sendable {
    var currentPassword: String
    var newPassword: String
}
struct ResendVerificationRequest: Codable, Sendable { var email: String? }
struct TokenPathRequest: Codable, Sendable { var token: String }
struct MessageReply: Codable, Sendable { var message: String }

struct UserView: Codable, Sendable {
    var id: String
    var email: String
    var fullName: String
    var emailVerified: Bool
    var createdAt: Date?
}
struct WorkspaceView: Codable, Sendable {
    var id: String
    var slug: String
    var name: String
    var parentId: String?
    var settings: [String: JSONValue]?
    var createdAt: Date?
}
struct TokenReply: Codable, Sendable {
    var user: UserView
    var workspace: WorkspaceView?
    var accessToken: String
    var refreshToken: String
    var tokenType = "bearer"
    var expiresIn: Int
}

struct MembershipView: Codable, Sendable {
    var workspace: WorkspaceView
    var role: Role
}
struct MeReply: Codable, Sendable {
    var kind: String
    var user: UserView?
    var workspace: WorkspaceView
    var role: Role
    var scopes: [String]
    var apiKeyId: String?
    var actingViaParent: String?
    var memberships: [MembershipView]?
}

struct TeamMember: Codable, Sendable {
    var membershipId: String
    var userId: String
    var email: String
    var fullName: String
    var role: Role
    var joinedAt: Date
}
struct MembershipPath: Codable, Sendable { var membershipId: String }
struct UpdateRoleRequest: Codable, Sendable {
    var membershipId: String
    var role: Role
}
struct UpdateProfileRequest: Codable, Sendable { var fullName: String? }

struct UpdateTenantRequest: Codable, Sendable { var name: String? }
struct UpdateSettingsRequest: Codable, Sendable { var settings: [String: JSONValue] }
struct CreateChildWorkspaceRequest: Codable, Sendable { var name: String }

struct CreateInvitationRequest: Codable, Sendable {
    var email: String
    var role: Role?
}
struct InvitationView: Codable, Sendable {
    var id: String
    var email: String
    var role: Role
    var status: String
    var invitedBy: String?
    var expiresAt: Date
    var createdAt: Date
    var acceptedAt: Date?
}
struct InvitationPath: Codable, Sendable { var invitationId: String }
struct ValidateInvitationReply: Codable, Sendable {
    var email: String
    var role: Role
    var workspace: WorkspaceView
    var userExists: Bool
    var needsPassword: Bool
    var expiresAt: Date
}
struct AcceptInvitationRequest: Codable, Sendable {
    var token: String
    var fullName: String?
    var password: String?
}
struct AcceptInvitationReply: Codable, Sendable {
    var user: UserView
    var workspace: WorkspaceView
    var membershipId: String
    var role: Role
    var accessToken: String?
    var refreshToken: String?
    var tokenType: String?
    var expiresIn: Int?
}

struct CreateApiKeyRequest: Codable, Sendable {
    var name: String
    var scopes: [String]?
    var expiresAt: Date?
    var role: Role?
}
struct ApiKeyView: Codable, Sendable {
    var id: String
    var name: String
    var prefix: String
    var scopes: [String]
    var role: Role
    var createdAt: Date
    var expiresAt: Date?
    var lastUsedAt: Date?
    var key: String?
}
struct ApiKeyPath: Codable, Sendable { var keyId: String }

// `GET /auth/me` is the gateway's authenticated read: its reply is written directly (byte for byte the
// JSONEncoder convention), since the encoder's per-key snake_case conversion was a quarter of
// identity's time per request in a profile under load.
extension UserView: JSONWritable {
    func writeJSON(into out: inout [UInt8]) {
        var o = JSONFields(&out)
        o.date("created_at", createdAt, &out)
        o.string("email", email, &out)
        o.bool("email_verified", emailVerified, &out)
        o.string("full_name", fullName, &out)
        o.string("id", id, &out)
        o.close(&out)
    }
}
extension WorkspaceView: JSONWritable {
    func writeJSON(into out: inout [UInt8]) {
        var o = JSONFields(&out)
        o.date("created_at", createdAt, &out)
        o.string("id", id, &out)
        o.string("name", name, &out)
        o.string("parent_id", parentId, &out)
        if let settings { o.map("settings", settings, &out) { $0.writeJSON(into: &$1) } }
        o.string("slug", slug, &out)
        o.close(&out)
    }
}
extension MembershipView: JSONWritable {
    func writeJSON(into out: inout [UInt8]) {
        var o = JSONFields(&out)
        o.string("role", role.rawValue, &out)
        o.field("workspace", workspace, &out) { $0.writeJSON(into: &$1) }
        o.close(&out)
    }
}
extension MeReply: JSONWritable {
    func writeJSON(into out: inout [UInt8]) {
        var o = JSONFields(&out)
        o.string("acting_via_parent", actingViaParent, &out)
        o.string("api_key_id", apiKeyId, &out)
        o.string("kind", kind, &out)
        o.array("memberships", memberships, &out)
        o.string("role", role.rawValue, &out)
        o.field("scopes", scopes, &out) { FastJSON.strings($0, into: &$1) }
        o.field("user", user, &out) { $0.writeJSON(into: &$1) }
        o.field("workspace", workspace, &out) { $0.writeJSON(into: &$1) }
        o.close(&out)
    }
}
