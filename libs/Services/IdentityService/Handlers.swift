import Bus
import Contracts
import Foundation
import Logging
import ServiceRuntime
import Store
import VigilCore
import VigilCrypto

/// Row → view decoders shared by the handlers.
enum Views {
    static func user(_ r: Row, prefix: String = "") throws -> UserView {
        UserView(
            id: try r.string("\(prefix)id"), email: try r.string("\(prefix)email"),
            fullName: try r.string("\(prefix)full_name"), emailVerified: try r.bool("\(prefix)email_verified"),
            createdAt: r.optionalDate("\(prefix)created_at"))
    }

    static func workspace(_ r: Row, prefix: String = "") throws -> WorkspaceView {
        WorkspaceView(
            id: try r.string("\(prefix)id"), slug: try r.string("\(prefix)slug"), name: try r.string("\(prefix)name"),
            parentId: r.optionalString("\(prefix)parent_id"),
            settings: r.isNull("\(prefix)settings")
                ? nil
                : r.raw("\(prefix)settings") == "{}" ? [:] : try r.json("\(prefix)settings"),
            createdAt: r.optionalDate("\(prefix)created_at"))
    }

    static func role(_ r: Row, _ c: String = "role") throws -> Role {
        guard let role = Role(rawValue: try r.string(c)) else { throw StoreError.corrupt("role") }
        return role
    }
}

extension StoreError {
    static func corrupt(_ what: String) -> ServiceError { .internal("stored \(what) is invalid") }
}

/// All identity endpoints. Each handler validates, runs one transaction, and emits events through
/// the outbox in that transaction.
final class IdentityHandlers: Sendable {
    let store: Store
    let bus: BusConnection
    let settings: IdentitySettings
    let logger: Logger
    let timingHash: String

