import Bus
import Contracts
import Foundation
import ServiceRuntime
import Store
import VigilCore
import VigilCrypto

extension IdentityHandlers {
    // MARK: team

    @Sendable func listTeam(_ req: PageRequest, _ p: Principal, _ ctx: CallContext) async throws -> Page<TeamMember> {
        let page = try Pagination(req)
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            try await WorkspaceStore.team(tx, page, tenantId: p.tenantId)
        }
    }

    /// Loads a membership of the caller's workspace and the number of owners there.
    func loadMembership(tx: Transaction, _ p: Principal, _ id: String) async throws -> (TeamMember, owners: Int) {
        let id = try Validate.id(id, "membership")
        guard let member = try await WorkspaceStore.lockMember(tx, id: id, tenantId: p.tenantId) else {
            throw ServiceError.notFound("membership")
        }
        return (member, try await WorkspaceStore.owners(tx, tenantId: p.tenantId))
    }

    @Sendable func updateRole(_ req: UpdateRoleRequest, _ p: Principal, _ ctx: CallContext) async throws -> TeamMember {
        let member: TeamMember = try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            var (m, owners) = try await loadMembership(tx: tx, p, req.membershipId)
            if (m.role == .owner || req.role == .owner) && p.role != .owner {
                throw ServiceError.forbidden("only an owner can grant or change the owner role")
            }
            if m.role == .owner && req.role != .owner && owners <= 1 {
                throw ServiceError.conflict("the last owner cannot be demoted; make another member owner first", code: "last_owner")
            }
            try await WorkspaceStore.setRole(tx, membershipId: m.membershipId, req.role)
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

    @Sendable func removeMember(_ req: MembershipPath, _ p: Principal, _ ctx: CallContext) async throws -> Empty {
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
            try await WorkspaceStore.removeMember(tx, membershipId: m.membershipId)
            try await TokenStore.revokeRefresh(tx, userId: m.userId, tenantId: p.tenantId)
            try await tx.emit(
                Events.membershipRemoved, tenantId: p.tenantId,
                data: ["membership_id": m.membershipId, "user_id": m.userId, "actor": p.actorId])
            return m.userId
        }
        invalidate(PrincipalInvalidation(userId: removed))
        return Empty()
    }

    @Sendable func updateProfile(_ req: UpdateProfileRequest, _ p: Principal, _ ctx: CallContext) async throws -> UserView {
        guard p.isUser, let userId = p.userId else { throw ServiceError.forbidden("a profile belongs to a user session, not an API key") }
        let name = try req.fullName.map { try Validate.text($0, path: "body.full_name") }
        return try await store.transaction(.none, eventHeaders: ctx.eventHeaders) { tx in
            guard let user = try await UserStore.updateProfile(tx, userId: userId, fullName: name) else { throw ServiceError.notFound("user") }
            return user
        }
    }

    // MARK: tenants

    @Sendable func getTenant(_ req: Empty, _ p: Principal, _ ctx: CallContext) async throws -> WorkspaceView {
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard let ws = try await WorkspaceStore.get(tx, id: p.tenantId) else { throw ServiceError.notFound("workspace") }
            return ws
        }
    }

    @Sendable func updateTenant(_ req: UpdateTenantRequest, _ p: Principal, _ ctx: CallContext) async throws -> WorkspaceView {
        let name = try req.name.map { try Validate.text($0, path: "body.name", max: 100) }
        let ws = try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard let ws = try await WorkspaceStore.rename(tx, id: p.tenantId, name: name) else { throw ServiceError.notFound("workspace") }
            try await tx.emit(
                Events.workspaceUpdated, tenantId: p.tenantId,
                data: ["workspace_id": p.tenantId, "actor": p.actorId])
            return ws
        }
        workspaceChanged(p.tenantId)
        return ws
    }

    /// After a committed change of the workspace row: every replica drops its cached copy (this one at once).
    func workspaceChanged(_ id: String) {
        workspaceCache.invalidate(id)
        try? bus.publish(IdentityBroadcasts.workspaceChanged, data: Data(id.utf8))
    }

    /// Merges a JSON object into the workspace settings (keys kept exactly as sent).
    @Sendable func updateSettings(_ body: Data, _ ctx: CallContext) async throws -> Data {
        let p = try ctx.requirePrincipal()
        guard let obj = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            throw ServiceError.validation("body", "must be a JSON object")
        }
        let patch = (obj["settings"] as? [String: Any]) ?? obj
        let patchData = try JSONSerialization.data(withJSONObject: patch)
        guard patchData.count <= 64 * 1024 else { throw ServiceError.validation("body.settings", "must be at most 64 KiB") }
        let view: WorkspaceView = try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard let ws = try await WorkspaceStore.mergeSettings(tx, id: p.tenantId, patch: patchData) else {
                throw ServiceError.notFound("workspace")
            }
            return ws
        }
        workspaceChanged(p.tenantId)
        return try JSON.encode(view)
    }

    @Sendable func listChildren(_ req: PageRequest, _ p: Principal, _ ctx: CallContext) async throws -> Page<WorkspaceView> {
        let page = try Pagination(req)
        return try await store.transaction(.crossTenant, eventHeaders: ctx.eventHeaders) { tx in
            try await WorkspaceStore.children(tx, page, parentId: p.tenantId)
        }
    }

    @Sendable func createChild(_ req: CreateChildWorkspaceRequest, _ p: Principal, _ ctx: CallContext) async throws -> WorkspaceView {
        guard p.viaParentTenantId == nil else { throw ServiceError.forbidden("child workspaces cannot have children of their own") }
        let name = try Validate.text(req.name, path: "body.name", max: 100)
        return try await store.transaction(.crossTenant, eventHeaders: ctx.eventHeaders) { tx in
            if try await WorkspaceStore.isChild(tx, id: p.tenantId) {
                throw ServiceError.forbidden("child workspaces cannot have children of their own")
            }
            return try await createWorkspace(tx: tx, name: name, parentId: p.tenantId)
        }
    }

    // MARK: invitations

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

    @Sendable func createInvitation(_ req: CreateInvitationRequest, _ p: Principal, _ ctx: CallContext) async throws -> InvitationView {
        let email = try Validate.email(req.email)
        let role = req.role ?? .viewer
        if role == .owner && p.role != .owner { throw ServiceError.forbidden("only an owner can invite another owner") }
        let token = SecretToken.generate(prefix: TokenKind.invite)
        do {
            return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
                if try await WorkspaceStore.hasMember(tx, tenantId: p.tenantId, email: email) {
                    throw ServiceError.conflict("this person is already a member of the workspace", code: "already_member")
                }
                try await InvitationStore.expireLapsed(tx, tenantId: p.tenantId, email: email)
                // Seats: members plus pending invitations, counted under a per-workspace lock.
                let seats = try await InvitationStore.lockSeats(tx, tenantId: p.tenantId)
                try await Quotas.check(bus, tenantId: p.tenantId, quota: "seats", inUse: seats)
                let ws = try await WorkspaceStore.name(tx, id: p.tenantId)
                let view = try await InvitationStore.insert(
                    tx, tenantId: p.tenantId, email: email, role: role, tokenHash: SecretToken.hash(token), invitedBy: p.userId)
                try await sendInvitationEmail(tx: tx, to: email, token: token, workspace: ws, role: role, tenantId: p.tenantId)
                try await tx.emit(
                    Events.invitationCreated, tenantId: p.tenantId,
                    data: ["invitation_id": view.id, "role": role.rawValue, "actor": p.actorId])
                return view
            }
        } catch let e as StoreError where e.isUniqueViolation {
            throw ServiceError.conflict("a pending invitation for this email already exists; resend it instead", code: "invitation_pending")
        }
    }

    @Sendable func listInvitations(_ req: PageRequest, _ p: Principal, _ ctx: CallContext) async throws -> Page<InvitationView> {
        let page = try Pagination(req)
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            try await InvitationStore.list(tx, page, tenantId: p.tenantId)
        }
    }

    /// Finds a usable invitation by token: 404 when unknown, 410 when expired, accepted or revoked.
    func pendingInvitation(tx: Transaction, token: String, lock: Bool) async throws -> InvitationStore.Pending {
        guard SecretToken.isWellFormed(token, prefix: TokenKind.invite),
            let inv = try await InvitationStore.byToken(tx, hash: SecretToken.hash(token), lock: lock)
        else { throw ServiceError.notFound("invitation") }
        guard inv.status == "pending" else { throw ServiceError.gone("invitation was already \(inv.status)") }
        guard inv.expiresAt > Date() else { throw ServiceError.gone("invitation has expired") }
        return inv
    }

    @Sendable func validateInvitation(_ req: TokenPathRequest, _ ctx: CallContext) async throws -> ValidateInvitationReply {
        try await store.transaction(.crossTenant, eventHeaders: ctx.eventHeaders) { tx in
            let inv = try await pendingInvitation(tx: tx, token: req.token, lock: false)
            let exists = try await UserStore.find(tx, email: inv.email) != nil
            return ValidateInvitationReply(
                email: inv.email, role: inv.role, workspace: inv.workspace, userExists: exists, needsPassword: !exists,
                expiresAt: inv.expiresAt)
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
                let (email, tenantId, role) = (inv.email, inv.tenantId, inv.role)
                var user: UserView
                var isNew = false
                if let existing = try await UserStore.find(tx, email: email) {
                    user = existing
                } else {
                    var issues: [ValidationIssue] = []
                    if req.fullName?.trimmingCharacters(in: .whitespaces).isEmpty ?? true {
                        issues.append(.init(path: "body.full_name", message: "field required for a new account"))
                    }
                    if newPasswordHash == nil { issues.append(.init(path: "body.password", message: "field required for a new account")) }
                    guard issues.isEmpty, let hash = newPasswordHash else { throw ServiceError.validation(issues) }
                    let name = try Validate.text(req.fullName ?? "", path: "body.full_name")
                    let id = ID.make()
                    try await UserStore.insert(tx, id: id, email: email, passwordHash: hash, fullName: name, verified: true)
                    user = UserView(id: id, email: email, fullName: name, emailVerified: true, createdAt: Date())
                    isNew = true
                }
                let membershipId = ID.make()
                try await WorkspaceStore.addMember(tx, id: membershipId, tenantId: tenantId, userId: user.id, role: role)
                try await InvitationStore.markAccepted(tx, id: inv.id)
                try await tx.emit(
                    Events.invitationAccepted, tenantId: tenantId,
                    data: ["invitation_id": inv.id, "user_id": user.id, "membership_id": membershipId, "role": role.rawValue])
                let ws = inv.workspace
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

    @Sendable func resendInvitation(_ req: InvitationPath, _ p: Principal, _ ctx: CallContext) async throws -> InvitationView {
        let id = try Validate.id(req.invitationId, "invitation")
        let token = SecretToken.generate(prefix: TokenKind.invite)
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard let current = try await InvitationStore.lock(tx, id: id, tenantId: p.tenantId) else {
                throw ServiceError.notFound("invitation")
            }
            guard current.status == "pending" else {
                throw ServiceError.conflict("only pending invitations can be resent", code: "not_pending")
            }
            let view = try await InvitationStore.renew(tx, id: id, tokenHash: SecretToken.hash(token))
            let ws = try await WorkspaceStore.name(tx, id: p.tenantId)
            try await sendInvitationEmail(tx: tx, to: view.email, token: token, workspace: ws, role: view.role, tenantId: p.tenantId)
            return view
        }
    }

    @Sendable func revokeInvitation(_ req: InvitationPath, _ p: Principal, _ ctx: CallContext) async throws -> Empty {
        let id = try Validate.id(req.invitationId, "invitation")
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard try await InvitationStore.exists(tx, id: id, tenantId: p.tenantId) else {
                throw ServiceError.notFound("invitation")
            }
            try await InvitationStore.revoke(tx, id: id)
            return Empty()
        }
    }

    // MARK: API keys

    static let allowedScopes: Set<String> = ["read", "write", "admin"]

    @Sendable func createApiKey(_ req: CreateApiKeyRequest, _ p: Principal, _ ctx: CallContext) async throws -> ApiKeyView {
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
            var view = try await ApiKeyStore.insert(
                tx, tenantId: p.tenantId,
                .init(
                    name: name, hash: SecretToken.hash(key), prefix: SecretToken.displayPrefix(key, prefix: SecretToken.apiKeyPrefix),
                    scopes: scopes.sorted(), role: role, createdBy: p.userId, expiresAt: req.expiresAt))
            view.key = key
            try await tx.emit(
                Events.apikeyCreated, tenantId: p.tenantId,
                data: ["api_key_id": view.id, "prefix": view.prefix, "actor": p.actorId])
            return view
        }
    }

    @Sendable func listApiKeys(_ req: PageRequest, _ p: Principal, _ ctx: CallContext) async throws -> Page<ApiKeyView> {
        let page = try Pagination(req)
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            try await ApiKeyStore.list(tx, page, tenantId: p.tenantId)
        }
    }

    @Sendable func revokeApiKey(_ req: ApiKeyPath, _ p: Principal, _ ctx: CallContext) async throws -> Empty {
        let id = try Validate.id(req.keyId, "API key")
        try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard try await ApiKeyStore.revoke(tx, id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("API key") }
            try await tx.emit(
                Events.apikeyRevoked, tenantId: p.tenantId,
                data: ["api_key_id": id, "actor": p.actorId])
        }
        invalidate(PrincipalInvalidation(apiKeyId: id))
        return Empty()
    }
}
