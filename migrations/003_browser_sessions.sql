-- Version 3: the browser session of the hosted pages (API.md §12). One row per person signed
-- in at Latchkey's own origin (deployment-wide, not per org); the per-org sessions made from it
-- point back at it, so signing out ends them all.
CREATE TABLE browser_sessions (
    id            TEXT PRIMARY KEY,              -- bs_…
    token_hash    TEXT NOT NULL UNIQUE,          -- the cookie's value, hashed
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- 'pending_2fa': the password checked out, the second factor is due; 'active': signed in.
    state         TEXT NOT NULL CHECK (state IN ('pending_2fa', 'active')),
    auth_methods  TEXT NOT NULL DEFAULT '[]',
    failed_codes  INTEGER NOT NULL DEFAULT 0,
    auth_time     INTEGER NOT NULL,
    ip_address    TEXT,
    user_agent    TEXT,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked_at    INTEGER
) STRICT;
CREATE INDEX browser_sessions_user ON browser_sessions (user_id);
ALTER TABLE sessions ADD COLUMN browser_session_id TEXT;
CREATE INDEX sessions_browser ON sessions (browser_session_id) WHERE browser_session_id IS NOT NULL;
