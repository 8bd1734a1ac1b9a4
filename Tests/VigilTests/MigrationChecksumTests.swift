import BillingService
import FindingsService
import IdentityService
import NotifierService
import RemediationService
import ScanService
import ServiceRuntime
import Store
import Testing

/// Applied migrations must never change: a deployed database refuses to start when a migration's text
/// differs from what it applied (the checksum). Reformatting or moving code must leave every byte of
/// them as it was; a schema change is a new migration.
@Suite struct MigrationChecksumTests {
    static let definitions = [
        IdentityService.definition, ScanService.definition, FindingsService.definition, RemediationService.definition,
        BillingService.definition, NotifierService.definition,
    ]

    /// `schema/version` → checksum of every migration released so far, as the release before this change
    /// (78fb412) recorded them in `<schema>.schema_migrations`.
    static let released: [String: String] = [
        "identity/1": "7aab29399df03dec",
        "scans/1": "4de5c04dd0153433", "scans/2": "2d2aea33b1542ee3", "scans/3": "d05e2e4d7e661aa1", "scans/4": "77912c1f4ee83abb",
        "scans/5": "b5bc4ab83004869c", "scans/6": "5fe3bf11bbbcb2a8", "scans/7": "d3314a3a414f00b8", "scans/8": "785a7b08597f2fa6",
        "scans/9": "a7ee0db855be2219", "scans/10": "12b7616d34c0ae6d",
        "findings/1": "261b0eead9e1b77a", "findings/2": "e6c0f519084a19e1", "findings/3": "b2ed99efa6e65c16",
        "remediation/1": "f2ecf58cfbea6c07", "remediation/2": "19527d35841b4515",
        "billing/1": "5591c8a6871a639", "billing/2": "d7c4dcaea1be5a7",
        "notifier/1": "65f489b53f6bdf28", "notifier/2": "9a71ff18cb2312ba", "notifier/3": "7816d3db4c911704", "notifier/4": "9789e34e69e39ac2",
    ]

    @Test func releasedMigrationsAreUnchanged() {
        var actual: [String: String] = [:]
        for d in Self.definitions {
            guard let schema = d.schema else { continue }
            for m in d.migrations { actual["\(schema)/\(m.version)"] = m.resolved(in: schema).checksum }
        }
        for (key, sum) in Self.released.sorted(by: { $0.key < $1.key }) {
            #expect(actual[key] == sum, "migration \(key) changed after release; add a new migration instead")
        }
        // Every migration is pinned, so a new one is added to the table when it is released.
        let unpinned = actual.keys.filter { Self.released[$0] == nil }.sorted()
        #expect(unpinned.isEmpty, "pin these migrations: \(unpinned.map { "\"\($0)\": \"\(actual[$0]!)\"" }.joined(separator: ", "))")
    }
}
