import Bus
import Contracts
import Foundation
import Logging
import ServiceRuntime
import Store
import VigilCore
import VigilCrypto

/// All identity endpoints. Each handler validates, runs one transaction, and emits events through
/// the outbox in that transaction.
final class IdentityHandlers: Sendable {
    let store: Store
    let bus: BusConnection
    let settings: IdentitySettings
    let logger: Logger
    let timingHash: String

    var users: UserStore { UserStore(db: store) }
    var workspaces: WorkspaceStore { WorkspaceStore(db: store) }

    init(store: Store, bus: BusConnection, settings: IdentitySettings, logger: Logger) {
        self.store = store
        self.bus = bus
        self.settings = settings
        self.logger = logger
        self.timingHash = (try? Sodium.hashPassword("vigil-timing-equalizer", strength: settings.passwordStrength)) ?? ""
    }

    func register(on r: ServiceResponder) {
        r.add(Endpoint<SignupRequest, TokenReply>(Subjects.Identity.authSignup), handler: signup)
        r.add(Endpoint<LoginRequest, TokenReply>(Subjects.Identity.authLogin), handler: login)
        r.add(Endpoint<RefreshRequest, TokenReply>(Subjects.Identity.authRefresh), handler: refresh)
        r.add(Endpoint<ForgotPasswordRequest, MessageReply>(Subjects.Identity.authForgotPassword), handler: forgotPassword)
        r.add(Endpoint<ResetPasswordRequest, MessageReply>(Subjects.Identity.authResetPassword), handler: resetPassword)
        r.add(Endpoint<ChangePasswordRequest, MessageReply>(Subjects.Identity.authChangePassword), handler: changePassword)
        r.add(Endpoint<ResendVerificationRequest, MessageReply>(Subjects.Identity.authResendVerification), handler: resendVerification)
        r.add(Endpoint<TokenPathRequest, MessageReply>(Subjects.Identity.authVerifyEmail), handler: verifyEmail)
        r.add(Endpoint<Empty, MeReply>(Subjects.Identity.authMe), handler: me)
        r.add(Endpoint<PageRequest, Page<TeamMember>>(Subjects.Identity.teamList), handler: listTeam)
        r.add(Endpoint<UpdateRoleRequest, TeamMember>(Subjects.Identity.teamUpdateRole), handler: updateRole)
        r.add(Endpoint<MembershipPath, Empty>(Subjects.Identity.teamRemove), handler: removeMember)
        r.add(Endpoint<UpdateProfileRequest, UserView>(Subjects.Identity.userUpdateProfile), handler: updateProfile)
        r.add(Endpoint<Empty, WorkspaceView>(Subjects.Identity.tenantGet), handler: getTenant)
        r.add(Endpoint<UpdateTenantRequest, WorkspaceView>(Subjects.Identity.tenantUpdate), handler: updateTenant)
        r.add(name: "tenant_update_settings", subject: Subjects.Identity.tenantUpdateSettings, handler: updateSettings)
        r.add(Endpoint<PageRequest, Page<WorkspaceView>>(Subjects.Identity.tenantListChildren), handler: listChildren)
        r.add(Endpoint<CreateChildWorkspaceRequest, WorkspaceView>(Subjects.Identity.tenantCreateChild), handler: createChild)
        r.add(Endpoint<CreateInvitationRequest, InvitationView>(Subjects.Identity.invitationCreate), handler: createInvitation)
        r.add(Endpoint<PageRequest, Page<InvitationView>>(Subjects.Identity.invitationList), handler: listInvitations)
        r.add(Endpoint<TokenPathRequest, ValidateInvitationReply>(Subjects.Identity.invitationValidate), handler: validateInvitation)
        r.add(Endpoint<AcceptInvitationRequest, AcceptInvitationReply>(Subjects.Identity.invitationAccept), handler: acceptInvitation)
        r.add(Endpoint<InvitationPath, InvitationView>(Subjects.Identity.invitationResend), handler: resendInvitation)
        r.add(Endpoint<InvitationPath, Empty>(Subjects.Identity.invitationRevoke), handler: revokeInvitation)
        r.add(Endpoint<CreateApiKeyRequest, ApiKeyView>(Subjects.Identity.apikeyCreate), handler: createApiKey)
        r.add(Endpoint<PageRequest, Page<ApiKeyView>>(Subjects.Identity.apikeyList), handler: listApiKeys)
        r.add(Endpoint<ApiKeyPath, Empty>(Subjects.Identity.apikeyRevoke), handler: revokeApiKey)
        r.add(IdentityAPI.resolvePrincipal, handler: resolvePrincipal)
        r.add(Endpoint<Empty, [String: String]>(Subjects.Identity.healthPing)) { _, _ in ["status": "ok", "service": "identity"] }
        r.add(IdentityAPI.signingKeys) { [settings] _, _ in
            SigningKeysReply(keys: [.init(kid: settings.keyId, alg: "EdDSA", publicKey: Base64URL.encode(settings.signingKey.publicKey))])
        }
    }

