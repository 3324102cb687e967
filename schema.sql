-- Latchkey schema, version 1; later versions are the steps in migrations/ (applied in order
-- after this one). `latchkey migrate` (and `serve`) applies them and records the version in
-- PRAGMA user_version.
-- Conventions: ids are prefixed ULIDs (TEXT); times are INTEGER milliseconds since the Unix
-- epoch (UTC); JSON columns are TEXT; booleans are INTEGER 0/1. Every opaque token, key and
-- code is stored only as the hex SHA-256 of its value (`*_hash`); secrets the server must read
-- back (TOTP, webhook signing secrets, signing keys) are AES-256-GCM sealed (`*_enc`) with a key
-- derived from security.secret_key. Every org-scoped table carries org_id.

-- Deployment-wide facts: the generated development secret, schema notes.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,              -- org_…
    slug        TEXT NOT NULL,
    name        TEXT NOT NULL,
    plan        TEXT NOT NULL DEFAULT 'free',
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    app_url     TEXT,
    logo_url    TEXT,
    settings    TEXT NOT NULL DEFAULT '{}',    -- {signupMode, allowedDomains, require2FA, passwordMinLength}
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    deleted_at  INTEGER                        -- soft delete: the org answers 404, its rows stay for audit
) STRICT;
CREATE UNIQUE INDEX orgs_live_slug ON orgs (slug) WHERE deleted_at IS NULL;
CREATE INDEX orgs_created ON orgs (created_at, id);

CREATE TABLE users (
    id                 TEXT PRIMARY KEY,       -- usr_…
    email              TEXT NOT NULL COLLATE NOCASE UNIQUE,
    email_verified     INTEGER NOT NULL DEFAULT 0,
    password_hash      TEXT,                   -- argon2id PHC string; NULL = no password (invited, magic link)
    name               TEXT,
    first_name         TEXT,
    last_name          TEXT,
    avatar_url         TEXT,
    phone_number       TEXT,
    role               TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    status             TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    failed_logins      INTEGER NOT NULL DEFAULT 0,
    failed_window_start INTEGER,
    locked_until       INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    last_login_at      INTEGER
) STRICT;
CREATE INDEX users_created ON users (created_at, id);

CREATE TABLE memberships (
    id         TEXT PRIMARY KEY,               -- mem_…
    org_id     TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'org_admin', 'member')),
    status     TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deactivated')),
    metadata   TEXT NOT NULL DEFAULT '{}',
    joined_at  INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (org_id, user_id)
) STRICT;
CREATE INDEX memberships_user ON memberships (user_id);
CREATE INDEX memberships_org_joined ON memberships (org_id, joined_at, id);

-- One login = one session, scoped to one org. Refresh tokens rotate within it.
CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,           -- ses_…
    org_id         TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_methods   TEXT NOT NULL DEFAULT '["pwd"]',
    ip_address     TEXT,
    user_agent     TEXT,
    created_at     INTEGER NOT NULL,
    last_seen_at   INTEGER NOT NULL,
    idle_expires_at INTEGER NOT NULL,          -- moves forward on each refresh
    expires_at     INTEGER NOT NULL,           -- absolute lifetime, never moves
    revoked_at     INTEGER,
    revoked_reason TEXT
) STRICT;
CREATE INDEX sessions_user ON sessions (user_id, org_id);
CREATE INDEX sessions_org ON sessions (org_id);

CREATE TABLE refresh_tokens (
    token_hash     TEXT PRIMARY KEY,
    session_id     TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    org_id         TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    rotated_at     INTEGER,                    -- set when a successor was issued
    successor_hash TEXT,
    successor_enc  BLOB                        -- the successor token, sealed, kept only for refresh_grace
) STRICT;
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Between a correct password and a second factor (or a forced 2FA enrollment).
CREATE TABLE partial_tokens (
    token_hash      TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose         TEXT NOT NULL CHECK (purpose IN ('verify_2fa', 'setup_2fa')),
    auth_methods    TEXT NOT NULL DEFAULT '["pwd"]',
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    ip_address      TEXT,
    user_agent      TEXT,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    used_at         INTEGER
) STRICT;

