import Foundation
import Logging
import VigilCore

/// Configuration shared by every service, read once from the environment (and `--flags`).
///
/// | key | default | meaning |
/// |---|---|---|
/// | VIGIL_NATS_URL | nats://127.0.0.1:4222 | NATS server |
/// | VIGIL_DATABASE_URL | postgresql://vigil@127.0.0.1:5432/vigil | PostgreSQL (libpq URL) |
/// | VIGIL_DB_POOL_SIZE | 8 | connections per replica |
/// | VIGIL_LOG_LEVEL | info | trace … critical |
/// | VIGIL_OPS_PORT | 0 (off) | HTTP port for /health and /metrics (non-gateway services) |
public struct ServiceConfig: Sendable {
    public var natsURL: String
    public var databaseURL: String
    public var dbPoolSize: Int
    public var logLevel: Logger.Level
    public var opsPort: Int
    public var opsHost: String
    public var version: String
    /// Every raw setting, for service-specific keys.
    public var reader: ConfigReader

    public init(reader: ConfigReader = ConfigReader()) {
        self.reader = reader
        natsURL = reader.string("VIGIL_NATS_URL", default: "nats://127.0.0.1:4222")
        databaseURL = reader.string("VIGIL_DATABASE_URL", default: "postgresql://vigil@127.0.0.1:5432/vigil")
        dbPoolSize = reader.int("VIGIL_DB_POOL_SIZE", default: 8)
        logLevel = Logger.Level(rawValue: reader.string("VIGIL_LOG_LEVEL", default: "info")) ?? .info
        opsPort = reader.int("VIGIL_OPS_PORT", default: 0)
        opsHost = reader.string("VIGIL_OPS_HOST", default: "127.0.0.1")
        version = reader.string("VIGIL_VERSION", default: VigilVersion.current)
    }
}

/// The product version reported by `/status` and `$SRV.INFO`.
public enum VigilVersion {
    public static let current = "0.1.0"
    public static let api = "v1"
}
