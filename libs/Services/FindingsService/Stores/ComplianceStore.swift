import Contracts
import Foundation
import Store
import VigilCore

/// The reads compliance is computed from: each connection's latest complete scan, the rule PASS/FAIL
/// counts it recorded, and the open findings failing a framework's rules.
enum ComplianceStore {
    /// Latest complete scan per connection (optionally one connection).
    static func latestScans(_ tx: Transaction, tenantId tenant: String, connection: String?) async throws -> [(connection: String, scan: String)] {
        var sql =
            "SELECT DISTINCT ON (connection_id) connection_id, scan_id FROM findings.scans WHERE tenant_id = $1 AND status = 'completed' AND complete"
        var values: [any SQLParameter] = [tenant]
        if let connection {
            sql += " AND connection_id = $2"
            values.append(connection)
        }
        return try await tx.query(sql + " ORDER BY connection_id, completed_at DESC", values).map {
            (try $0.string("connection_id"), try $0.string("scan_id"))
        }
    }

    static func counts(_ tx: Transaction, tenantId tenant: String, scans: [String]) async throws -> [String: (passed: Int, failed: Int)] {
        var out: [String: (Int, Int)] = [:]
        guard !scans.isEmpty else { return [:] }
        for r in try await tx.query(
            """
            SELECT rule_id, sum(passed)::int AS p, sum(failed)::int AS f FROM findings.rule_counts WHERE tenant_id = $1 AND scan_id = ANY($2::uuid[])
            GROUP BY rule_id
            """, [tenant, ArrayParameter(scans)])
        { out[try r.string("rule_id")] = (try r.int("p"), try r.int("f")) }
        return out
    }

    /// Open findings of these rules (optionally on one connection), most severe first, at most 5,000.
    static func failing(_ tx: Transaction, tenantId: String, rules: [String], connection: String?) async throws -> [FailingResource] {
        var values: [any SQLParameter] = [tenantId, ArrayParameter(rules)]
        var filter = ""
        if let connection {
            values.append(connection)
            filter = " AND connection_id = $3"
        }
        return try await tx.query(
            """
            SELECT id, rule_id, resource_id, resource_name, severity, region FROM findings.findings
            WHERE tenant_id = $1 AND status = 'open' AND rule_id = ANY($2::text[])\(filter) ORDER BY severity_rank, resource_name LIMIT 5000
            """, values
        ).map { r in
            FailingResource(
                findingId: try r.string("id"), ruleId: try r.string("rule_id"), resourceId: try r.string("resource_id"),
                resourceName: try r.string("resource_name"), severity: try r.string("severity"), region: try r.string("region"))
        }
    }
}
