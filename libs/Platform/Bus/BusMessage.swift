import Foundation
import VigilCore

/// A message copied out of cnats into owned Swift memory: no C pointer ever leaves the bus library.
public struct BusMessage: Sendable {
    public var subject: String
    public var reply: String?
    /// Header values, first value per key (NATS headers are case-sensitive; we keep the sender's case).
    public var headers: [String: String]
    public var data: Data
    /// True when the server answered a request with "no responders" (status 503).
    public var isNoResponders: Bool = false

    public init(subject: String, reply: String? = nil, headers: [String: String] = [:], data: Data = Data()) {
        self.subject = subject
        self.reply = reply
        self.headers = headers
        self.data = data
    }

    /// Case-insensitive header lookup.
    public func header(_ name: String) -> String? {
        if let v = headers[name] { return v }
        let lower = name.lowercased()
        return headers.first { $0.key.lowercased() == lower }?.value
    }
}

/// Well-known header names on the bus.
public enum BusHeader {
    public static let tenantId = "Vigil-Tenant-Id"
    public static let principal = "Vigil-Principal"
    public static let correlationId = "Vigil-Correlation-Id"
    public static let idempotencyKey = "Idempotency-Key"
    public static let traceparent = "traceparent"
    public static let clientAddress = "Vigil-Client-Address"
    public static let userAgent = "Vigil-User-Agent"
    public static let serviceError = "Nats-Service-Error"
    public static let serviceErrorCode = "Nats-Service-Error-Code"
    public static let msgId = "Nats-Msg-Id"
}

/// Errors of the bus itself (connection, protocol), as opposed to service errors carried over it.
public struct BusError: Error, CustomStringConvertible, Sendable {
    enum Code: Sendable { case connect, publish, subscribe, timeout, noResponders, jetStream, closed }
    let code: Code
    public let message: String

    public var description: String { "bus error: \(message)" }
    public var isTimeout: Bool { code == .timeout }
    public var isNoResponders: Bool { code == .noResponders }

    static func connect(_ m: String) -> BusError { .init(code: .connect, message: m) }
    static func publish(_ m: String) -> BusError { .init(code: .publish, message: m) }
    static func subscribe(_ m: String) -> BusError { .init(code: .subscribe, message: m) }
    static func timeout(_ subject: String) -> BusError { .init(code: .timeout, message: "request to \(subject) timed out") }
    static func noResponders(_ subject: String) -> BusError { .init(code: .noResponders, message: "no responders for \(subject)") }
    static func jetStream(_ m: String) -> BusError { .init(code: .jetStream, message: m) }
    static let closed = BusError(code: .closed, message: "connection closed")
    static let disconnected = BusError(code: .closed, message: "not connected to NATS (reconnecting)")

    /// The edge meaning: timeouts are 504, missing services 503, the rest 502-ish (reported as 503).
    public var serviceError: ServiceError {
        switch code {
        case .timeout: return .timeout("upstream service did not answer in time")
        case .noResponders: return .unavailable("no service is available to handle this request")
        default: return .unavailable("message bus unavailable")
        }
    }
}
