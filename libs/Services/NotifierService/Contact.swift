import Bus
import Contracts
import Foundation
import Logging
import Net
import ServiceRuntime
import Store
import VigilCore

struct ContactRequest: Codable, Sendable {
    var name: String
    var email: String
    var message: String
    var subject: String?
    var company: String?
    var captchaToken: String?
}
struct ContactReply: Codable, Sendable {
    var id: String
    var status: String
    var message: String
}

/// `POST /contact/`: validated, rate-limited per client address, optionally captcha-checked, and
/// delivered to the configured address through the email queue.
///
/// | key | default | meaning |
/// |---|---|---|
/// | VIGIL_CONTACT_TO | unset (messages stored, not mailed) | where contact messages are sent |
/// | VIGIL_CONTACT_MAX_PER_HOUR | 5 | per client address |
/// | VIGIL_CAPTCHA_VERIFY_URL / VIGIL_CAPTCHA_SECRET | unset (captcha off) | hCaptcha/Turnstile/reCAPTCHA-style siteverify endpoint |
struct ContactHandler: Sendable {
    let store: Store
    let to: String?
    let maxPerHour: Int
    let captchaURL: String?
    let captchaSecret: String?
    /// The captcha verifier is the operator's configuration, reached over pooled connections.
    let http: PooledHTTP

    init(store: Store, reader r: ConfigReader) {
        self.store = store
        to = r.optional("VIGIL_CONTACT_TO")
        maxPerHour = r.int("VIGIL_CONTACT_MAX_PER_HOUR", default: 5)
        captchaURL = r.optional("VIGIL_CAPTCHA_VERIFY_URL")
        captchaSecret = r.optional("VIGIL_CAPTCHA_SECRET")
        // The verifier is operator-configured (not user input), so private/loopback are allowed.
        http = PooledHTTP(timeout: .seconds(5))
    }

    @Sendable func submit(_ req: ContactRequest, _ ctx: CallContext) async throws -> ContactReply {
        var issues: [ValidationIssue] = []
        func check<T>(_ f: () throws -> T) -> T? {
            do { return try f() } catch let e as ServiceError {
                issues += e.issues ?? []
                return nil
            } catch { return nil }
        }
        let name = check { try Validate.text(req.name, path: "body.name", max: 200) }
        let email = check { try Validate.email(req.email) }
        let message = check { try Validate.text(req.message, path: "body.message", min: 10, max: 5000) }
        let subject = req.subject.flatMap { s in check { try Validate.text(s, path: "body.subject", max: 200) } }
        let company = req.company.flatMap { s in check { try Validate.text(s, path: "body.company", max: 200) } }
        guard issues.isEmpty, let name, let email, let message else { throw ServiceError.validation(issues) }
        let address = ctx.clientAddress ?? "unknown"
        if let url = captchaURL {
            guard let token = req.captchaToken, !token.isEmpty, token.count <= 4096 else {
                throw ServiceError.validation("body.captcha_token", "required")
            }
            try await verifyCaptcha(url: url, token: token, address: address)
        }
        let recent = try await MailStore(db: store).recentContacts(address: address)
        guard recent < maxPerHour else { throw ServiceError.tooManyRequests("too many messages from this address; try again later") }
        let id = ID.make()
        let to = self.to
        try await store.transaction(.none, eventHeaders: ctx.eventHeaders) { tx in
            try await MailStore(db: store).insertContact(
                tx, .init(id: id, name: name, email: email, company: company, subject: subject, message: message, address: address))
            if let to {
                let text = "From: \(name) <\(email)>\(company.map { "\nCompany: \($0)" } ?? "")\n\n\(message)"
                try await tx.emit(
                    Jobs.emailSend, type: "email.requested", tenantId: nil,
                    data: EmailRequest(
                        to: to, template: "contact", subject: "Contact: \(subject ?? "message from \(name)")",
                        text: text, values: ["reply_to": email, "contact_id": id]))
            }
        }
        return ContactReply(id: id, status: "received", message: "thank you, we will get back to you")
    }

    func verifyCaptcha(url: String, token: String, address: String) async throws {
        func form(_ s: String) -> String { s.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "" }
        let body = Array("secret=\(form(captchaSecret ?? ""))&response=\(form(token))&remoteip=\(form(address))".utf8)
        let result = await Result(catching: {
            try await http.send(method: "POST", url: url, headers: ["content-type": "application/x-www-form-urlencoded"], body: body, maxBody: 2048)
        })
        guard case .success(let r) = result, (200..<300).contains(r.status) else {
            throw ServiceError.unavailable("captcha verification is unavailable; try again later")
        }
        let ok = (try? JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any])?["success"] as? Bool ?? false
        guard ok else { throw ServiceError.validation("body.captcha_token", "captcha verification failed") }
    }
}
