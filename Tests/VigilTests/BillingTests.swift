import Foundation
import Testing
import VigilCore
import VigilCrypto

@testable import BillingService

@Suite struct BillingTests {
    let secret = "whsec_unit"

    func header(_ payload: String, ts: Int, secret: String? = nil) -> String {
        let sig = Sodium.hex(Sodium.hmacSHA256(key: Array((secret ?? self.secret).utf8), message: Array("\(ts).\(payload)".utf8)))
        return "t=\(ts),v1=\(sig)"
    }

    func code(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch let e as ServiceError { return e.error } catch { return "other" }
    }

    @Test func stripeSignaturesAreCheckedWithTolerance() {
        let payload = #"{"id":"evt_1","type":"invoice.paid"}"#
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let ts = 1_800_000_000
        #expect(
            code {
                try WebhookHandler.verify(payload: Array(payload.utf8), header: header(payload, ts: ts), secret: secret, tolerance: 300, now: now)
            } == nil)
        // Several v1 signatures (secret rotation): one match is enough.
        let two = "t=\(ts),v1=deadbeef," + header(payload, ts: ts).split(separator: ",")[1]
        #expect(code { try WebhookHandler.verify(payload: Array(payload.utf8), header: two, secret: secret, tolerance: 300, now: now) } == nil)
        #expect(
            code {
                try WebhookHandler.verify(
                    payload: Array(payload.utf8), header: header(payload, ts: ts, secret: "whsec_other"), secret: secret, tolerance: 300, now: now)
            } == "invalid_signature")
        #expect(
            code {
                try WebhookHandler.verify(
                    payload: Array((payload + " ").utf8), header: header(payload, ts: ts), secret: secret, tolerance: 300, now: now)
            } == "invalid_signature")
        #expect(
            code {
                try WebhookHandler.verify(
                    payload: Array(payload.utf8), header: header(payload, ts: ts - 301), secret: secret, tolerance: 300, now: now)
            } == "stale_signature")
        #expect(
            code { try WebhookHandler.verify(payload: Array(payload.utf8), header: "v1=abc", secret: secret, tolerance: 300, now: now) }
                == "invalid_signature")
        #expect(
            code { try WebhookHandler.verify(payload: Array(payload.utf8), header: nil, secret: secret, tolerance: 300, now: now) }
                == "invalid_signature")
    }

    @Test func catalogueIsOrderedAndCountersAreKnown() {
        #expect(Plans.all.map(\.rank) == [0, 1, 2, 3])
        #expect(Plans.free.limits.remediationsPerMonth == 0 && Plans.byId["enterprise"]?.limits.connections == nil)
        for p in Plans.all where p.id != "enterprise" { #expect(p.limits.apiRequestsPerMinute != nil, "\(p.id) has an API rate") }
        let json = String(decoding: try! JSON.encode(Plans.byId["enterprise"]!.limits), as: UTF8.self)
        #expect(json.contains("\"connections\":null"), "unlimited is an explicit null: \(json)")
    }

    @Test func formEncodingEscapesStripeParameters() {
        #expect(
            StripeClient.form([("line_items[0][price]", "price_1"), ("success_url", "http://x/y?a=1&b=2")])
                == "line_items%5B0%5D%5Bprice%5D=price_1&success_url=http%3A%2F%2Fx%2Fy%3Fa%3D1%26b%3D2")
    }

    @Test func monthsAddInUTC() {
        let jan31 = Date(timeIntervalSince1970: 1_769_817_600)  // 2026-01-31T00:00:00Z
        #expect(Timestamp.format(Subscriptions.addMonths(jan31, 1)).hasPrefix("2026-02-28"))
        #expect(Timestamp.format(Subscriptions.addMonths(jan31, 12)).hasPrefix("2027-01-31"))
    }
}
