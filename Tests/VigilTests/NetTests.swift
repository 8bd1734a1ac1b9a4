import Foundation
import Testing

@testable import Net
@testable import NotifierService

@Suite struct NetTests {
    static let strict = SSRFGuard()
    static let loopbackAllowed = SSRFGuard(allowLoopback: true)

    @Test(arguments: [
        "127.0.0.1", "127.8.9.1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254",
        "169.254.1.1", "100.64.0.1", "0.0.0.0", "224.0.0.1", "240.0.0.1", "::1", "fe80::1", "fd00::1", "fc00::2",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "ff02::1", "::",
    ])
    func refusesInternalAddresses(_ ip: String) {
        #expect(Self.strict.refusal(ip) != nil, "\(ip) must be refused")
    }

    @Test(arguments: ["93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:4700::1111", "100.128.0.1"])
    func allowsPublicAddresses(_ ip: String) {
        #expect(Self.strict.refusal(ip) == nil, "\(ip) must be allowed")
    }

    @Test func loopbackOnlyWhenConfigured() throws {
        #expect(throws: NetError.self) { try Self.strict.check("http://localhost:8080/hook") }
        let t = try Self.loopbackAllowed.check("http://localhost:8080/hook?x=1")
        #expect(t.port == 8080 && t.pathAndQuery == "/hook?x=1" && !t.isTLS)
        #expect(t.addresses.allSatisfy { Self.loopbackAllowed.refusal($0.ip) == nil })
        // Metadata stays refused even with loopback allowed.
        #expect(throws: NetError.self) { try Self.loopbackAllowed.check("http://169.254.169.254/latest") }
    }

    @Test(arguments: ["ftp://example.com/", "example.com/hook", "http://", "http://user:pw@example.com/", "javascript:alert(1)"])
    func rejectsBadURLs(_ url: String) {
        #expect(throws: NetError.self) { try SSRFGuard.parse(url) }
    }

    @Test func proxyURLsNameOnlyAnHTTPProxy() {
        let p = ProxyConfig.parse("http://user:pa%3Ass@proxy.corp:3128/")
        #expect(p?.host == "proxy.corp" && p?.port == 3128 && p?.username == "user" && p?.password == "pa:ss")
        #expect(ProxyConfig.parse("http://[fd00::1]:8080")?.host == "fd00::1")
        #expect(ProxyConfig.parse("http://proxy.corp")?.port == 80)
        for bad in [
            "https://proxy.corp:3128", "socks5://proxy.corp:1080", "http://proxy.corp:3128/path", "http://proxy.corp:0", "proxy.corp:3128",
            "http://:3128", "http://proxy.corp:3128?x=1",
        ] {
            #expect(ProxyConfig.parse(bad) == nil, "\(bad) must be refused")
        }
    }

    @Test func environmentProxyHonoursNoProxyLikeCurl() {
        let env = EnvironmentProxy([
            "HTTPS_PROXY": "http://egress:3128", "http_proxy": "http://plain:8080",
            "NO_PROXY": "localhost, .internal,corp.example, 10.0.0.5,api.local:8443",
        ])
        #expect(env.proxy(for: "https://sts.amazonaws.com/")?.host == "egress")
        #expect(env.proxy(for: "http://moto:5000/")?.host == "plain")
        #expect(env.proxy(for: "https://localhost:5000/") == nil)
        #expect(env.proxy(for: "https://db.internal/") == nil && env.proxy(for: "https://internal/") == nil)
        #expect(env.proxy(for: "https://a.corp.example/") == nil && env.proxy(for: "https://notcorp.example/")?.host == "egress")
        #expect(env.proxy(for: "http://10.0.0.5:9000/") == nil)
        #expect(env.proxy(for: "https://api.local:8443/") == nil && env.proxy(for: "https://api.local/")?.host == "egress")
        #expect(EnvironmentProxy(["HTTPS_PROXY": "http://egress:3128", "no_proxy": "*"]).proxy(for: "https://x.y/") == nil)
        #expect(EnvironmentProxy([:]).proxy(for: "https://x.y/") == nil)
        #expect(EnvironmentProxy(["HTTPS_PROXY": "http://egress:3128"]).proxy(for: "http://x.y/") == nil)
    }

    @Test func standardWebhooksSignatureVector() {
        // Test vector of the Standard Webhooks specification.
        let sig = WebhookSignature.sign(
            id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330,
            body: Array(#"{"test": 2432232314}"#.utf8), secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
        #expect(sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        let two = WebhookSignature.sign(id: "m", timestamp: 1, body: [], secrets: [WebhookSignature.newSecret(), WebhookSignature.newSecret()])
        #expect(two.split(separator: " ").count == 2)
    }

    @Test func eventPatterns() {
        #expect(EventCatalog.matches(["finding.*"], "finding.opened"))
        #expect(!EventCatalog.matches(["finding.*"], "findings.x"))
        #expect(EventCatalog.matches(["*"], "apikey.created"))
        #expect(EventCatalog.matches(["apikey.created"], "apikey.created"))
        #expect(!EventCatalog.matches(["apikey.created"], "apikey.revoked"))
    }

    @Test func smtpAddressesRefuseHeaderInjection() throws {
        #expect(try SMTPClient.address("Vigil <no-reply@vigil.test>") == "no-reply@vigil.test")
        #expect(throws: NetError.self) { try SMTPClient.address("a@b.c>\r\nRCPT TO:<evil@x.y") }
    }
}

@Suite struct ChannelMessageTests {
    let digest = NotificationPolicy(delivery: "digest", notificationTriggerMode: "scan_complete", updatedAt: nil)
    let every = NotificationPolicy(delivery: "every_event", notificationTriggerMode: "scan_complete", updatedAt: nil)
    let wasteOnly = NotificationPolicy(delivery: "digest", notificationTriggerMode: "waste_only", updatedAt: nil)

    @Test func digestSuppressesPerFindingMessagesButSummarisesScans() {
        #expect(ChannelService.message(type: "finding.opened", data: ["severity": "high"], policy: digest) == nil)
        #expect(ChannelService.message(type: "finding.opened", data: ["severity": "high"], policy: every)?.severity == "high")
        let scan: [String: Any] = ["scan_id": "s", "connection_id": "c", "findings_count": ["high": 2, "low": 1]]
        let m = ChannelService.message(type: "scan.completed", data: scan, policy: digest)
        #expect(m?.severity == "high")
        #expect(m?.lines.contains("3 findings (high: 2, low: 1).") == true)
    }

    @Test func wasteOnlySkipsScansWithoutSavings() {
        #expect(ChannelService.message(type: "scan.completed", data: ["findings_count": ["high": 1]], policy: wasteOnly) == nil)
        #expect(ChannelService.message(type: "scan.completed", data: ["estimated_monthly_savings": 3.0], policy: wasteOnly) != nil)
    }
}

@Suite struct OutboundTests {
    @Test func everyDeliveryRechecksTheAddress() async throws {
        // An endpoint accepted earlier now resolves to loopback: the send is refused before connecting.
        let strict = OutboundHTTP(guardrail: SSRFGuard(), timeout: 2)
        #expect(throws: NetError.self) { try strict.post("http://localhost:9/hook", headers: [:], body: []) }
        #expect(throws: NetError.self) { try strict.post("http://169.254.169.254/latest/meta-data", headers: [:], body: []) }
    }
}
