import Foundation

/// A typed request/reply subject: the contract between a client and a service.
public struct Endpoint<Request: Codable & Sendable, Reply: Codable & Sendable>: Sendable {
    public let subject: String
    public init(_ subject: String) { self.subject = subject }
}

/// A kind of domain event: its type (`finding.opened`), which its envelope carries, and its subject on
/// the events stream (`vigil.events.finding.opened`). The constants are generated in Contracts (`Events`).
public struct EventKind: Sendable, Hashable, CustomStringConvertible {
    public let type: String
    public init(_ type: String) { self.type = type }
    public var subject: String { "vigil.events." + type }
    public var description: String { type }
}