    /// Tells every gateway to drop cached principals that a committed change made stale. Published
    /// before the reply on the same connection, so it reaches the gateway first.
    func invalidate(_ inv: PrincipalInvalidation) {
        if let data = try? JSON.encode(inv) {
            try? bus.publish(IdentityBroadcasts.principalInvalidated, data: data)
        }
    }

    // MARK: tokens

    /// Issues an access token and a refresh token (new family unless `family` is given).
    func issueTokens(tx: Transaction, user: UserView, workspace: WorkspaceView?, family: String? = nil) async throws -> TokenReply {
        let now = Int(Date().timeIntervalSince1970)
        let claims = AccessClaims(sub: user.id, iat: now, exp: now + settings.accessTTL, jti: ID.make(), tid: workspace?.id)
        let access = try JWT.sign(claims, key: settings.signingKey)
        let refresh = SecretToken.generate(prefix: TokenKind.refresh)
        try await TokenStore.insertRefresh(
            tx, userId: user.id, familyId: family ?? ID.make(), hash: SecretToken.hash(refresh), tenantId: workspace?.id,
            ttlSeconds: settings.refreshTTL)
        return TokenReply(user: user, workspace: workspace, accessToken: access, refreshToken: refresh, expiresIn: settings.accessTTL)
    }

    /// Creates a single-use user token (verify/reset) and queues its email.
    func sendUserToken(tx: Transaction, user: UserView, kind: String, ttl: Int) async throws {
        let prefix = kind == "verify" ? TokenKind.verify : TokenKind.reset
        let token = SecretToken.generate(prefix: prefix)
        try await TokenStore.insertUserToken(tx, userId: user.id, kind: kind, hash: SecretToken.hash(token), ttlSeconds: ttl)
        let (subject, path) = kind == "verify" ? ("Verify your email address", "verify-email") : ("Reset your Vigil password", "reset-password")
        let link = "\(settings.publicURL)/\(path)?token=\(token)"
        let text =
            kind == "verify"
            ? "Hello \(user.fullName),\n\nConfirm your email address for Vigil: \(link)\n\nThe link expires in 24 hours."
            : "Hello \(user.fullName),\n\nReset your Vigil password: \(link)\n\n"
                + "The link expires in 1 hour. If you did not ask for this, ignore this email."
        try await tx.emit(
            Jobs.emailSend, type: "email.requested", tenantId: nil,
            data: EmailRequest(
                to: user.email, template: kind == "verify" ? "verify_email" : "reset_password",
                subject: subject, text: text, values: ["token": token, "link": link, "full_name": user.fullName]))
    }

    /// Consumes a single-use user token; nil when unknown, used or expired.
    func consumeUserToken(tx: Transaction, token: String, kind: String) async throws -> String? {
        try await TokenStore.consumeUserToken(tx, hash: SecretToken.hash(token), kind: kind)
    }

    // MARK: auth

    @Sendable func signup(_ req: SignupRequest, _ ctx: CallContext) async throws -> TokenReply {
        var issues: [ValidationIssue] = []
        func check<T>(_ f: () throws -> T) -> T? {
            do { return try f() } catch let e as ServiceError {
                issues += e.issues ?? []
                return nil
            } catch { return nil }
        }
        let email = check { try Validate.email(req.email) }
        let password = check { try Validate.password(req.password) }
        let fullName = check { try Validate.text(req.fullName, path: "body.full_name") }
        let wsName = check { try Validate.text(req.workspaceName, path: "body.workspace_name", max: 100) }
        guard issues.isEmpty, let email, let password, let fullName, let wsName else { throw ServiceError.validation(issues) }
        let hash = try await hashPassword(password, settings.passwordStrength)
        do {
            return try await store.transaction(.crossTenant, eventHeaders: ctx.eventHeaders) { tx in
                let userId = ID.make()
                try await UserStore.insert(tx, id: userId, email: email, passwordHash: hash, fullName: fullName, verified: false)
                let ws = try await createWorkspace(tx: tx, name: wsName, parentId: nil)
                try await WorkspaceStore.addMember(tx, id: ID.make(), tenantId: ws.id, userId: userId, role: .owner)
                let user = UserView(id: userId, email: email, fullName: fullName, emailVerified: false, createdAt: Date())
                try await sendUserToken(tx: tx, user: user, kind: "verify", ttl: 24 * 3600)
                try await tx.emit(
                    Events.userSignedUp, tenantId: ws.id,
                    data: ["user_id": userId, "workspace_id": ws.id])
                return try await issueTokens(tx: tx, user: user, workspace: ws)
            }
        } catch let e as StoreError where e.isUniqueViolation {
            throw ServiceError.conflict("an account with this email already exists", code: "email_taken")
        }
    }

