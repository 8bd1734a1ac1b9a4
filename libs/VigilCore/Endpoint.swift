import Foundation

/// A typed request/reply subject: the contract between a client and a service.
public struct Endpoint<Request: Codable & Sendable, Reply: Codable & Sendable>: Sendable {
    public let subject: String
    public init(_ subject: String) { self.subject = subject }
}

