import Bus
import Contracts
import Foundation
import ServiceRuntime
import Store
import VigilCore
import VigilCrypto

extension IdentityHandlers {
    // MARK: team

    static func member(_ r: Row) throws -> TeamMember {
        TeamMember(
            membershipId: try r.string("id"), userId: try r.string("user_id"), email: try r.string("email"),
            fullName: try r.string("full_name"), role: try Views.role(r), joinedAt: try r.date("created_at"))
    }

    @Sendable func listTeam(_ req: PageRequest, _ ctx: CallContext) async throws -> Page<TeamMember> {
        let p = try ctx.requirePrincipal()
        let page = try Pagination(req)
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            try await page.list(
                tx, columns: "m.id, m.user_id, m.role, m.created_at, u.email, u.full_name",
                from: "identity.memberships m JOIN identity.users u ON u.id = m.user_id",
                filter: "m.tenant_id = $1", [p.tenantId], alias: "m.", map: Self.member)
        }
    }

    /// Loads a membership of the caller's workspace and the number of owners there.
    func loadMembership(tx: Transaction, _ p: Principal, _ id: String) async throws -> (TeamMember, owners: Int) {
        let id = try Validate.id(id, "membership")
        guard
            let row = try await tx.one(
                """
                SELECT m.id, m.user_id, m.role, m.created_at, u.email, u.full_name FROM identity.memberships m
                JOIN identity.users u ON u.id = m.user_id WHERE m.id = $1 AND m.tenant_id = $2 FOR UPDATE OF m
                """, [id, p.tenantId])
        else { throw ServiceError.notFound("membership") }
        let owners = try await tx.one("SELECT count(*) AS n FROM identity.memberships WHERE tenant_id = $1 AND role = 'owner'", [p.tenantId])!.int(
            "n")
        return (try Self.member(row), owners)
    }

    @Sendable func updateRole(_ req: UpdateRoleRequest, _ ctx: CallContext) async throws -> TeamMember {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .admin)
        let member: TeamMember = try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            var (m, owners) = try await loadMembership(tx: tx, p, req.membershipId)
            if (m.role == .owner || req.role == .owner) && p.role != .owner {
                throw ServiceError.forbidden("only an owner can grant or change the owner role")
            }
            if m.role == .owner && req.role != .owner && owners <= 1 {
                throw ServiceError.conflict("the last owner cannot be demoted; make another member owner first", code: "last_owner")
            }
            try await tx.execute("UPDATE identity.memberships SET role = $2 WHERE id = $1", [m.membershipId, req.role.rawValue])
            try await tx.emit(
                Events.membershipRoleChanged, tenantId: p.tenantId,
                data: [
                    "membership_id": m.membershipId, "user_id": m.userId, "from": m.role.rawValue,
                    "to": req.role.rawValue, "actor": p.actorId,
                ])
            m.role = req.role
            return m
        }
        invalidate(PrincipalInvalidation(userId: member.userId))
        return member
    }

    @Sendable func removeMember(_ req: MembershipPath, _ ctx: CallContext) async throws -> Empty {
        let p = try ctx.requirePrincipal()
        let removed: String = try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            let (m, owners) = try await loadMembership(tx: tx, p, req.membershipId)
            let leavingSelf = m.userId == p.userId
            if !leavingSelf { try p.require(atLeast: .admin) }
            if m.role == .owner && !leavingSelf && p.role != .owner {
                throw ServiceError.forbidden("an admin cannot remove an owner")
            }
            if m.role == .owner && owners <= 1 {
                throw ServiceError.conflict("the last owner cannot leave or be removed", code: "last_owner")
            }
            try await tx.execute("DELETE FROM identity.memberships WHERE id = $1", [m.membershipId])
            try await tx.execute(
                "UPDATE identity.refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND tenant_id = $2 AND revoked_at IS NULL",
                [m.userId, p.tenantId])
            try await tx.emit(
                Events.membershipRemoved, tenantId: p.tenantId,
                data: ["membership_id": m.membershipId, "user_id": m.userId, "actor": p.actorId])
            return m.userId
        }
        invalidate(PrincipalInvalidation(userId: removed))
        return Empty()
    }

    @Sendable func updateProfile(_ req: UpdateProfileRequest, _ ctx: CallContext) async throws -> UserView {
        let p = try ctx.requirePrincipal()
        guard p.isUser, let userId = p.userId else { throw ServiceError.forbidden("a profile belongs to a user session, not an API key") }
        let name = try req.fullName.map { try Validate.text($0, path: "body.full_name") }
        return try await store.transaction(.none, eventHeaders: ctx.eventHeaders) { tx in
            guard
                let row = try await tx.one(
                    """
                    UPDATE identity.users SET full_name = coalesce($2, full_name), updated_at = now() WHERE id = $1 RETURNING *
                    """, [userId, name])
            else { throw ServiceError.notFound("user") }
            return try Views.user(row)
        }
    }

    // MARK: tenants

    @Sendable func getTenant(_ req: Empty, _ ctx: CallContext) async throws -> WorkspaceView {
        let p = try ctx.requirePrincipal()
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard let row = try await tx.one("SELECT * FROM identity.workspaces WHERE id = $1", [p.tenantId]) else {
                throw ServiceError.notFound("workspace")
            }
            return try Views.workspace(row)
        }
    }

    @Sendable func updateTenant(_ req: UpdateTenantRequest, _ ctx: CallContext) async throws -> WorkspaceView {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .admin)
        let name = try req.name.map { try Validate.text($0, path: "body.name", max: 100) }
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard
                let row = try await tx.one(
                    """
                    UPDATE identity.workspaces SET name = coalesce($2, name), updated_at = now() WHERE id = $1 RETURNING *
                    """, [p.tenantId, name])
            else { throw ServiceError.notFound("workspace") }
            try await tx.emit(
                Events.workspaceUpdated, tenantId: p.tenantId,
                data: ["workspace_id": p.tenantId, "actor": p.actorId])
            return try Views.workspace(row)
        }
    }

    /// Merges a JSON object into the workspace settings (keys kept exactly as sent).
    @Sendable func updateSettings(_ body: Data, _ ctx: CallContext) async throws -> Data {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .admin)
        guard let obj = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            throw ServiceError.validation("body", "must be a JSON object")
        }
        let patch = (obj["settings"] as? [String: Any]) ?? obj
        let patchData = try JSONSerialization.data(withJSONObject: patch)
        guard patchData.count <= 64 * 1024 else { throw ServiceError.validation("body.settings", "must be at most 64 KiB") }
        let view: WorkspaceView = try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard
                let row = try await tx.one(
                    """
                    UPDATE identity.workspaces SET settings = settings || $2::jsonb, updated_at = now() WHERE id = $1 RETURNING *
                    """, [p.tenantId, JSONParameter(raw: patchData)])
            else { throw ServiceError.notFound("workspace") }
            return try Views.workspace(row)
        }
        return try JSON.encode(view)
    }

    @Sendable func listChildren(_ req: PageRequest, _ ctx: CallContext) async throws -> Page<WorkspaceView> {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .admin)
        let page = try Pagination(req)
        return try await store.transaction(.crossTenant, eventHeaders: ctx.eventHeaders) { tx in
            try await page.list(tx, from: "identity.workspaces", filter: "parent_id = $1", [p.tenantId]) { try Views.workspace($0) }
        }
    }

    @Sendable func createChild(_ req: CreateChildWorkspaceRequest, _ ctx: CallContext) async throws -> WorkspaceView {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .admin)
        guard p.viaParentTenantId == nil else { throw ServiceError.forbidden("child workspaces cannot have children of their own") }
        let name = try Validate.text(req.name, path: "body.name", max: 100)
        return try await store.transaction(.crossTenant, eventHeaders: ctx.eventHeaders) { tx in
            if try await tx.one("SELECT 1 FROM identity.workspaces WHERE id = $1 AND parent_id IS NOT NULL", [p.tenantId]) != nil {
                throw ServiceError.forbidden("child workspaces cannot have children of their own")
            }
            return try await createWorkspace(tx: tx, name: name, parentId: p.tenantId)
        }
    }

    // MARK: invitations

    static func invitation(_ r: Row) throws -> InvitationView {
        var status = try r.string("status")
        let expires = try r.date("expires_at")
        if status == "pending" && expires < Date() { status = "expired" }
        return InvitationView(
            id: try r.string("id"), email: try r.string("email"), role: try Views.role(r), status: status,
            invitedBy: r.optionalString("invited_by"), expiresAt: expires, createdAt: try r.date("created_at"),
            acceptedAt: r.optionalDate("accepted_at"))
    }

    func sendInvitationEmail(tx: Transaction, to email: String, token: String, workspace: String, role: Role, tenantId: String) async throws {
        let link = "\(settings.publicURL)/accept-invite?token=\(token)"
        try await tx.emit(
            Jobs.emailSend, type: "email.requested", tenantId: tenantId,
            data: EmailRequest(
                to: email, template: "invitation", subject: "You are invited to \(workspace) on Vigil",
                text:
                    "You have been invited to join \(workspace) on Vigil as \(role.rawValue).\n\nAccept: \(link)\n\n"
                    + "The invitation expires in 7 days.",
                values: ["token": token, "link": link, "workspace_name": workspace, "role": role.rawValue]))
    }

    @Sendable func createInvitation(_ req: CreateInvitationRequest, _ ctx: CallContext) async throws -> InvitationView {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .admin)
        let email = try Validate.email(req.email)
        let role = req.role ?? .viewer
        if role == .owner && p.role != .owner { throw ServiceError.forbidden("only an owner can invite another owner") }
        let token = SecretToken.generate(prefix: TokenKind.invite)
        do {
            return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
                if try await tx.one(
                    """
                    SELECT 1 FROM identity.memberships m JOIN identity.users u ON u.id = m.user_id WHERE m.tenant_id = $1 AND u.email = $2
                    """, [p.tenantId, email]) != nil
                {
                    throw ServiceError.conflict("this person is already a member of the workspace", code: "already_member")
                }
                try await tx.execute(
                    "UPDATE identity.invitations SET status = 'expired' WHERE tenant_id = $1 AND email = $2 "
                        + "AND status = 'pending' AND expires_at < now()",
                    [p.tenantId, email])
                // Seats: members plus pending invitations, counted under a per-workspace lock.
                _ = try await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", ["seats:" + p.tenantId])
                let seats = try await tx.one(
                    """
                    SELECT (SELECT count(*) FROM identity.memberships WHERE tenant_id = $1)
                         + (SELECT count(*) FROM identity.invitations WHERE tenant_id = $1 AND status = 'pending' AND expires_at > now()) AS n
                    """, [p.tenantId])!.int("n")
                try await Quotas.check(bus, tenantId: p.tenantId, quota: "seats", inUse: seats)
                let ws = try await tx.one("SELECT name FROM identity.workspaces WHERE id = $1", [p.tenantId])!.string("name")
                let row = try await tx.one(
                    """
                    INSERT INTO identity.invitations (id, tenant_id, email, role, token_hash, invited_by, expires_at)
                    VALUES ($1, $2, $3, $4, $5, $6, now() + interval '7 days') RETURNING *
                    """, [ID.make(), p.tenantId, email, role.rawValue, SecretToken.hash(token), p.userId])!
                try await sendInvitationEmail(tx: tx, to: email, token: token, workspace: ws, role: role, tenantId: p.tenantId)
                let view = try Self.invitation(row)
                try await tx.emit(
                    Events.invitationCreated, tenantId: p.tenantId,
                    data: ["invitation_id": view.id, "role": role.rawValue, "actor": p.actorId])
                return view
            }
        } catch let e as StoreError where e.isUniqueViolation {
            throw ServiceError.conflict("a pending invitation for this email already exists; resend it instead", code: "invitation_pending")
        }
    }

    @Sendable func listInvitations(_ req: PageRequest, _ ctx: CallContext) async throws -> Page<InvitationView> {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .admin)
        let page = try Pagination(req)
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            try await page.list(tx, from: "identity.invitations", filter: "tenant_id = $1", [p.tenantId], map: Self.invitation)
        }
    }

    /// Finds a usable invitation by token: 404 when unknown, 410 when expired, accepted or revoked.
    func pendingInvitation(tx: Transaction, token: String, lock: Bool) async throws -> Row {
        guard SecretToken.isWellFormed(token, prefix: TokenKind.invite),
            let row = try await tx.one(
                """
                SELECT i.*, \(Self.workspaceColumns) FROM identity.invitations i JOIN identity.workspaces w ON w.id = i.tenant_id
                WHERE i.token_hash = $1\(lock ? " FOR UPDATE OF i" : "")
                """, [SecretToken.hash(token)])
        else { throw ServiceError.notFound("invitation") }
        let status = try row.string("status")
        guard status == "pending" else { throw ServiceError.gone("invitation was already \(status)") }
        guard try row.date("expires_at") > Date() else { throw ServiceError.gone("invitation has expired") }
        return row
    }

    @Sendable func validateInvitation(_ req: TokenPathRequest, _ ctx: CallContext) async throws -> ValidateInvitationReply {
        try await store.transaction(.crossTenant, eventHeaders: ctx.eventHeaders) { tx in
            let row = try await pendingInvitation(tx: tx, token: req.token, lock: false)
            let exists = try await tx.one("SELECT 1 FROM identity.users WHERE email = $1", [try row.string("email")]) != nil
            return ValidateInvitationReply(
                email: try row.string("email"), role: try Views.role(row),
                workspace: try Views.workspace(row, prefix: "w_"), userExists: exists,
                needsPassword: !exists, expiresAt: try row.date("expires_at"))
        }
    }

    @Sendable func acceptInvitation(_ req: AcceptInvitationRequest, _ ctx: CallContext) async throws -> AcceptInvitationReply {
        // Hash outside the transaction (slow); only used when the account is new.
        let newPasswordHash: String? = try await {
            guard let pw = req.password else { return nil }
            return try await hashPassword(try Validate.password(pw), settings.passwordStrength)
        }()
        do {
            return try await store.transaction(.crossTenant, eventHeaders: ctx.eventHeaders) { tx in
                let inv = try await pendingInvitation(tx: tx, token: req.token, lock: true)
                let email = try inv.string("email")
                let tenantId = try inv.string("tenant_id")
                let role = try Views.role(inv)
                var user: UserView
                var isNew = false
                if let u = try await tx.one("SELECT * FROM identity.users WHERE email = $1", [email]) {
                    user = try Views.user(u)
                } else {
                    var issues: [ValidationIssue] = []
                    if req.fullName?.trimmingCharacters(in: .whitespaces).isEmpty ?? true {
                        issues.append(.init(path: "body.full_name", message: "field required for a new account"))
                    }
                    if newPasswordHash == nil { issues.append(.init(path: "body.password", message: "field required for a new account")) }
                    guard issues.isEmpty, let hash = newPasswordHash else { throw ServiceError.validation(issues) }
                    let name = try Validate.text(req.fullName ?? "", path: "body.full_name")
                    let id = ID.make()
                    try await tx.execute(
                        "INSERT INTO identity.users (id, email, password_hash, full_name, email_verified) VALUES ($1, $2, $3, $4, true)",
                        [id, email, hash, name])
                    user = UserView(id: id, email: email, fullName: name, emailVerified: true, createdAt: Date())
                    isNew = true
                }
                let membershipId = ID.make()
                try await tx.execute(
                    "INSERT INTO identity.memberships (id, tenant_id, user_id, role) VALUES ($1, $2, $3, $4)",
                    [membershipId, tenantId, user.id, role.rawValue])
                try await tx.execute("UPDATE identity.invitations SET status = 'accepted', accepted_at = now() WHERE id = $1", [try inv.string("id")])
                try await tx.emit(
                    Events.invitationAccepted, tenantId: tenantId,
                    data: ["invitation_id": try inv.string("id"), "user_id": user.id, "membership_id": membershipId, "role": role.rawValue])
                let ws = try Views.workspace(inv, prefix: "w_")
                var reply = AcceptInvitationReply(user: user, workspace: ws, membershipId: membershipId, role: role)
                if isNew {
                    let t = try await issueTokens(tx: tx, user: user, workspace: ws)
                    reply.accessToken = t.accessToken
                    reply.refreshToken = t.refreshToken
                    reply.tokenType = t.tokenType
                    reply.expiresIn = t.expiresIn
                }
                return reply
            }
        } catch let e as StoreError where e.isUniqueViolation {
            throw ServiceError.conflict("you are already a member of this workspace", code: "already_member")
        }
    }

    @Sendable func resendInvitation(_ req: InvitationPath, _ ctx: CallContext) async throws -> InvitationView {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .admin)
        let id = try Validate.id(req.invitationId, "invitation")
        let token = SecretToken.generate(prefix: TokenKind.invite)
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard let row = try await tx.one("SELECT * FROM identity.invitations WHERE id = $1 AND tenant_id = $2 FOR UPDATE", [id, p.tenantId])
            else {
                throw ServiceError.notFound("invitation")
            }
            guard try row.string("status") == "pending" else {
                throw ServiceError.conflict("only pending invitations can be resent", code: "not_pending")
            }
            let updated = try await tx.one(
                """
                UPDATE identity.invitations SET token_hash = $2, expires_at = now() + interval '7 days' WHERE id = $1 RETURNING *
                """, [id, SecretToken.hash(token)])!
            let ws = try await tx.one("SELECT name FROM identity.workspaces WHERE id = $1", [p.tenantId])!.string("name")
            let view = try Self.invitation(updated)
            try await sendInvitationEmail(tx: tx, to: view.email, token: token, workspace: ws, role: view.role, tenantId: p.tenantId)
            return view
        }
    }

    @Sendable func revokeInvitation(_ req: InvitationPath, _ ctx: CallContext) async throws -> Empty {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .admin)
        let id = try Validate.id(req.invitationId, "invitation")
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard try await tx.one("SELECT 1 FROM identity.invitations WHERE id = $1 AND tenant_id = $2", [id, p.tenantId]) != nil else {
                throw ServiceError.notFound("invitation")
            }
            try await tx.execute("UPDATE identity.invitations SET status = 'revoked' WHERE id = $1 AND status = 'pending'", [id])
            return Empty()
        }
    }

    // MARK: API keys

    static let allowedScopes: Set<String> = ["read", "write", "admin"]

    static func apiKey(_ r: Row) throws -> ApiKeyView {
        ApiKeyView(
            id: try r.string("id"), name: try r.string("name"), prefix: try r.string("prefix"), scopes: try r.stringArray("scopes"),
            role: try Views.role(r), createdAt: try r.date("created_at"), expiresAt: r.optionalDate("expires_at"),
            lastUsedAt: r.optionalDate("last_used_at"), key: nil)
    }

    @Sendable func createApiKey(_ req: CreateApiKeyRequest, _ ctx: CallContext) async throws -> ApiKeyView {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .analyst)
        let name = try Validate.text(req.name, path: "body.name", max: 100)
        let scopes = req.scopes ?? ["read", "write"]
        if scopes.isEmpty || !Set(scopes).isSubset(of: Self.allowedScopes) {
            throw ServiceError.validation("body.scopes", "must be a non-empty subset of read, write, admin")
        }
        if !Set(scopes).isSubset(of: Set(p.scopes)) { throw ServiceError.forbidden("a key cannot have scopes its creator lacks") }
        if let exp = req.expiresAt, exp <= Date() { throw ServiceError.validation("body.expires_at", "must be in the future") }
        let role = req.role ?? p.role
        if role.rank > p.role.rank || (role == .billing && p.role.rank < Role.admin.rank && p.role != .billing) {
            throw ServiceError.forbidden("a key cannot have a higher role than its creator")
        }
        let key = SecretToken.generate(prefix: SecretToken.apiKeyPrefix)
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            let row = try await tx.one(
                """
                INSERT INTO identity.api_keys (id, tenant_id, name, key_hash, prefix, scopes, role, created_by, expires_at)
                VALUES ($1, $2, $3, $4, $5, $6::text[], $7, $8, $9) RETURNING *
                """,
                [
                    ID.make(), p.tenantId, name, SecretToken.hash(key), SecretToken.displayPrefix(key, prefix: SecretToken.apiKeyPrefix),
                    scopes.sorted(), role.rawValue, p.userId, req.expiresAt,
                ])!
            var view = try Self.apiKey(row)
            view.key = key
            try await tx.emit(
                Events.apikeyCreated, tenantId: p.tenantId,
                data: ["api_key_id": view.id, "prefix": view.prefix, "actor": p.actorId])
            return view
        }
    }

    @Sendable func listApiKeys(_ req: PageRequest, _ ctx: CallContext) async throws -> Page<ApiKeyView> {
        let p = try ctx.requirePrincipal()
        let page = try Pagination(req)
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            try await page.list(
                tx, from: "identity.api_keys", filter: "tenant_id = $1 AND revoked_at IS NULL", [p.tenantId],
                map: Self.apiKey)
        }
    }

    @Sendable func revokeApiKey(_ req: ApiKeyPath, _ ctx: CallContext) async throws -> Empty {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .analyst)
        let id = try Validate.id(req.keyId, "API key")
        try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard
                try await tx.execute(
                    "UPDATE identity.api_keys SET revoked_at = now() WHERE id = $1 AND tenant_id = $2 AND revoked_at IS NULL",
                    [id, p.tenantId]) == 1
            else { throw ServiceError.notFound("API key") }
            try await tx.emit(
                Events.apikeyRevoked, tenantId: p.tenantId,
                data: ["api_key_id": id, "actor": p.actorId])
        }
        invalidate(PrincipalInvalidation(apiKeyId: id))
        return Empty()
    }
}