    /// Creates a workspace with a unique slug derived from its name.
    func createWorkspace(tx: Transaction, name: String, parentId: String?) async throws -> WorkspaceView {
        var base = String(name.lowercased().map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "-" })
        while base.contains("--") { base = base.replacingOccurrences(of: "--", with: "-") }
        base = base.trimmingCharacters(in: CharacterSet(charactersIn: "-"))
        if base.isEmpty { base = "workspace" }
        base = String(base.prefix(40))
        var slug = base
        for _ in 0..<8 {
            if try await !WorkspaceStore.slugTaken(tx, slug) { break }
            slug = "\(base)-\(Sodium.hex(Sodium.randomBytes(3)))"
        }
        let id = ID.make()
        let ws = try await WorkspaceStore.insert(tx, id: id, slug: slug, name: name, parentId: parentId)
        try await tx.emit(
            Events.workspaceCreated, tenantId: id,
            data: ["workspace_id": id, "slug": slug, "parent_id": parentId ?? ""])
        return ws
    }

    @Sendable func login(_ req: LoginRequest, _ ctx: CallContext) async throws -> TokenReply {
        let email = req.email.trimmingCharacters(in: .whitespaces).lowercased()
        let address = ctx.clientAddress ?? "unknown"
        let failures = try await users.failures(email: email, address: address, window: settings.loginWindow)
        if failures.byEmail >= settings.maxFailuresPerAccount || failures.byAddress >= settings.maxFailuresPerAddress {
            throw ServiceError.tooManyRequests("too many failed sign-in attempts; try again later")
        }
        let account = try await users.withPasswordHash(email: email)
        let ok = await verifyPassword(req.password, account?.hash ?? timingHash)
        guard ok, let user = account?.user else {
            try await users.recordFailure(email: email, address: address)
            throw ServiceError(status: 401, error: "invalid_credentials", message: "email or password is incorrect")
        }

        return try await store.transaction(.crossTenant, eventHeaders: ctx.eventHeaders) { tx in
            try await UserStore.clearFailures(tx, email: email)
            let ws = try await WorkspaceStore.firstWorkspace(tx, userId: user.id)
            return try await issueTokens(tx: tx, user: user, workspace: ws)
        }
    }

    @Sendable func refresh(_ req: RefreshRequest, _ ctx: CallContext) async throws -> TokenReply {
        let invalid = ServiceError(status: 401, error: "invalid_refresh_token", message: "refresh token is invalid, expired or already used")
        guard SecretToken.isWellFormed(req.refreshToken, prefix: TokenKind.refresh) else { throw invalid }
        let hash = SecretToken.hash(req.refreshToken)
        enum Outcome: Sendable {
            case issued(TokenReply)
            case reused, unknown
        }
        let outcome: Outcome = try await store.transaction(.crossTenant, eventHeaders: ctx.eventHeaders) { tx in
            if let spent = try await TokenStore.spendRefresh(tx, hash: hash) {
                guard let user = try await UserStore.find(tx, id: spent.userId) else { return .unknown }
                var ws: WorkspaceView? = nil
                if let tid = spent.tenantId {
                    ws = try await WorkspaceStore.workspace(tx, id: tid, ofMember: spent.userId)
                }
                return .issued(try await issueTokens(tx: tx, user: user, workspace: ws, family: spent.familyId))
            }
            // A spent token presented again means it leaked: revoke its whole family.
            let revoked = try await TokenStore.revokeFamily(ofSpent: hash, tx)
            return revoked > 0 ? .reused : .unknown
        }
        switch outcome {
        case .issued(let t): return t
        case .reused:
            logger.warning("refresh token reuse detected; token family revoked", metadata: ["correlation_id": "\(ctx.correlationId)"])
            throw invalid
        case .unknown: throw invalid
        }
    }

    @Sendable func forgotPassword(_ req: ForgotPasswordRequest, _ ctx: CallContext) async throws -> MessageReply {
        let email = try Validate.email(req.email)
        try await store.transaction(.none, eventHeaders: ctx.eventHeaders) { tx in
            if let user = try await UserStore.find(tx, email: email) {
                try await sendUserToken(tx: tx, user: user, kind: "reset", ttl: 3600)
            }
        }
        return MessageReply(message: "if an account exists for this email, a reset link has been sent")
    }

    @Sendable func resetPassword(_ req: ResetPasswordRequest, _ ctx: CallContext) async throws -> MessageReply {
        let password = try Validate.password(req.newPassword, path: "body.new_password")
        let invalid = ServiceError.badRequest("reset token is invalid, expired or already used", code: "invalid_token")
        guard SecretToken.isWellFormed(req.token, prefix: TokenKind.reset) else { throw invalid }
        let hash = try await hashPassword(password, settings.passwordStrength)
        let done: String? = try await store.transaction(.none, eventHeaders: ctx.eventHeaders) { tx in
            guard let userId = try await consumeUserToken(tx: tx, token: req.token, kind: "reset") else { return nil }
            try await UserStore.setPassword(tx, userId: userId, hash: hash)
            try await TokenStore.revokeRefresh(tx, userId: userId)
            try await tx.emit(Events.userPasswordReset, tenantId: nil, data: ["user_id": userId])
            return userId
        }
        guard done != nil, let userId = done else { throw invalid }
        invalidate(PrincipalInvalidation(userId: userId))
        return MessageReply(message: "password has been reset; sign in with the new password")
    }

    @Sendable func changePassword(_ req: ChangePasswordRequest, _ p: Principal, _ ctx: CallContext) async throws -> MessageReply {
        guard p.isUser, let userId = p.userId else { throw ServiceError.forbidden("changing a password requires a user session, not an API key") }
        let password = try Validate.password(req.newPassword, path: "body.new_password")
        guard let current = try await users.passwordHash(userId: userId), await verifyPassword(req.currentPassword, current)
        else {
            throw ServiceError.validation("body.current_password", "is incorrect")
        }
        let hash = try await hashPassword(password, settings.passwordStrength)
        try await store.transaction(.none, eventHeaders: ctx.eventHeaders) { tx in
            try await UserStore.setPassword(tx, userId: userId, hash: hash)
            try await TokenStore.revokeRefresh(tx, userId: userId)
            try await tx.emit(Events.userPasswordChanged, tenantId: p.tenantId, data: ["user_id": userId])
        }
        invalidate(PrincipalInvalidation(userId: userId))
        return MessageReply(message: "password changed; other sessions have been signed out")
    }

    @Sendable func resendVerification(_ req: ResendVerificationRequest, _ ctx: CallContext) async throws -> MessageReply {
        let principal = ctx.optionalPrincipal
        let email: String? = try req.email.map { try Validate.email($0) }
        try await store.transaction(.none, eventHeaders: ctx.eventHeaders) { tx in
            let user: UserView?
            if let userId = principal?.userId {
                user = try await UserStore.find(tx, id: userId)
            } else if let email {
                user = try await UserStore.find(tx, email: email)
            } else {
                throw ServiceError.validation("body.email", "field required when not signed in")
            }
            if let user, !user.emailVerified {
                try await sendUserToken(tx: tx, user: user, kind: "verify", ttl: 24 * 3600)
            }
        }
        return MessageReply(message: "if the address is not yet verified, a new verification email has been sent")
    }

    @Sendable func verifyEmail(_ req: TokenPathRequest, _ ctx: CallContext) async throws -> MessageReply {
        let invalid = ServiceError.badRequest("verification token is invalid, expired or already used", code: "invalid_token")
        guard SecretToken.isWellFormed(req.token, prefix: TokenKind.verify) else { throw invalid }
        let ok: Bool = try await store.transaction(.none, eventHeaders: ctx.eventHeaders) { tx in
            guard let userId = try await consumeUserToken(tx: tx, token: req.token, kind: "verify") else { return false }
            try await UserStore.markVerified(tx, userId: userId)
            return true
        }
        guard ok else { throw invalid }
        return MessageReply(message: "email address verified")
    }

    @Sendable func me(_ req: Empty, _ p: Principal, _ ctx: CallContext) async throws -> MeReply {
        // One round trip for keys; users also get their profile and memberships.
        let workspace: WorkspaceView
        if let hit = workspaceCache.get(p.tenantId) {
            workspace = hit.value
            if hit.refresh {
                Task {
                    if (try? await readWorkspace(p)) == nil { workspaceCache.refreshFailed(p.tenantId) }
                }
            }
        } else {
            workspace = try await readWorkspace(p)
        }
        var reply = MeReply(
            kind: p.kind, user: nil, workspace: workspace, role: p.role, scopes: p.scopes,
            apiKeyId: p.apiKeyId, actingViaParent: p.viaParentTenantId, memberships: nil)
        if let userId = p.userId, p.isUser {
            reply.user = try await users.find(id: userId)
            reply.memberships = try await workspaces.memberships(userId: userId)
        }
        return reply
    }

    /// The principal's workspace row from the database, kept in `workspaceCache`.
    func readWorkspace(_ p: Principal) async throws -> WorkspaceView {
        let asked = workspaceCache.asked
        guard let fresh = try await workspaces.get(p.scope, id: p.tenantId) else { throw ServiceError.notFound("workspace") }
        workspaceCache.put(p.tenantId, fresh, asked: asked)
        return fresh
    }

    // MARK: principal resolution (gateway → identity)

    @Sendable func resolvePrincipal(_ req: ResolvePrincipalRequest, _ ctx: CallContext) async throws -> Principal {
        try await store.transaction(.crossTenant, eventHeaders: ctx.eventHeaders) { tx in
            switch req.kind {
            case "api_key":
                guard let hash = req.apiKeyHash, let key = try await ApiKeyStore.live(tx, hash: hash)
                else { throw ServiceError(status: 401, error: "invalid_api_key", message: "API key is invalid, expired or revoked") }
                if (key.lastUsedAt ?? .distantPast) < Date().addingTimeInterval(-30) {
                    try await ApiKeyStore.touch(tx, id: key.id)
                }
                let base = Principal(
                    kind: "api_key", userId: nil, apiKeyId: key.id, tenantId: key.tenantId, tenantSlug: key.slug, role: key.role,
                    scopes: key.scopes)
                return try await selectWorkspace(tx: tx, base: base, slug: req.tenantSlug)
            case "jwt":
                guard let userId = req.userId, ID.isValid(userId) else { throw ServiceError.unauthorized() }
                let seats = try await WorkspaceStore.seats(tx, userId: userId)
                guard try await UserStore.find(tx, id: userId) != nil else {
                    throw ServiceError.unauthorized("user no longer exists")
                }
                let chosen = seats.first { $0.tenantId == req.sessionTenantId } ?? seats.first
                guard let chosen else {
                    if req.tenantSlug == nil { throw ServiceError.forbidden("you are not a member of any workspace") }
                    throw ServiceError.notFound("workspace")
                }
                func principal(_ s: WorkspaceStore.Seat) -> Principal {
                    Principal(
                        kind: "user", userId: userId, apiKeyId: nil, tenantId: s.tenantId, tenantSlug: s.slug, role: s.role,
                        scopes: ["read", "write", "admin"])
                }
                if let slug = req.tenantSlug, let m = seats.first(where: { $0.slug == slug }) { return principal(m) }
                if let slug = req.tenantSlug {
                    // Not a direct member: an admin of the parent (MSP) workspace may act in a child.
                    for m in seats {
                        if let p = try? await selectWorkspace(tx: tx, base: principal(m), slug: slug) { return p }
                    }
                    throw ServiceError.notFound("workspace")
                }
                return principal(chosen)
            default:
                throw ServiceError.validation("body.kind", "must be jwt or api_key")
            }
        }
    }

    /// Applies `x-tenant-slug`: the principal's own workspace, or a child of it when the principal is
    /// an admin or owner there (MSP). Anything else is 404, so slugs of other tenants do not leak.
    func selectWorkspace(tx: Transaction, base: Principal, slug: String?) async throws -> Principal {
        guard let slug, slug != base.tenantSlug else { return base }
        guard base.role.rank >= Role.admin.rank, let child = try await WorkspaceStore.child(tx, slug: slug, parentId: base.tenantId)
        else { throw ServiceError.notFound("workspace") }
        var p = base
        p.tenantId = child
        p.tenantSlug = slug
        p.role = .admin
        p.viaParentTenantId = base.tenantId
        return p
    }
}
