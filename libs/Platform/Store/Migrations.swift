import Foundation
import Logging

/// One versioned schema change. The SQL may hold several statements; `{schema}` is replaced by the
/// service's schema name. Once applied, a migration must never change (its checksum is verified).
public struct Migration: Sendable {
    public let version: Int
    public let name: String
    public let sql: String
    public init(_ version: Int, _ name: String, _ sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// Row-level security for a tenant-scoped table: rows are visible only when their `tenant_id`
    /// (or `column`) matches the transaction's `vigil.tenant_id`, or the transaction is cross-tenant.
    public static func tenantIsolation(table: String, column: String = "tenant_id") -> String {
        """
        ALTER TABLE {schema}.\(table) ENABLE ROW LEVEL SECURITY;
        ALTER TABLE {schema}.\(table) FORCE ROW LEVEL SECURITY;
        DROP POLICY IF EXISTS tenant_isolation ON {schema}.\(table);
        CREATE POLICY tenant_isolation ON {schema}.\(table)
          USING ({schema}.tenant_visible(\(column))) WITH CHECK ({schema}.tenant_visible(\(column)));
        """
    }

    /// This migration as applied to `schema` (`{schema}` replaced).
    public func resolved(in schema: String) -> Migration {
        Migration(version, name, sql.replacingOccurrences(of: "{schema}", with: schema))
    }

    /// FNV-1a 64-bit over the SQL text: detects edits to applied migrations.
    public var checksum: String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in sql.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return String(h, radix: 16)
    }
}

/// How a schema's row-level-security predicate compares a row's tenant with the transaction's.
/// Both admit exactly the same rows; they differ in what PostgreSQL's planner believes about them.
public enum TenantPredicate: Sendable {
    /// `tenant_id::text = setting`: the planner cannot estimate it and assumes about 1 % of rows pass.
    /// Kept where a service's plans were tuned under that estimate (the notifier's delivery claim
    /// degraded into multi-second scans under load with `.uuid`: bench notify 966 deliveries/s instead
    /// of 2,190).
    case text
    /// `tenant_id = setting::uuid`: estimated from the column's statistics, so a workspace holding most
    /// rows is planned as such. The findings lists need it: with `.text`, a 500-finding keyset page of a
    /// 100,000-finding workspace was planned as a sequential scan and sort (120 ms instead of 1 ms).
    case uuid
}

/// Applies migrations under a per-schema advisory lock, so replicas starting together serialize.
struct Migrator {
    let schema: String
    let logger: Logger
    var predicate: TenantPredicate = .text

    var tenantComparison: String {
        switch predicate {
        case .text: "(t IS NOT NULL AND t::text = coalesce(current_setting('vigil.tenant_id', true), ''))"
        case .uuid: "t = nullif(current_setting('vigil.tenant_id', true), '')::uuid"
        }
    }

    /// Built into every schema: the migrations ledger, the tenant predicate and the outbox.
    var foundation: String {
        """
        CREATE SCHEMA IF NOT EXISTS \(schema);
        CREATE TABLE IF NOT EXISTS \(schema).schema_migrations (
          version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
          applied_at timestamptz NOT NULL DEFAULT now());
        -- Evaluated for every row read or written (inlined into each policy); see TenantPredicate.
        CREATE OR REPLACE FUNCTION \(schema).tenant_visible(t uuid) RETURNS boolean
          LANGUAGE sql STABLE AS $$
            SELECT coalesce(current_setting('vigil.cross_tenant', true), '') = 'on'
                OR \(tenantComparison)
          $$;
        CREATE TABLE IF NOT EXISTS \(schema).outbox (
          seq bigserial PRIMARY KEY, id uuid NOT NULL UNIQUE, subject text NOT NULL, payload text NOT NULL,
          headers jsonb NOT NULL DEFAULT '{}', created_at timestamptz NOT NULL DEFAULT now(), published_at timestamptz);
        CREATE INDEX IF NOT EXISTS outbox_unpublished ON \(schema).outbox (seq) WHERE published_at IS NULL;
        -- Batch rows (many events in one row). Checked first: ALTER TABLE locks the outbox even when
        -- there is nothing to change, and replicas run this on every start.
        DO $$ BEGIN
          IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                         WHERE table_schema = '\(schema)' AND table_name = 'outbox' AND column_name = 'batch') THEN
            ALTER TABLE \(schema).outbox ADD COLUMN batch boolean NOT NULL DEFAULT false;
            -- Read back once by the relay: compressing a batch row's payload cost more than storing it.
            ALTER TABLE \(schema).outbox ALTER COLUMN payload SET STORAGE EXTERNAL;
          END IF;
        END $$;
        """
    }

    func apply(_ migrations: [Migration], on conn: PGConnection) async throws {
        let lockKey = "vigil.migrate.\(schema)"
        _ = try await conn.execute("SELECT pg_advisory_lock(hashtext($1))", [lockKey])
        do {
            try await conn.script(foundation)
            let applied = try await conn.execute("SELECT version, checksum FROM \(schema).schema_migrations", []).rows
            var known: [Int: String] = [:]
            for r in applied { known[try r.int("version")] = try r.string("checksum") }
            for m in migrations.sorted(by: { $0.version < $1.version }) {
                let resolved = m.resolved(in: schema)
                let sql = resolved.sql
                if let sum = known[m.version] {
                    guard sum == resolved.checksum else {
                        throw StoreError("migration \(schema) v\(m.version) (\(m.name)) was changed after it was applied")
                    }
                    continue
                }
                try await conn.script(
                    "BEGIN;\n\(sql)\n;INSERT INTO \(schema).schema_migrations (version, name, checksum) VALUES (\(m.version), "
                        + "'\(m.name.replacingOccurrences(of: "'", with: "''"))', '\(resolved.checksum)');\nCOMMIT;"
                )
                logger.info("migration applied", metadata: ["schema": "\(schema)", "version": "\(m.version)", "name": "\(m.name)"])
            }
        } catch {
            _ = try? await conn.execute("ROLLBACK", [])
            _ = try? await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", [lockKey])
            throw error
        }
        _ = try await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", [lockKey])
    }
}
