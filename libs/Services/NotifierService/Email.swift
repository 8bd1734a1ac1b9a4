import Bus
import Contracts
import Foundation
import Logging
import Net
import ServiceRuntime
import Store
import VigilCore

/// Sends the emails other services request on `vigil.jobs.email.send` (plain text + HTML).
struct EmailSender: Sendable {
    let store: Store
    let smtp: SMTPClient
    let logger: Logger

    struct Envelope: Decodable, Sendable {
        var id: String
        var tenantId: String?
        var data: EmailRequest
    }

    func handle(_ m: JetStreamMessage) async -> ConsumeOutcome {
        guard let env = try? JSON.decode(Envelope.self, from: m.data) else {
            logger.error("undecodable email request dropped", metadata: ["subject": "\(m.subject)"])
            return .drop
        }
        do {
            // Redelivery after a crash between send and ack must not send twice.
            if try await MailStore(db: store).wasSent(id: env.id) { return .ack }
            let message = EmailMessage(
                to: env.data.to, subject: env.data.subject, text: env.data.text,
                html: Self.html(env.data), messageId: env.id,
                headers: ["X-Vigil-Template": env.data.template])
            let smtp = self.smtp
            try await Blocking.run { try smtp.send(message) }
            try await record(env, status: .sent, error: nil)
            return .ack
        } catch let e as SMTPClient.ReplyError where e.isPermanent {
            try? await record(env, status: .failed, error: e.description)
            logger.warning("email refused by SMTP server", metadata: ["template": "\(env.data.template)", "code": "\(e.code)"])
            return .drop
        } catch {
            try? await record(env, status: .retrying, error: "\(error)")
            logger.warning("email send failed; will retry", metadata: ["template": "\(env.data.template)", "error": "\(error)"])
            return .retry(after: StreamConsumer.backoff(attempt: m.deliveryCount, cap: .seconds(600)))
        }
    }

    func record(_ env: Envelope, status: MailStore.EmailStatus, error: String?) async throws {
        try await MailStore(db: store).recordEmail(
            id: env.id, tenantId: env.tenantId, to: env.data.to, template: env.data.template, status: status, error: error)
    }

    /// The HTML alternative: the text, escaped, with the action link as a button.
    static func html(_ r: EmailRequest) -> String {
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        var body = esc(r.text).replacingOccurrences(of: "\n", with: "<br>\n")
        if let link = r.values["link"] {
            body = body.replacingOccurrences(of: esc(link), with: "<a href=\"\(esc(link))\">\(esc(link))</a>")
            body +=
                "<p><a href=\"\(esc(link))\" style=\"background:#1f6feb;color:#fff;"
                + "padding:10px 16px;border-radius:6px;text-decoration:none\">\(esc(r.subject))</a></p>"
        }
        return "<!doctype html><html><body style=\"font-family:sans-serif\"><h2>\(esc(r.subject))</h2><p>\(body)</p></body></html>"
    }
}
