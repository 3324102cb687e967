-- The WorkOS-compatible API (API.md §14): what WorkOS's objects carry beyond Latchkey's own.

ALTER TABLE users ADD COLUMN external_id TEXT;
ALTER TABLE users ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
CREATE UNIQUE INDEX users_external_id ON users (external_id) WHERE external_id IS NOT NULL;

ALTER TABLE orgs ADD COLUMN external_id TEXT;
ALTER TABLE orgs ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
CREATE UNIQUE INDEX orgs_external_id ON orgs (external_id)
    WHERE external_id IS NOT NULL AND deleted_at IS NULL;

-- An organization's domains (`domains[]` of a WorkOS organization).
CREATE TABLE org_domains (
    id         TEXT PRIMARY KEY,              -- org_domain_…
    org_id     TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    domain     TEXT NOT NULL COLLATE NOCASE,
    state      TEXT NOT NULL DEFAULT 'verified', -- verified | pending
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX org_domains_domain ON org_domains (org_id, domain);

-- The answer to a POST sent with an `Idempotency-Key`, per client, for a day: the same key
-- again gets the same answer, never a second change.
CREATE TABLE idempotency_keys (
    client_id    TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    body         BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (client_id, key)
) STRICT;
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- WorkOS's one-time codes with ids of their own (magic auth, email verification) and the
-- password-reset objects: the code or token stored as its hash.
CREATE TABLE workos_codes (
    id         TEXT PRIMARY KEY,              -- magic_auth_… | email_verification_… | password_reset_…
    kind       TEXT NOT NULL CHECK (kind IN ('magic_auth', 'email_verification', 'password_reset')),
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      TEXT NOT NULL,
    code_hash  TEXT NOT NULL,
    code_enc   BLOB,                          -- the code, sealed: WorkOS's GET shows it again
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;
CREATE INDEX workos_codes_user ON workos_codes (user_id, kind);
CREATE INDEX workos_codes_hash ON workos_codes (code_hash);
CREATE INDEX workos_codes_expiry ON workos_codes (expires_at);

-- The OAuth client an API key (a client secret) belongs to, found by its hash.
CREATE INDEX oauth_clients_secret ON oauth_clients (secret_hash) WHERE secret_hash IS NOT NULL;

-- A WorkOS sign-in stopped at a step (organization selection, the second factor, enrolment,
-- email verification): its `pending_authentication_token`, stored as its hash, 10 minutes.
CREATE TABLE workos_pending (
    token_hash      TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id          TEXT REFERENCES orgs (id) ON DELETE CASCADE,
    auth_methods    TEXT NOT NULL,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    used_at         INTEGER
) STRICT;
CREATE INDEX workos_pending_expiry ON workos_pending (expires_at);

-- An invitation's token, sealed, when the WorkOS API made it: WorkOS's GET shows it again.
ALTER TABLE invitations ADD COLUMN token_enc BLOB;

-- The org of a WorkOS session that has none (WorkOS signs in a user before any organization):
-- a row that only satisfies the foreign keys. It is deleted and suspended, so no lookup, list,
-- guard or membership ever finds it: such a session passes no org-scoped check.
INSERT INTO orgs (id, slug, name, plan, status, settings, created_at, updated_at, deleted_at)
VALUES ('org_none', '-no-organization-', 'No organization', 'free', 'suspended', '{}', 0, 0, 0);
