import Foundation
import VigilCore

/// An email handed to the notifier over `vigil.jobs.email.send`.
package struct EmailRequest: Codable, Sendable {
    package var to: String
    package var template: String
    package var subject: String
    package var text: String
    /// Template values (e.g. `token`, `link`, `workspace_name`).
    package var values: [String: String]
    package init(to: String, template: String, subject: String, text: String, values: [String: String]) {
        self.to = to
        self.template = template
        self.subject = subject
        self.text = text
        self.values = values
    }
}

/// A file a service returns over the bus (report downloads); the gateway sends the raw bytes.
package struct FileReply: Codable, Sendable {
    package var contentType: String
    package var filename: String
    package var contentBase64: String
    package init(contentType: String, filename: String, contentBase64: String) {
        self.contentType = contentType
        self.filename = filename
        self.contentBase64 = contentBase64
    }
}

/// The envelope of a domain event on `vigil.events.>` as a consumer decodes it (AsyncAPI: event envelope).
package struct EventEnvelope<T: Decodable & Sendable>: Decodable, Sendable {
    package var id: String
    package var type: String
    package var tenantId: String?
    package var data: T
}
