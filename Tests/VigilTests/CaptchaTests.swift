import Foundation
import Testing
import VigilCore
import VigilTesting

@testable import NotifierService

/// The contact form's captcha check against a siteverify-style HTTP endpoint.
@Suite struct CaptchaTests {
    @Test func verifierAcceptsAndRejects() async throws {
        let servers = try await TestServers.get()
        let port = TestServers.freePort()
        let pid = try TestServers.spawn(["/usr/bin/env", "python3", TestServers.repoRoot + "/scripts/captcha-verifier.py", String(port)])
        defer { TestServers.stop(pid) }
        #expect(await TestServers.waitForPort(port, timeout: .seconds(15)))
        let reader = ConfigReader(
            environment: [
                "VIGIL_CAPTCHA_VERIFY_URL": "http://127.0.0.1:\(port)/siteverify",
                "VIGIL_CAPTCHA_SECRET": "s3cret",
            ], arguments: [])
        let handler = ContactHandler(store: servers.store(), reader: reader)
        try await handler.verifyCaptcha(url: handler.captchaURL!, token: "pass", address: "127.0.0.1")
        await #expect(throws: ServiceError.validation("body.captcha_token", "captcha verification failed")) {
            try await handler.verifyCaptcha(url: handler.captchaURL!, token: "forged", address: "127.0.0.1")
        }
        // An unreachable verifier is a 503, not a pass.
        let down = ContactHandler(
            store: servers.store(),
            reader: ConfigReader(
                environment: [
                    "VIGIL_CAPTCHA_VERIFY_URL": "http://127.0.0.1:\(TestServers.freePort())/", "VIGIL_CAPTCHA_SECRET": "s3cret",
                ], arguments: []))
        do {
            try await down.verifyCaptcha(url: down.captchaURL!, token: "pass", address: "127.0.0.1")
            Issue.record("expected an error")
        } catch let e as ServiceError {
            #expect(e.status == 503)
        }
    }
}
