import Contracts
import Foundation
import Store

/// Every statement on `notifier.emails` and `notifier.contact_messages`: what was sent to whom (so a
/// redelivered request is not sent twice) and the messages of the public contact form.
struct MailStore: Sendable {
    let db: Store

    enum EmailStatus: String {
        case sent, failed, retrying
    }

    /// Whether the email with this request id was already sent.
    func wasSent(id: String) async throws -> Bool {
        try await db.query(.none, "SELECT status FROM notifier.emails WHERE id = $1", [id]).first?.optionalString("status")
            == EmailStatus.sent.rawValue
    }

    /// Records an attempt to send an email (one row per request id, attempts counted).
    func recordEmail(id: String, tenantId: String?, to: String, template: String, status: EmailStatus, error: String?) async throws {
        try await db.query(
            .none,
            """
            INSERT INTO notifier.emails (id, tenant_id, to_address, template, status, attempts, last_error, sent_at)
            VALUES ($1, $2, $3, $4, $5, 1, $6, CASE WHEN $5 = 'sent' THEN now() END)
            ON CONFLICT (id) DO UPDATE SET status = $5, attempts = notifier.emails.attempts + 1, last_error = $6,
              sent_at = CASE WHEN $5 = 'sent' THEN now() ELSE notifier.emails.sent_at END
            """, [id, tenantId, to, template, status.rawValue, error])
    }

    /// Contact messages from one address in the last hour (the form's rate limit).
    func recentContacts(address: String) async throws -> Int {
        try await db.query(
            .none, "SELECT count(*) AS n FROM notifier.contact_messages WHERE address = $1 AND created_at > now() - interval '1 hour'",
            [address]
        ).first?.int("n") ?? 0
    }

    struct Contact {
        var id: String
        var name: String
        var email: String
        var company: String?
        var subject: String?
        var message: String
        var address: String
    }

    func insertContact(_ tx: Transaction, _ c: Contact) async throws {
        try await tx.execute(
            """
            INSERT INTO notifier.contact_messages (id, name, email, company, subject, message, address)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            """, [c.id, c.name, c.email, c.company, c.subject, c.message, c.address])
    }
}
