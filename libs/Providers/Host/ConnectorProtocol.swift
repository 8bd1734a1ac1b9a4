import Foundation
import ScanEngine

/// The contract between the `vigil-connector` agent and the connector API (`/api/v1/connector-api/…`),
/// shared by both ends so they cannot drift.
///
/// After registering with an enrollment token, every call is signed with the connector's secret:
///
///     X-Vigil-Connector: <connector id>
///     X-Vigil-Timestamp: <unix seconds>
///     X-Vigil-Nonce:     <16–64 characters of [A-Za-z0-9_-], never reused>
///     X-Vigil-Signature: v1=<hex HMAC-SHA256(secret, METHOD \n PATH \n TIMESTAMP \n NONCE \n hex SHA-256(body))>
///
/// The server refuses timestamps more than `maxSkew` seconds away from its clock and any nonce it has
/// seen for the connector; every refusal is the same 401.
public enum ConnectorProtocol {
    public static let connectorHeader = "x-vigil-connector"
    public static let timestampHeader = "x-vigil-timestamp"
    public static let nonceHeader = "x-vigil-nonce"
    public static let signatureHeader = "x-vigil-signature"
    public static let signedHeaders = [connectorHeader, timestampHeader, nonceHeader, signatureHeader]
    public static let maxSkew = 300
    /// Results larger than this are sent in chunks.
    public static let chunkBytes = 256 * 1024
    /// The jobs an agent runs; it refuses any other kind.
    public static let jobKinds: Set<String> = ["host_audit"]

    /// The text that is signed.
    public static func canonical(method: String, path: String, timestamp: String, nonce: String, bodySHA256Hex: String) -> String {
        [method.uppercased(), path, timestamp, nonce, bodySHA256Hex].joined(separator: "\n")
    }

    public static func isValidNonce(_ n: String) -> Bool {
        (16...64).contains(n.count)
            && n.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x5F
            }
    }

    public struct RegisterRequest: Codable, Sendable {
        public var enrollmentToken: String
        public var name: String
        public var hostname: String
        public var version: String
        public init(enrollmentToken: String, name: String, hostname: String, version: String) {
            self.enrollmentToken = enrollmentToken
            self.name = name
            self.hostname = hostname
            self.version = version
        }
    }

    public struct RegisterReply: Codable, Sendable {
        public var connectorId: String
        public var connectorSecret: String
        public var heartbeatIntervalSeconds: Int
        public var pollIntervalSeconds: Int
        public init(connectorId: String, connectorSecret: String, heartbeatIntervalSeconds: Int, pollIntervalSeconds: Int) {
            self.connectorId = connectorId
            self.connectorSecret = connectorSecret
            self.heartbeatIntervalSeconds = heartbeatIntervalSeconds
            self.pollIntervalSeconds = pollIntervalSeconds
        }
    }

    public struct Heartbeat: Codable, Sendable {
        public var version: String
        public var hostname: String?
        public var facts: [String: String]?
        /// 1, 5 and 15 minute load averages.
        public var load: [Double]?
        public init(version: String, hostname: String?, facts: [String: String]?, load: [Double]?) {
            self.version = version
            self.hostname = hostname
            self.facts = facts
            self.load = load
        }
    }

    public struct HeartbeatReply: Codable, Sendable {
        public var status: String
        public var serverTime: Date
        public var heartbeatIntervalSeconds: Int
        public init(status: String, serverTime: Date, heartbeatIntervalSeconds: Int) {
            self.status = status
            self.serverTime = serverTime
            self.heartbeatIntervalSeconds = heartbeatIntervalSeconds
        }
    }

    public struct PollRequest: Codable, Sendable {
        /// How long the server may hold the request when nothing is queued (bounded by the server).
        public var waitSeconds: Int?
        public init(waitSeconds: Int?) { self.waitSeconds = waitSeconds }
    }

    public struct Job: Codable, Sendable {
        public var id: String
        public var kind: String
        public var parameters: [String: String]
        public var issuedAt: Date
        public init(id: String, kind: String, parameters: [String: String], issuedAt: Date) {
            self.id = id
            self.kind = kind
            self.parameters = parameters
            self.issuedAt = issuedAt
        }
    }

    public struct PollReply: Codable, Sendable {
        public var job: Job?
        public var pollIntervalSeconds: Int
        public init(job: Job?, pollIntervalSeconds: Int) {
            self.job = job
            self.pollIntervalSeconds = pollIntervalSeconds
        }
    }

    /// One result post: the whole result, or chunk `chunkIndex` of `chunkCount` (all with the same
    /// `sha256` of the whole). Posting a chunk or a result again changes nothing.
    public struct JobResult: Codable, Sendable {
        public var jobId: String?
        /// `completed` or `failed`.
        public var status: String
        public var error: String?
        public var chunkIndex: Int?
        public var chunkCount: Int?
        /// The result's JSON text, or this chunk of it.
        public var data: String?
        public var sha256: String?
        public init(status: String, error: String?, chunkIndex: Int?, chunkCount: Int?, data: String?, sha256: String?) {
            self.status = status
            self.error = error
            self.chunkIndex = chunkIndex
            self.chunkCount = chunkCount
            self.data = data
            self.sha256 = sha256
        }
    }

    public struct JobResultReply: Codable, Sendable {
        public var jobId: String
        public var status: String
        public var chunksReceived: Int
        public var chunkCount: Int
        public init(jobId: String, status: String, chunksReceived: Int, chunkCount: Int) {
            self.jobId = jobId
            self.status = status
            self.chunksReceived = chunksReceived
            self.chunkCount = chunkCount
        }
    }

    /// What a `host_audit` job returns: the resources of `HostCollectors` and the snapshot's report.
    public struct AuditResult: Codable, Sendable {
        public var host: String
        public var resources: [Resource]
        public var unreadable: [String]
        public var live: Bool
        public var seconds: Double
        public init(host: String, resources: [Resource], unreadable: [String], live: Bool, seconds: Double) {
            self.host = host
            self.resources = resources
            self.unreadable = unreadable
            self.live = live
            self.seconds = seconds
        }
    }
}
