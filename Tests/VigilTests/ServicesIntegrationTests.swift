import BillingService
import Bus
import FindingsService
import Foundation
import IdentityService
import Logging
import NotifierService
import RemediationService
import ScanService
import ServiceRuntime
import Synchronization
import Testing
import VigilCore
import VigilTesting

@testable import GatewayService

@Suite(.serialized) struct ServicesIntegrationTests {
    static let all = [
        GatewayService.definition, IdentityService.definition, ScanService.definition,
        FindingsService.definition, RemediationService.definition, BillingService.definition, NotifierService.definition,
    ]

    @Test func allSevenServicesStartInProcessAndAreDiscoverable() async throws {
        let servers = try await TestServers.get()
        let reader = ConfigReader(
            environment: [
                "VIGIL_NATS_URL": servers.natsURL, "VIGIL_DATABASE_URL": servers.databaseURL,
                "VIGIL_HTTP_PORT": String(TestServers.freePort()), "VIGIL_PASSWORD_HASH": "minimum", "VIGIL_LOG_LEVEL": "warning",
            ], arguments: [])
        var running: [RunningService] = []
        for def in Self.all {
            running.append(try await ServiceHost.start(def, config: ServiceConfig(reader: reader)))
        }
        let bus = try await servers.bus()
        let inbox = "test.discovery.\(ID.make())"
        let names = Mutex<Set<String>>([])
        let sub = try bus.subscribe(inbox) { msg in
            if let obj = try? JSONSerialization.jsonObject(with: msg.data) as? [String: Any],
                obj["type"] as? String == "io.nats.micro.v1.ping_response", let n = obj["name"] as? String
            {
                names.withLock { _ = $0.insert(n) }
            }
        }
        try bus.publish("$SRV.PING", data: Data(), reply: inbox)
        for _ in 0..<50
        where !names.withLock({ $0.isSuperset(of: ["gateway", "identity", "scan-orchestrator", "findings", "remediation", "billing", "notifier"]) }) {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(names.withLock { $0 }.isSuperset(of: ["gateway", "identity", "scan-orchestrator", "findings", "remediation", "billing", "notifier"]))

        // INFO lists identity's endpoints with the queue group.
        let info = try await bus.request("$SRV.INFO.identity", data: Data(), timeout: .seconds(2))
        let obj = try JSONSerialization.jsonObject(with: info.data) as! [String: Any]
        #expect(obj["type"] as? String == "io.nats.micro.v1.info_response")
        let subjects = (obj["endpoints"] as! [[String: Any]]).compactMap { $0["subject"] as? String }
        #expect(subjects.contains("vigil.identity.auth.signup"))
        #expect((obj["endpoints"] as! [[String: Any]]).allSatisfy { $0["queue_group"] as? String == "q" })

        // Every subject the gateway routes to is served by some service.
        let served = Set(running.flatMap { $0.context.responder.subjects })
        for route in RouteTable.all { #expect(served.contains(route.subject), "no service serves \(route.subject)") }

        // The health check finds a running replica and reports a missing one.
        #expect(await ServiceHost.healthCheck("identity", config: ServiceConfig(reader: reader)))
        #expect(await !ServiceHost.healthCheck("no-such-service", config: ServiceConfig(reader: reader)))

        sub.unsubscribe()
        for r in running.reversed() { await r.stop() }
        await bus.close()
    }
}