    static let userColumns =
        "u.id AS u_id, u.email AS u_email, u.full_name AS u_full_name, u.email_verified AS u_email_verified, u.created_at AS u_created_at"
    static let workspaceColumns =
        "w.id AS w_id, w.slug AS w_slug, w.name AS w_name, w.parent_id AS w_parent_id, w.settings AS w_settings, w.created_at AS w_created_at"

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
        try await tx.execute(
            """
            INSERT INTO identity.refresh_tokens (id, user_id, family_id, token_hash, tenant_id, expires_at)
            VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
            """, [ID.make(), user.id, family ?? ID.make(), SecretToken.hash(refresh), workspace?.id, settings.refreshTTL])
        return TokenReply(user: user, workspace: workspace, accessToken: access, refreshToken: refresh, expiresIn: settings.accessTTL)
    }

    /// Creates a single-use user token (verify/reset) and queues its email.
    func sendUserToken(tx: Transaction, user: UserView, kind: String, ttl: Int) async throws {
        let prefix = kind == "verify" ? TokenKind.verify : TokenKind.reset
        let token = SecretToken.generate(prefix: prefix)
        if kind == "reset" {
            try await tx.execute(
                "UPDATE identity.user_tokens SET used_at = now() WHERE user_id = $1 AND kind = 'reset' AND used_at IS NULL", [user.id])
        }
        try await tx.execute(
            """
            INSERT INTO identity.user_tokens (id, user_id, kind, token_hash, expires_at)
            VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
            """, [ID.make(), user.id, kind, SecretToken.hash(token), ttl])
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
        try await tx.one(
            """
            UPDATE identity.user_tokens SET used_at = now()
            WHERE token_hash = $1 AND kind = $2 AND used_at IS NULL AND expires_at > now() RETURNING user_id
            """, [SecretToken.hash(token), kind])?.string("user_id")
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
                try await tx.execute(
                    "INSERT INTO identity.users (id, email, password_hash, full_name) VALUES ($1, $2, $3, $4)",
                    [userId, email, hash, fullName])
                let ws = try await createWorkspace(tx: tx, name: wsName, parentId: nil)
                try await tx.execute(
                    "INSERT INTO identity.memberships (id, tenant_id, user_id, role) VALUES ($1, $2, $3, 'owner')",
                    [ID.make(), ws.id, userId])
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
            if try await tx.one("SELECT 1 FROM identity.workspaces WHERE slug = $1", [slug]) == nil { break }
            slug = "\(base)-\(Sodium.hex(Sodium.randomBytes(3)))"
        }
        let id = ID.make()
        let row = try await tx.one(
            """
            INSERT INTO identity.workspaces (id, slug, name, parent_id) VALUES ($1, $2, $3, $4)
            RETURNING id, slug, name, parent_id, settings, created_at
            """, [id, slug, name, parentId])!
        try await tx.emit(
            Events.workspaceCreated, tenantId: id,
            data: ["workspace_id": id, "slug": slug, "parent_id": parentId ?? ""])
        return try Views.workspace(row)
    }

    @Sendable func login(_ req: LoginRequest, _ ctx: CallContext) async throws -> TokenReply {
        let email = req.email.trimmingCharacters(in: .whitespaces).lowercased()
        let address = ctx.clientAddress ?? "unknown"
        let counts = try await store.query(
            .none,
            """
            SELECT (SELECT count(*) FROM identity.login_failures WHERE email = $1 AND at > now() - make_interval(secs => $3)) AS by_email,
                   (SELECT count(*) FROM identity.login_failures WHERE address = $2 AND at > now() - make_interval(secs => $3)) AS by_address
            """, [email, address, settings.loginWindow]
        ).first!
        if try counts.int("by_email") >= settings.maxFailuresPerAccount || counts.int("by_address") >= settings.maxFailuresPerAddress {
            throw ServiceError.tooManyRequests("too many failed sign-in attempts; try again later")
        }
        let row = try await store.query(
            .none, "SELECT id, email, full_name, email_verified, created_at, password_hash FROM identity.users WHERE email = $1", [email]
        ).first
        let ok = await verifyPassword(req.password, row.flatMap { $0.optionalString("password_hash") } ?? timingHash)
        guard ok, let row else {
            try await store.query(.none, "INSERT INTO identity.login_failures (email, address) VALUES ($1, $2)", [email, address])
            throw ServiceError(status: 401, error: "invalid_credentials", message: "email or password is incorrect")
        }
        let user = try Views.user(row)
        return try await store.transaction(.crossTenant, eventHeaders: ctx.eventHeaders) { tx in
            try await tx.execute("DELETE FROM identity.login_failures WHERE email = $1", [email])
            let ws = try await tx.one(
                """
                SELECT w.* FROM identity.memberships m JOIN identity.workspaces w ON w.id = m.tenant_id
                WHERE m.user_id = $1 ORDER BY m.created_at LIMIT 1
                """, [user.id]
            ).map { try Views.workspace($0) }
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
            if let row = try await tx.one(
                """
                UPDATE identity.refresh_tokens SET used_at = now()
                WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()
                RETURNING user_id, family_id, tenant_id
                """, [hash])
            {
                let userId = try row.string("user_id")
                guard let u = try await tx.one("SELECT * FROM identity.users WHERE id = $1", [userId]) else { return .unknown }
                var ws: WorkspaceView? = nil
                if let tid = row.optionalString("tenant_id") {
                    ws = try await tx.one(
                        """
                        SELECT w.* FROM identity.workspaces w JOIN identity.memberships m ON m.tenant_id = w.id
                        WHERE w.id = $1 AND m.user_id = $2
                        """, [tid, userId]
                    ).map { try Views.workspace($0) }
                }
                return .issued(try await issueTokens(tx: tx, user: try Views.user(u), workspace: ws, family: try row.string("family_id")))
            }
            // A spent token presented again means it leaked: revoke its whole family.
            let revoked = try await tx.execute(
                """
                UPDATE identity.refresh_tokens SET revoked_at = coalesce(revoked_at, now())
                WHERE family_id = (SELECT family_id FROM identity.refresh_tokens WHERE token_hash = $1 AND used_at IS NOT NULL)
                """, [hash])
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
            if let row = try await tx.one("SELECT * FROM identity.users WHERE email = $1", [email]) {
                try await sendUserToken(tx: tx, user: try Views.user(row), kind: "reset", ttl: 3600)
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
            try await tx.execute("UPDATE identity.users SET password_hash = $2, updated_at = now() WHERE id = $1", [userId, hash])
            try await tx.execute("UPDATE identity.refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL", [userId])
            try await tx.emit(Events.userPasswordReset, tenantId: nil, data: ["user_id": userId])
            return userId
        }
        guard done != nil, let userId = done else { throw invalid }
        invalidate(PrincipalInvalidation(userId: userId))
        return MessageReply(message: "password has been reset; sign in with the new password")
    }

    @Sendable func changePassword(_ req: ChangePasswordRequest, _ ctx: CallContext) async throws -> MessageReply {
        let p = try ctx.requirePrincipal()
        guard p.isUser, let userId = p.userId else { throw ServiceError.forbidden("changing a password requires a user session, not an API key") }
        let password = try Validate.password(req.newPassword, path: "body.new_password")
        guard let row = try await store.query(.none, "SELECT password_hash FROM identity.users WHERE id = $1", [userId]).first,
            await verifyPassword(req.currentPassword, try row.string("password_hash"))
        else {
            throw ServiceError.validation("body.current_password", "is incorrect")
        }
        let hash = try await hashPassword(password, settings.passwordStrength)
        try await store.transaction(.none, eventHeaders: ctx.eventHeaders) { tx in
            try await tx.execute("UPDATE identity.users SET password_hash = $2, updated_at = now() WHERE id = $1", [userId, hash])
            try await tx.execute("UPDATE identity.refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL", [userId])
            try await tx.emit(Events.userPasswordChanged, tenantId: p.tenantId, data: ["user_id": userId])
        }
        invalidate(PrincipalInvalidation(userId: userId))
        return MessageReply(message: "password changed; other sessions have been signed out")
    }

    @Sendable func resendVerification(_ req: ResendVerificationRequest, _ ctx: CallContext) async throws -> MessageReply {
        let principal = ctx.optionalPrincipal
        let email: String? = try req.email.map { try Validate.email($0) }
        try await store.transaction(.none, eventHeaders: ctx.eventHeaders) { tx in
            let row: Row?
            if let userId = principal?.userId {
                row = try await tx.one("SELECT * FROM identity.users WHERE id = $1", [userId])
            } else if let email {
                row = try await tx.one("SELECT * FROM identity.users WHERE email = $1", [email])
            } else {
                throw ServiceError.validation("body.email", "field required when not signed in")
            }
            if let row, try !row.bool("email_verified") {
                try await sendUserToken(tx: tx, user: try Views.user(row), kind: "verify", ttl: 24 * 3600)
            }
        }
        return MessageReply(message: "if the address is not yet verified, a new verification email has been sent")
    }

    @Sendable func verifyEmail(_ req: TokenPathRequest, _ ctx: CallContext) async throws -> MessageReply {
        let invalid = ServiceError.badRequest("verification token is invalid, expired or already used", code: "invalid_token")
        guard SecretToken.isWellFormed(req.token, prefix: TokenKind.verify) else { throw invalid }
        let ok: Bool = try await store.transaction(.none, eventHeaders: ctx.eventHeaders) { tx in
            guard let userId = try await consumeUserToken(tx: tx, token: req.token, kind: "verify") else { return false }
            try await tx.execute("UPDATE identity.users SET email_verified = true, updated_at = now() WHERE id = $1", [userId])
            return true
        }
        guard ok else { throw invalid }
        return MessageReply(message: "email address verified")
    }

    @Sendable func me(_ req: Empty, _ ctx: CallContext) async throws -> MeReply {
        let p = try ctx.requirePrincipal()
        // One round trip for keys; users also get their profile and memberships.
        guard let wsRow = try await store.query(p.scope, "SELECT * FROM identity.workspaces WHERE id = $1", [p.tenantId]).first else {
            throw ServiceError.notFound("workspace")
        }
        var reply = MeReply(
            kind: p.kind, user: nil, workspace: try Views.workspace(wsRow), role: p.role, scopes: p.scopes,
            apiKeyId: p.apiKeyId, actingViaParent: p.viaParentTenantId, memberships: nil)
        if let userId = p.userId, p.isUser {
            reply.user = try await store.query(.none, "SELECT * FROM identity.users WHERE id = $1", [userId]).first.map { try Views.user($0) }
            reply.memberships = try await store.query(
                .crossTenant,
                """
                SELECT m.role, \(Self.workspaceColumns) FROM identity.memberships m JOIN identity.workspaces w ON w.id = m.tenant_id
                WHERE m.user_id = $1 ORDER BY m.created_at
                """, [userId]
            ).map { MembershipView(workspace: try Views.workspace($0, prefix: "w_"), role: try Views.role($0)) }
        }
        return reply
    }

    // MARK: principal resolution (gateway → identity)

    @Sendable func resolvePrincipal(_ req: ResolvePrincipalRequest, _ ctx: CallContext) async throws -> Principal {
        try await store.transaction(.crossTenant, eventHeaders: ctx.eventHeaders) { tx in
            switch req.kind {
            case "api_key":
                guard let hash = req.apiKeyHash,
                    let key = try await tx.one(
                        """
                        SELECT k.id, k.tenant_id, k.role, k.scopes, k.last_used_at, w.slug FROM identity.api_keys k
                        JOIN identity.workspaces w ON w.id = k.tenant_id
                        WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())
                        """, [hash])
                else { throw ServiceError(status: 401, error: "invalid_api_key", message: "API key is invalid, expired or revoked") }
                let keyId = try key.string("id")
                if (key.optionalDate("last_used_at") ?? .distantPast) < Date().addingTimeInterval(-30) {
                    try await tx.execute("UPDATE identity.api_keys SET last_used_at = now() WHERE id = $1", [keyId])
                }
                let base = Principal(
                    kind: "api_key", userId: nil, apiKeyId: keyId, tenantId: try key.string("tenant_id"),
                    tenantSlug: try key.string("slug"), role: try Views.role(key), scopes: try key.stringArray("scopes"))
                return try await selectWorkspace(tx: tx, base: base, slug: req.tenantSlug)
            case "jwt":
                guard let userId = req.userId, ID.isValid(userId) else { throw ServiceError.unauthorized() }
                let rows = try await tx.query(
                    """
                    SELECT m.tenant_id, m.role, w.slug FROM identity.memberships m JOIN identity.workspaces w ON w.id = m.tenant_id
                    WHERE m.user_id = $1 ORDER BY m.created_at
                    """, [userId])
                guard try await tx.one("SELECT 1 FROM identity.users WHERE id = $1", [userId]) != nil else {
                    throw ServiceError.unauthorized("user no longer exists")
                }
                let chosen = rows.first { $0.optionalString("tenant_id") == req.sessionTenantId } ?? rows.first
                guard let chosen else {
                    if req.tenantSlug == nil { throw ServiceError.forbidden("you are not a member of any workspace") }
                    throw ServiceError.notFound("workspace")
                }
                if let slug = req.tenantSlug, let m = rows.first(where: { $0.optionalString("slug") == slug }) {
                    return Principal(
                        kind: "user", userId: userId, apiKeyId: nil, tenantId: try m.string("tenant_id"),
                        tenantSlug: slug, role: try Views.role(m), scopes: ["read", "write", "admin"])
                }
                let base = Principal(
                    kind: "user", userId: userId, apiKeyId: nil, tenantId: try chosen.string("tenant_id"),
                    tenantSlug: try chosen.string("slug"), role: try Views.role(chosen), scopes: ["read", "write", "admin"])
                if let slug = req.tenantSlug {
                    // Not a direct member: an admin of the parent (MSP) workspace may act in a child.
                    for m in rows {
                        let parent = Principal(
                            kind: "user", userId: userId, apiKeyId: nil, tenantId: try m.string("tenant_id"),
                            tenantSlug: try m.string("slug"), role: try Views.role(m), scopes: base.scopes)
                        if let p = try? await selectWorkspace(tx: tx, base: parent, slug: slug) { return p }
                    }
                    throw ServiceError.notFound("workspace")
                }
                return base
            default:
                throw ServiceError.validation("body.kind", "must be jwt or api_key")
            }
        }
    }

    /// Applies `x-tenant-slug`: the principal's own workspace, or a child of it when the principal is
    /// an admin or owner there (MSP). Anything else is 404, so slugs of other tenants do not leak.
    func selectWorkspace(tx: Transaction, base: Principal, slug: String?) async throws -> Principal {
        guard let slug, slug != base.tenantSlug else { return base }
        guard base.role.rank >= Role.admin.rank,
            let child = try await tx.one("SELECT id FROM identity.workspaces WHERE slug = $1 AND parent_id = $2", [slug, base.tenantId])
        else { throw ServiceError.notFound("workspace") }
        var p = base
        p.tenantId = try child.string("id")
        p.tenantSlug = slug
        p.role = .admin
        p.viaParentTenantId = base.tenantId
        return p
    }
}
