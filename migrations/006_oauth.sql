-- The OAuth 2.1 / OpenID Connect provider (API.md §13): clients, authorization codes,
-- consents, device codes, and what an OAuth session carries beyond an org session.

CREATE TABLE oauth_clients (
    id             TEXT PRIMARY KEY,           -- client_…
    org_id         TEXT REFERENCES orgs (id) ON DELETE CASCADE, -- NULL: a deployment app
    name           TEXT NOT NULL,
    secret_hash    TEXT,                       -- NULL: a public client (PKCE, no secret)
    redirect_uris  TEXT NOT NULL,              -- JSON array, matched exactly
    post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]',
    first_party    INTEGER NOT NULL DEFAULT 0, -- no consent screen
    profile        TEXT NOT NULL DEFAULT 'oidc', -- oidc | workos
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX oauth_clients_org ON oauth_clients (org_id);

CREATE TABLE oauth_codes (
    code_hash      TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id         TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    browser_session_id TEXT,
    redirect_uri   TEXT NOT NULL,
    scope          TEXT NOT NULL,
    nonce          TEXT,
    code_challenge TEXT,                       -- S256 only
    auth_time      INTEGER NOT NULL,
    amr            TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER,
    session_id     TEXT                        -- what the first use produced
) STRICT;
CREATE INDEX oauth_codes_expiry ON oauth_codes (expires_at);

CREATE TABLE oauth_consents (
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id      TEXT NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    org_id         TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    scope          TEXT NOT NULL,              -- space-separated, what was granted
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id, org_id)
) STRICT;

CREATE TABLE oauth_device_codes (
    device_code_hash TEXT PRIMARY KEY,
    user_code_hash TEXT NOT NULL UNIQUE,
    client_id      TEXT NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    scope          TEXT NOT NULL,
    state          TEXT NOT NULL DEFAULT 'pending', -- pending | approved | denied | used
    user_id        TEXT REFERENCES users (id) ON DELETE CASCADE,
    org_id         TEXT REFERENCES orgs (id) ON DELETE CASCADE,
    auth_time      INTEGER,
    amr            TEXT,
    interval_ms    INTEGER NOT NULL,
    last_polled_at INTEGER,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX oauth_device_codes_expiry ON oauth_device_codes (expires_at);

-- An org session made for an OAuth client: which client, what it may read, when the person
-- signed in (for the id_token's auth_time on refresh).
CREATE TABLE oauth_sessions (
    session_id     TEXT PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    client_id      TEXT NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    scope          TEXT NOT NULL,
    auth_time      INTEGER NOT NULL,
    nonce          TEXT
) STRICT;
CREATE INDEX oauth_sessions_client ON oauth_sessions (client_id);

-- Which client a session was made for (NULL: the JSON API or the hosted pages), read with
-- the session on every request: an OAuth client's tokens are not `/api/v1` credentials.
ALTER TABLE sessions ADD COLUMN client_id TEXT;
