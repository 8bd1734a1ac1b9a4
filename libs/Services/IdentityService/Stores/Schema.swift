import Contracts
import Store

/// The `identity` schema. Workspace-scoped tables are protected by row-level security.
enum IdentitySchema {
    static let migrations: [Migration] = [
        Migration(
            1, "identity core",
            """
            CREATE TABLE {schema}.users (
              id uuid PRIMARY KEY, email text NOT NULL UNIQUE, password_hash text NOT NULL, full_name text NOT NULL,
              email_verified boolean NOT NULL DEFAULT false, created_at timestamptz NOT NULL DEFAULT now(),
              updated_at timestamptz NOT NULL DEFAULT now());
            CREATE TABLE {schema}.workspaces (
              id uuid PRIMARY KEY, slug text NOT NULL UNIQUE, name text NOT NULL,
              parent_id uuid REFERENCES {schema}.workspaces(id), settings jsonb NOT NULL DEFAULT '{}',
              created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now());
            CREATE INDEX ON {schema}.workspaces (parent_id);
            CREATE TABLE {schema}.memberships (
              id uuid PRIMARY KEY, tenant_id uuid NOT NULL REFERENCES {schema}.workspaces(id) ON DELETE CASCADE,
              user_id uuid NOT NULL REFERENCES {schema}.users(id) ON DELETE CASCADE, role text NOT NULL,
              created_at timestamptz NOT NULL DEFAULT now(), UNIQUE (tenant_id, user_id));
            CREATE INDEX ON {schema}.memberships (user_id);
            CREATE TABLE {schema}.invitations (
              id uuid PRIMARY KEY, tenant_id uuid NOT NULL REFERENCES {schema}.workspaces(id) ON DELETE CASCADE,
              email text NOT NULL, role text NOT NULL, token_hash text NOT NULL UNIQUE, invited_by uuid,
              status text NOT NULL DEFAULT 'pending', expires_at timestamptz NOT NULL,
              created_at timestamptz NOT NULL DEFAULT now(), accepted_at timestamptz);
            CREATE UNIQUE INDEX invitations_one_pending ON {schema}.invitations (tenant_id, email) WHERE status = 'pending';
            CREATE TABLE {schema}.api_keys (
              id uuid PRIMARY KEY, tenant_id uuid NOT NULL REFERENCES {schema}.workspaces(id) ON DELETE CASCADE,
              name text NOT NULL, key_hash text NOT NULL UNIQUE, prefix text NOT NULL, scopes text[] NOT NULL,
              role text NOT NULL, created_by uuid, created_at timestamptz NOT NULL DEFAULT now(),
              expires_at timestamptz, last_used_at timestamptz, revoked_at timestamptz);
            CREATE TABLE {schema}.refresh_tokens (
              id uuid PRIMARY KEY, user_id uuid NOT NULL REFERENCES {schema}.users(id) ON DELETE CASCADE,
              family_id uuid NOT NULL, token_hash text NOT NULL UNIQUE, tenant_id uuid,
              created_at timestamptz NOT NULL DEFAULT now(), expires_at timestamptz NOT NULL,
              used_at timestamptz, revoked_at timestamptz);
            CREATE INDEX ON {schema}.refresh_tokens (family_id);
            CREATE INDEX ON {schema}.refresh_tokens (user_id);
            CREATE TABLE {schema}.user_tokens (
              id uuid PRIMARY KEY, user_id uuid NOT NULL REFERENCES {schema}.users(id) ON DELETE CASCADE,
              kind text NOT NULL, token_hash text NOT NULL UNIQUE, created_at timestamptz NOT NULL DEFAULT now(),
              expires_at timestamptz NOT NULL, used_at timestamptz);
            CREATE TABLE {schema}.login_failures (
              id bigserial PRIMARY KEY, email text NOT NULL, address text NOT NULL, at timestamptz NOT NULL DEFAULT now());
            CREATE INDEX ON {schema}.login_failures (email, at);
            CREATE INDEX ON {schema}.login_failures (address, at);
            """ + Migration.tenantIsolation(table: "workspaces", column: "id")
                + Migration.tenantIsolation(table: "memberships")
                + Migration.tenantIsolation(table: "invitations")
                + Migration.tenantIsolation(table: "api_keys"))
    ]
}
