import Foundation
import Net
import ScanEngine
import VigilCore
import VigilCrypto

/// AWS credentials a user gives for a connection: access keys, a role to assume, or both.
/// Shared by the scan credentials (read) and the remediation credentials (write).
public struct ConnectionCredentials: Codable, Sendable {
    public var accessKeyId: String?
    public var secretAccessKey: String?
    public var sessionToken: String?
    public var roleArn: String?
    public var externalId: String?
    /// A Linux connection's SSH private key (PEM or OpenSSH format), sealed like the AWS secrets.
    public var privateKey: String?
    /// A proxy profile's password (the profile is sealed under its own id).
    public var password: String?
    /// A repository's HTTPS access token (a repository's SSH key goes in `privateKey`).
    public var token: String?

    public init(
        accessKeyId: String? = nil, secretAccessKey: String? = nil, sessionToken: String? = nil, roleArn: String? = nil,
        externalId: String? = nil, privateKey: String? = nil, password: String? = nil
    ) {
        self.privateKey = privateKey
        self.password = password
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.roleArn = roleArn
        self.externalId = externalId
    }

    static let accessKeyPattern = "^(AKIA|ASIA)[A-Z0-9]{16}$"
    static let secretPattern = "^[A-Za-z0-9/+=]{40}$"
    static let rolePattern = "^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$"

    static func matches(_ s: String, _ pattern: String) -> Bool { (try? Regex(pattern).wholeMatch(in: s)) != nil }

    /// Validates the credentials (paths under `path`); returns the masked form shown to users.
    public func validated(path: String = "body.credentials") throws -> [String: String] {
        var issues: [ValidationIssue] = []
        var masked: [String: String] = [:]
        if let role = roleArn {
            if !Self.matches(role, Self.rolePattern) { issues.append(.init(path: "\(path).role_arn", message: "must be an IAM role ARN")) }
            if let e = externalId, !(2...1224).contains(e.count) {
                issues.append(.init(path: "\(path).external_id", message: "must be 2 to 1224 characters"))
            }
            masked["role_arn"] = role
            if externalId != nil { masked["external_id"] = "****" }
        }
        // Access keys: the identity itself, or (with role_arn) the identity that assumes the role.
        if roleArn == nil || accessKeyId != nil || secretAccessKey != nil {
            let id = accessKeyId ?? ""
            if !Self.matches(id, Self.accessKeyPattern) {
                issues.append(.init(path: "\(path).access_key_id", message: "must be an AWS access key id (AKIA… or ASIA…, 20 characters)"))
            }
            if !Self.matches(secretAccessKey ?? "", Self.secretPattern) {
                issues.append(.init(path: "\(path).secret_access_key", message: "must be a 40-character AWS secret access key"))
            }
            if let t = sessionToken, t.isEmpty || t.count > 4096 {
                issues.append(.init(path: "\(path).session_token", message: "must be 1 to 4096 characters"))
            }
            masked["access_key_id"] = id.count >= 8 ? String(id.prefix(4)) + "…" + String(id.suffix(4)) : "****"
            masked["secret_access_key"] = "****"
            if sessionToken != nil { masked["session_token"] = "****" }
        }
        guard issues.isEmpty else { throw ServiceError.validation(issues) }
        return masked
    }
}

/// Seals credentials to one component's key (DESIGN.md §5): anyone with the public key can seal, only
/// the holder of the seed can open, and what is opened must name the tenant and connection it is read for.
public struct CredentialVault: Sendable {
    public let keys: Sodium.BoxKeyPair
    /// Identifies the key a blob was sealed to, for rotation.
    public let keyId: String

    public init(seed: [UInt8]) {
        keys = Sodium.BoxKeyPair(seed: seed)
        keyId = String(Sodium.hex(Sodium.sha256(keys.publicKey)).prefix(16))
    }

    struct Sealed: Codable, Sendable {
        var tenantId: String
        var connectionId: String
        var credentials: ConnectionCredentials
    }

    public func seal(_ c: ConnectionCredentials, tenantId: String, connectionId: String) throws -> Data {
        let plain = try JSON.encode(Sealed(tenantId: tenantId, connectionId: connectionId, credentials: c))
        return Data(Sodium.seal(Array(plain), to: keys.publicKey))
    }

