import Bus
import Contracts
import Foundation
import Logging
import ServiceRuntime
import Store
import VigilCore
import VigilCrypto

/// Identity's settings, read from the environment.
///
/// | key | default | meaning |
/// |---|---|---|
/// | VIGIL_JWT_SEED | random per process (warns) | base64url 32-byte Ed25519 seed for access tokens |
/// | VIGIL_ACCESS_TOKEN_TTL | 900 | access-token lifetime, seconds |
/// | VIGIL_REFRESH_TOKEN_TTL | 2592000 | refresh-token lifetime, seconds |
/// | VIGIL_PASSWORD_HASH | interactive | argon2id limits: interactive, moderate or minimum (tests) |
/// | VIGIL_PUBLIC_URL | http://127.0.0.1:8080 | base of links in emails |
/// | VIGIL_LOGIN_MAX_FAILURES | 10 | failed logins per account per window before 429 |
/// | VIGIL_LOGIN_MAX_FAILURES_PER_ADDRESS | 50 | failed logins per client address per window |
/// | VIGIL_LOGIN_WINDOW | 900 | throttle window, seconds |
struct IdentitySettings: Sendable {
    var signingKey: Sodium.SigningKey
    var keyId: String
    var accessTTL: Int
    var refreshTTL: Int
    var passwordStrength: Sodium.PasswordStrength
    var publicURL: String
    var maxFailuresPerAccount: Int
    var maxFailuresPerAddress: Int
    var loginWindow: Int

    init(_ r: ConfigReader, logger: Logger) throws {
        let seed = try r.seed("VIGIL_JWT_SEED")
        if seed.ephemeral { logger.warning("VIGIL_JWT_SEED is not set: using a random signing key; tokens will not survive a restart") }
        signingKey = try Sodium.SigningKey(seed: seed.bytes)
        keyId = String(Sodium.hex(Sodium.sha256(signingKey.publicKey)).prefix(16))
        accessTTL = r.int("VIGIL_ACCESS_TOKEN_TTL", default: 900)
        refreshTTL = r.int("VIGIL_REFRESH_TOKEN_TTL", default: 30 * 24 * 3600)
        passwordStrength =
            switch r.string("VIGIL_PASSWORD_HASH", default: "interactive") {
            case "minimum": .minimum
            case "moderate": .moderate
            default: .interactive
            }
        publicURL = r.string("VIGIL_PUBLIC_URL", default: "http://127.0.0.1:8080")
        maxFailuresPerAccount = r.int("VIGIL_LOGIN_MAX_FAILURES", default: 10)
        maxFailuresPerAddress = r.int("VIGIL_LOGIN_MAX_FAILURES_PER_ADDRESS", default: 50)
        loginWindow = r.int("VIGIL_LOGIN_WINDOW", default: 900)
    }
}

/// Token prefixes (all `<prefix><43 base64url>`; stored hashed).
enum TokenKind {
    static let refresh = "vrt_"
    static let verify = "vev_"
    static let reset = "vpr_"
    static let invite = "vin_"
}

/// The identity service: users, workspaces, memberships, invitations, API keys and tokens.
public enum IdentityService {
    public static let definition = ServiceDefinition(
        name: "identity", description: "Users, workspaces, roles, invitations, API keys and tokens",
        schema: "identity", migrations: IdentitySchema.migrations
    ) { ctx in
        let settings = try IdentitySettings(ctx.config.reader, logger: ctx.logger)
        let h = IdentityHandlers(store: ctx.store!, bus: ctx.bus, settings: settings, logger: ctx.logger)
        h.register(on: ctx.responder)
        let changes = try ctx.bus.subscribe(IdentityBroadcasts.workspaceChanged) { msg in
            workspaceCache.invalidate(String(decoding: msg.data, as: UTF8.self))
        }
        return [SubscriptionService([changes])]
    }
}

/// Runs password hashing off the cooperative pool.
func hashPassword(_ pw: String, _ strength: Sodium.PasswordStrength) async throws -> String {
    try await Blocking.run { try Sodium.hashPassword(pw, strength: strength) }
}

func verifyPassword(_ pw: String, _ hash: String) async -> Bool {
    await Blocking.run { Sodium.verifyPassword(pw, hash: hash) }
}

/// A hash of a throwaway password, so unknown accounts cost the same time as known ones.
let dummyHash: String = (try? Sodium.hashPassword("vigil-timing-equalizer", strength: .minimum)) ?? ""