CREATE TABLE totp_secrets (
    user_id        TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_enc     BLOB NOT NULL,
    enabled_at     INTEGER,                    -- NULL while enrollment is pending
    last_used_step INTEGER,                    -- replay guard: a step once accepted is refused again
    created_at     INTEGER NOT NULL
) STRICT;

CREATE TABLE backup_codes (
    id         INTEGER PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    used_at    INTEGER,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX backup_codes_user ON backup_codes (user_id);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,             -- key_…
    org_id       TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    scopes       TEXT NOT NULL DEFAULT '[]',
    created_by   TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER
) STRICT;
CREATE INDEX api_keys_org ON api_keys (org_id, created_at);

CREATE TABLE admin_keys (
    id           TEXT PRIMARY KEY,             -- adk_…
    name         TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    last_used_at INTEGER
) STRICT;

CREATE TABLE invitations (
    id          TEXT PRIMARY KEY,              -- inv_…
    org_id      TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    email       TEXT NOT NULL COLLATE NOCASE,
    role        TEXT NOT NULL CHECK (role IN ('owner', 'org_admin', 'member')),
    token_hash  TEXT NOT NULL UNIQUE,
    state       TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'accepted', 'declined', 'revoked', 'expired')),
    invited_by  TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    responded_at INTEGER,
    accepted_by TEXT
) STRICT;
CREATE INDEX invitations_org ON invitations (org_id, state, created_at);
CREATE INDEX invitations_email ON invitations (email, state);

-- Password reset, email verification and magic links.
CREATE TABLE email_tokens (
    token_hash TEXT PRIMARY KEY,
    purpose    TEXT NOT NULL CHECK (purpose IN ('password_reset', 'verify_email', 'magic_link')),
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id     TEXT REFERENCES orgs (id) ON DELETE CASCADE,
    email      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;
CREATE INDEX email_tokens_user ON email_tokens (user_id, purpose);

CREATE TABLE webhook_endpoints (
    id              TEXT PRIMARY KEY,          -- wh_…
    org_id          TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    events          TEXT NOT NULL,             -- JSON array of event names
    description     TEXT,
    secret_enc      BLOB NOT NULL,
    is_active       INTEGER NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX webhook_endpoints_org ON webhook_endpoints (org_id);

-- Every event emitted, whether or not any endpoint subscribed.
CREATE TABLE events (
    id         TEXT PRIMARY KEY,               -- evt_…
    org_id     TEXT,
    event      TEXT NOT NULL,
    payload    TEXT NOT NULL,                  -- the JSON body as sent
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX events_org ON events (org_id, created_at);

-- The outbox: webhook deliveries and emails, written in the transaction of their cause.
CREATE TABLE outbox (
    id               TEXT PRIMARY KEY,         -- del_… (webhook) or msg_… (email)
    kind             TEXT NOT NULL CHECK (kind IN ('webhook', 'email')),
    org_id           TEXT,
    event_id         TEXT,
    endpoint_id      TEXT REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    payload          TEXT NOT NULL,            -- webhook body, or the email as JSON {to, subject, text, html}
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_status_code INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    delivered_at     INTEGER
) STRICT;
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_endpoint ON outbox (endpoint_id, created_at);

CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY,              -- aud_…
    org_id      TEXT,
    actor_type  TEXT NOT NULL CHECK (actor_type IN ('user', 'admin_key', 'api_key', 'system', 'anonymous')),
    actor_id    TEXT,
    action      TEXT NOT NULL,
    target_type TEXT,
    target_id   TEXT,
    ip_address  TEXT,
    user_agent  TEXT,
    metadata    TEXT NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX audit_org ON audit_log (org_id, created_at, id);
CREATE INDEX audit_actor ON audit_log (actor_id, created_at, id);
CREATE INDEX audit_target ON audit_log (target_id, created_at, id);

-- JWT signing keys. The private half is sealed; a retired key stays published until
-- publish_until, after every token it signed has expired.
CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,            -- RFC 7638 thumbprint
    alg           TEXT NOT NULL CHECK (alg IN ('EdDSA', 'ES256', 'RS256')),
    public_jwk    TEXT NOT NULL,
    private_enc   BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    retired_at    INTEGER,                     -- NULL for the one active key
    publish_until INTEGER
) STRICT;
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((retired_at IS NULL)) WHERE retired_at IS NULL;
