import Contracts
import Store

/// The `remediation` schema: the workspace policy, the sealed write credentials, every action with its
/// recorded plan, progress and verification, and each action's history. Its statements live in the stores
/// beside this file.
enum RemediationSchema {
    static let migrations: [Migration] = [
        Migration(
            1, "remediation policies",
            """
            CREATE TABLE {schema}.policies (
              tenant_id uuid PRIMARY KEY, mode text NOT NULL DEFAULT 'manual',
              auto_approve_severities text[] NOT NULL DEFAULT '{}', require_verification boolean NOT NULL DEFAULT true,
              allowed_actions text[], max_actions_per_day integer NOT NULL DEFAULT 50,
              updated_by text, updated_at timestamptz NOT NULL DEFAULT now());
            """ + Migration.tenantIsolation(table: "policies")),
        Migration(
            2, "policy modes, credentials, actions",
            """
            ALTER TABLE {schema}.policies ADD COLUMN auto_max_severity text, ADD COLUMN require_approval_from_roles text[] NOT NULL DEFAULT '{owner,admin}',
              ADD COLUMN dry_run_default boolean NOT NULL DEFAULT false, ADD COLUMN allow_self_approval boolean NOT NULL DEFAULT false,
              ADD COLUMN approval_ttl_hours integer NOT NULL DEFAULT 72;
            UPDATE {schema}.policies SET mode = 'auto' WHERE mode = 'auto_approve';
            ALTER TABLE {schema}.policies DROP COLUMN auto_approve_severities, DROP COLUMN require_verification;
            CREATE TABLE {schema}.credentials (
              tenant_id uuid NOT NULL, connection_id uuid NOT NULL, sealed bytea NOT NULL, key_id text NOT NULL, masked jsonb NOT NULL,
              account_id text, arn text, created_by text, created_at timestamptz NOT NULL DEFAULT now(),
              PRIMARY KEY (tenant_id, connection_id));
            CREATE TABLE {schema}.actions (
              id uuid PRIMARY KEY, tenant_id uuid NOT NULL, finding_id uuid NOT NULL, connection_id uuid NOT NULL, rule_code text NOT NULL,
              action text NOT NULL, title text NOT NULL, severity text NOT NULL, resource_id text NOT NULL, resource_type text NOT NULL,
              resource_name text NOT NULL, region text NOT NULL, api_region text NOT NULL, endpoint_url text, account_id text,
              status text NOT NULL, dry_run boolean NOT NULL DEFAULT false, parameters jsonb NOT NULL DEFAULT '{}', plan jsonb NOT NULL,
              requested_by text NOT NULL, requested_role text NOT NULL, approved_by text, approved_at timestamptz,
              decided_by text, decision_reason text, before_state jsonb, after_state jsonb, calls jsonb, outputs jsonb NOT NULL DEFAULT '{}',
              steps_done int NOT NULL DEFAULT 0, verification jsonb, rollback_calls jsonb, rollback_steps_done int NOT NULL DEFAULT 0, rollback_outputs jsonb NOT NULL DEFAULT '{}',
              rollback_verification jsonb, rollback_resource_id text, rollback_requested_by text, error text, attempts int NOT NULL DEFAULT 0,
              expires_at timestamptz, created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
              applied_at timestamptz, rolled_back_at timestamptz);
            CREATE INDEX ON {schema}.actions (tenant_id, created_at DESC, id DESC);
            CREATE INDEX ON {schema}.actions (tenant_id, status, created_at DESC, id DESC);
            CREATE INDEX ON {schema}.actions (status, expires_at) WHERE status = 'pending_approval';
            CREATE UNIQUE INDEX actions_one_in_flight ON {schema}.actions (tenant_id, finding_id)
              WHERE status IN ('pending_approval', 'approved', 'executing', 'rolling_back');
            CREATE TABLE {schema}.action_history (
              id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, action_id uuid NOT NULL, at timestamptz NOT NULL DEFAULT now(),
              from_status text, to_status text NOT NULL, actor text, note text);
            CREATE INDEX ON {schema}.action_history (action_id, id);
            """ + Migration.tenantIsolation(table: "credentials") + Migration.tenantIsolation(table: "actions")
                + Migration.tenantIsolation(table: "action_history")),
    ]
}