    public func open(_ sealed: Data, tenantId: String, connectionId: String) throws -> ConnectionCredentials {
        guard let plain = keys.open(Array(sealed)),
            let s = try? JSON.decode(Sealed.self, from: Data(plain)),
            s.tenantId == tenantId, s.connectionId == connectionId
        else {
            throw ServiceError(status: 409, error: "credentials_unreadable", message: "stored credentials cannot be opened; enter them again")
        }
        return s.credentials
    }

    struct SealedBlob: Codable, Sendable {
        var tenantId: String
        var scope: String
        var data: Data
    }

    /// Any other secret-bearing bytes (a fix's patch, which removes secrets), bound to a tenant and a scope.
    public func seal(blob: Data, tenantId: String, scope: String) throws -> Data {
        Data(Sodium.seal(Array(try JSON.encode(SealedBlob(tenantId: tenantId, scope: scope, data: blob))), to: keys.publicKey))
    }

    public func open(blob sealed: Data, tenantId: String, scope: String) throws -> Data {
        guard let plain = keys.open(Array(sealed)), let s = try? JSON.decode(SealedBlob.self, from: Data(plain)), s.tenantId == tenantId,
            s.scope == scope
        else { throw ServiceError(status: 409, error: "sealed_data_unreadable", message: "stored data cannot be opened") }
        return s.data
    }
}

/// A failure of AWS work (a scan, a fix) as users read it: AWS's code and message, else the error's own message.
public enum AWSFailure {
    public static func describe(_ e: any Error) -> String {
        switch e {
        case let e as AWSError: return "\(e.code): \(e.message)"
        case let e as SessionError: return e.message
        case let e as ServiceError: return e.message
        default: return "\(e)"
        }
    }
}

/// A signed client for a connection's account, with who it is.
public struct AWSSession: Sendable {
    public let client: AWSClient
    public let account: String
    public let arn: String

    static let authErrors: Set<String> = [
        "InvalidClientTokenId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken",
        "UnrecognizedClientException", "InvalidAccessKeyId", "AuthFailure", "AccessDeniedException",
    ]

    public static func isAuthError(_ e: AWSError) -> Bool { authErrors.contains(e.code) || e.status == 401 || e.status == 403 }

    /// Assumes the role if one is given (with the credentials' keys or the platform's own identity) and
    /// asks STS who it is.
    public static func open(
        _ creds: ConnectionCredentials, endpointURL: String?, region: String, guardrail: SSRFGuard,
        platform: AWSCredentials?, proxy: ProxyConfig? = nil
    ) async throws -> AWSSession {
        let base: AWSCredentials
        if let k = creds.accessKeyId, let sk = creds.secretAccessKey {
            base = AWSCredentials(accessKeyId: k, secretAccessKey: sk, sessionToken: creds.sessionToken)
        } else if let platform {
            base = platform
        } else {
            throw SessionError(message: "the connection gives only a role, and the platform's own AWS identity is not configured", permanent: true)
        }
        var client = AWSClient(credentials: base, endpointURL: endpointURL, guardrail: guardrail, proxy: proxy)
        do {
            if let role = creds.roleArn {
                client = client.with(credentials: try await client.assumeRole(roleArn: role, externalId: creds.externalId, region: region))
            }
            let who = try await client.query(service: "sts", region: region, action: "GetCallerIdentity", version: "2011-06-15")
            return AWSSession(client: client, account: who.first("Account")?.text ?? "unknown", arn: who.first("Arn")?.text ?? "")
        } catch let e as AWSError where isAuthError(e) {
            throw SessionError(message: "AWS refused the credentials (\(e.code))" + (e.message.isEmpty ? "" : ": \(e.message)"), permanent: true)
        } catch let e as AWSError {
            throw SessionError(message: "AWS answered \(e.code) (\(e.status))" + (e.message.isEmpty ? "" : ": \(e.message)"), permanent: false)
        } catch let e as SessionError {
            throw e
        } catch {
            throw SessionError(message: "could not reach the AWS endpoint\(proxy == nil ? "" : " through the proxy"): \(error)", permanent: false)
        }
    }
}
